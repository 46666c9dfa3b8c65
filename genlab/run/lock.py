"""One genlab process at a time in a run or sweep folder: an advisory lock (flock) on `<folder>/.genlab.lock`.

The operating system releases it however the process ends (an exit, a crash, SIGKILL), so a stale lock never
blocks a resume; the file goes when the holder lets go. Processes that share one run by design (DDP ranks
that Lightning or SLURM starts beside rank 0) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from genlab.errors import GenlabError

LOCK_FILE = ".genlab.lock"
# folder -> the open file that holds its lock, for as long as this process works there
HELD: dict[Path, int] = {}
# what launchers set in the processes they start beside rank 0 (Lightning's DDP, torchrun, SLURM's srun)
RANK_VARIABLES = ("LOCAL_RANK", "RANK", "SLURM_PROCID", "NODE_RANK")


class RunFolderBusy(GenlabError):
    """Another genlab process trains (or evaluates) in this folder now."""

    exit_code = 3


def is_secondary_rank() -> bool:
    """True in a process that a distributed launcher started beside rank 0 (it shares rank 0's folder)."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in RANK_VARIABLES)


def holder_of(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"


def lock_folder(folder: Path, what: str) -> None:
    """Take `folder`'s lock (creating the folder), or refuse in one line naming the process that holds it."""
    folder = folder.resolve()
    if folder in HELD or is_secondary_rank():
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunFolderBusy(f"{folder} is in use by {holder_of(path)}: two commands cannot write one {what} at once;"
                            " wait for it to end, or choose another folder") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"genlab process {os.getpid()}\n".encode())
    HELD[folder] = descriptor


def release_folders() -> None:
    """Let go of every lock this process holds (its command ended), removing the lock files."""
    while HELD:
        folder, descriptor = HELD.popitem()
        try:
            (folder / LOCK_FILE).unlink(missing_ok=True)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)
