"""Files that are either the old version or the new one, never half of either.

Every file genlab writes that another process may read or that a crash may cut short
(checkpoints, metrics.json, summary.json, cached features) goes through `atomic_write`: the content
goes to a temporary file in the target's folder, is flushed to disk, and is renamed over the target.
A rename within one folder is atomic on POSIX, so a reader sees one whole file, and a crash
mid-write leaves the previous file and no stray temporary one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def whole_file_beside(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """`write(stream)`'s bytes in a temporary file beside `path`, flushed to disk: whole before a rename (or a
    link: genlab/run/fresh.py) gives it its name. A failed write leaves no temporary file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(stream)` on a binary temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = whole_file_beside(path, write)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """`atomic_write` of `data` as indented JSON."""
    return atomic_write_text(path, json.dumps(data, indent=2))
