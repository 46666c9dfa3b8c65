"""The run folder: it must take checkpoints before training starts, not fail halfway through, and a
command refused before it trained leaves none behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from genlab.errors import ConfigError
from genlab.run.lock import LOCK_FILE


def why_unwritable(folder: Path) -> str | None:
    """Why no file can be written into `folder` (or into it once created), in words; None when one can.

    A probe file in the folder, or in its nearest existing parent, is made and removed at once: cheap enough
    to ask before an hour of sampling, and it creates nothing that stays.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            return f"{existing} is a broken link"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{existing} cannot be written ({error.strerror or error})"
    return None


def nearest_existing(folder: Path) -> Path:
    """`folder`, or the closest of its parents that exists: where creating it would start."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable(folder: Path, min_free_mb: float) -> None:
    """Write a probe file where `folder` is (or would be created); demand `min_free_mb` free there.

    Creates nothing that stays: a run folder appears only when the run really starts.
    """
    reason = why_unwritable(folder)
    if reason is not None:
        raise ConfigError(f"cannot write to the run folder {folder} ({reason}): choose another with"
                          " paths.log_dir=... or hydra.run.dir=...")
    free_mb = shutil.disk_usage(nearest_existing(folder)).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(
            f"only {free_mb:.0f} MB free where the run folder {folder} lies, less than paths.min_free_mb={min_free_mb}:"
            " free some space or choose another folder with paths.log_dir=..."
        )


# file systems name a folder in at most 255 bytes; a job folder's name leaves room for its number
LONGEST_NAME = 240


def path_safe(text: str) -> str:
    """A sweep job's folder name from its overrides: `/` (model/net=mlp) would make nested folders; a name too
    long for the file system keeps its start and ends with a hash of the whole (the same overrides, the same name,
    which resume_sweep=true relies on)."""
    name = str(text).replace("/", ".")
    if len(name.encode()) <= LONGEST_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name.encode()[: LONGEST_NAME - 13].decode(errors="ignore") + "~" + digest


def contents(folder: Path) -> list[str]:
    """What `folder` holds, less the lock of a process working there (a missing folder holds nothing)."""
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.name != LOCK_FILE)


def check_new_run_folder(folder: Path, command: str) -> None:
    """A new run writes into a folder of its own: one that holds anything (a finished run, a user's files) is refused."""
    held = contents(folder)
    if not held:
        return
    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
    way_on = " or continue that run: genlab train ckpt_path=<it>/checkpoints/last.ckpt resume_in=same" if command == "train" else ""
    raise ConfigError(f"hydra.run.dir={folder} already holds {shown}: genlab never writes a run over another;"
                      f" leave hydra.run.dir out (a new folder each time){way_on}")


def first_missing(folder: Path) -> Path | None:
    """The topmost folder that creating `folder` would create, or None when it exists already."""
    folder = folder.resolve()
    if folder.exists():
        return None
    while not folder.parent.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def holds_only_a_refused_start(folder: Path) -> bool:
    """True when `folder` holds nothing but what a command writes before training starts.

    That is Hydra's `.hydra/`, log files (`<job>.log`) and a `summary.json` whose status is failed
    (train records every failure there). Checkpoints, samples, logger folders or a completed
    summary mean a run trained: such a folder is never a refused start.
    """
    for entry in folder.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.name == ".hydra" and entry.is_dir():
            continue
        if entry.suffix == ".log" and entry.is_file():
            continue
        if entry.name == "summary.json" and entry.is_file() and _failed(entry):
            continue
        return False
    return True


def _failed(summary: Path) -> bool:
    """The summary says status failed (an unreadable one counts as a run's record, and is kept)."""
    try:
        return json.loads(summary.read_text()).get("status") == "failed"
    except (OSError, ValueError, AttributeError):
        return False


def discard_refused_run(folder: Path, top: Path | None) -> bool:
    """Remove the run folder of a command refused before training started; True if it was removed.

    Only a folder that this command created (`top`: the topmost folder it created for it, found by
    first_missing before Hydra made it; None: it was there before) and that holds nothing but a refused
    start goes, with the parents created for it while they are empty: a refused input leaves no trace,
    and nothing a user or another run made is ever touched.
    """
    folder = folder.resolve()
    if top is None or not folder.is_dir() or not holds_only_a_refused_start(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    removed = not folder.exists()
    if removed and folder != top:
        remove_empty_up_to(folder.parent, top)
    return removed


def remove_empty_up_to(folder: Path, top: Path | None) -> None:
    """Remove `folder` and its parents up to `top` (the topmost folder this command created; None: none), while
    they are empty: rmdir fails, and stops here, once a folder holds something another run or the user made."""
    if top is None:
        return
    folder = folder.resolve()
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top or folder == folder.parent:
            return
        folder = folder.parent
