"""A lock that waits: one process at a time writes a file that several may want at once (a run's metrics.json,
a cached domain classifier), the others wait for it and then read what it wrote instead of redoing the work.

POSIX flock on a file beside the target; the operating system releases it however the holder ends. Where
there is no flock (Windows) there is no lock: the writes stay atomic, only the work may be done twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing), waiting for any other holder."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
