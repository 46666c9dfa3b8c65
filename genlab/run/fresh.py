"""Files that never replace another: what a command makes that a user may have made before.

A second `genlab sample` with the same seed, or a results file written beside a metrics.json genlab could not
read, must keep what was there. `write_new` writes a whole file beside its target (as genlab/run/atomic.py
does) and then gives it the first free name, `name.png`, `name-2.png`, `name-3.png`, ..., by a hard link,
which fails rather than replace a file another process made meanwhile: no reader sees half a file, a crash
leaves no temporary file, and nothing that existed is touched.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from genlab.run.atomic import whole_file_beside

# file systems without hard links (FAT, some network mounts) answer os.link with one of these
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def numbered(path: Path, number: int) -> Path:
    """`path` itself for 1, else `<stem>-<number><suffix>` beside it (sample_seed0.png -> sample_seed0-2.png)."""
    return path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


def first_free_number(paths: Sequence[Path]) -> int:
    """The smallest number under which none of `paths` exists yet, so that files made together share it."""
    number = 1
    while any(os.path.lexists(numbered(path, number)) for path in paths):
        number += 1
    return number


def write_new(path: str | Path, write: Callable[[IO[bytes]], None], first: int = 1) -> Path:
    """Write `write(stream)`'s bytes to the first free name among numbered(path, first), numbered(path, first + 1), ...
    and return that name; an existing file is never replaced, and a failed write leaves nothing."""
    path = Path(path)
    temporary = whole_file_beside(path, write)
    try:
        return claim_first_free(temporary, path, first)
    finally:
        temporary.unlink(missing_ok=True)


def claim_first_free(temporary: Path, path: Path, first: int) -> Path:
    """Give the whole file `temporary` the first free numbered name of `path` (the temporary name stays, for the
    caller to remove)."""
    number = first
    while True:
        target = numbered(path, number)
        try:
            os.link(temporary, target)
            return target
        except FileExistsError:
            number += 1
        except OSError as error:
            if error.errno not in NO_HARD_LINKS:
                raise
            return claim_without_links(temporary, path, number)


def claim_without_links(temporary: Path, path: Path, first: int) -> Path:
    """Where hard links are not supported: reserve the name by creating it exclusively, then rename the whole
    file over that reservation (an empty file is all a crash in between can leave)."""
    number = first
    while True:
        target = numbered(path, number)
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            number += 1
            continue
        os.replace(temporary, target)
        return target
