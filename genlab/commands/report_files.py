"""The files `genlab report` writes, and its promise about them: it replaces only what it wrote itself.

A report is drawn into a staging folder first. Before one file reaches the report's folder, each name it
would take there is checked: a file already there is replaced only when it is still, byte for byte, what
an earlier report wrote (its sha256 in the folder's record, `.genlab-report.json`); anything else (a
user's own report.csv, a report.md edited since) refuses the whole command, so a refused command leaves
nothing behind. Each file then goes in atomically (genlab/run/atomic.py): a crash leaves the old version
or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from genlab.errors import ConfigError, first_line
from genlab.run.atomic import atomic_write, atomic_write_json
from genlab.run.file_digest import file_sha256

RECORD = ".genlab-report.json"
WRITER = "genlab report"

# name in the report's folder -> the sha256 of each version genlab report wrote there that it may replace
Record = dict[str, list[str]]


def where(out: Path, chosen: bool) -> str:
    """How a message names the report's folder: by the flag that chose it, or as the runs' folder."""
    return f"--out {out}" if chosen else f"the runs' folder {out}"


def check_out_folder(out: Path, chosen: bool) -> None:
    """Refuse, before any work, a report folder that is a file, lies below a file, or cannot be written.

    Creates nothing: a missing folder is made only once the report is ready to go in.
    """
    other = "give a folder (created if missing)" if chosen else "write the report elsewhere with --out <folder>"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{where(out, chosen)} is a file, not a folder: {other}")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{where(out, chosen)} lies below {existing}, which is a file: {other}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ConfigError(f"{where(out, chosen)} cannot be written ({error.strerror}): choose a folder you can write"
                          " with --out <folder>") from error


def read_record(out: Path) -> Record:
    """The files an earlier report wrote into `out` ({} when none did). A file of the record's name that is
    not such a record is someone else's: refused, never overwritten."""
    path = out / RECORD
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        data = {"unreadable": first_line(error)}
    files = data.get("files") if isinstance(data, dict) and data.get("written_by") == WRITER else None
    if not isinstance(files, dict) or not all(isinstance(h, list) for h in files.values()):
        raise ConfigError(f"{path} is not genlab report's record of the files it wrote: move it away, or write the"
                          " report elsewhere with --out <another folder>")
    return {str(name): [str(h) for h in hashes] for name, hashes in files.items()}


def write_record(out: Path, record: Record) -> None:
    atomic_write_json(out / RECORD, {"written_by": WRITER, "files": dict(sorted(record.items()))})


def staged_files(stage: Path) -> list[str]:
    """Every file of the staged report, as a path relative to the report's folder (`grids/x.png`)."""
    return sorted(path.relative_to(stage).as_posix() for path in stage.rglob("*") if path.is_file())


def foreign(out: Path, name: str, record: Record) -> Path | None:
    """What stands where the report would write `name`, if genlab report did not put it there unchanged:
    a file of another's or edited since, a folder, a link, or a file where a folder of the report goes."""
    target = out / name
    for parent in reversed(target.relative_to(out).parents[:-1]):  # the report's own subfolders (grids/)
        folder = out / parent
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return folder
    if not (target.exists() or target.is_symlink()):
        return None
    if target.is_symlink() or not target.is_file() or file_sha256(target) not in record.get(name, []):
        return target
    return None


def refuse_foreign_files(names: list[str], out: Path, record: Record, chosen: bool) -> None:
    """One line naming the first file the report would replace without having written it, and the way out."""
    standing = sorted({path for name in names if (path := foreign(out, name, record)) is not None})
    if not standing:
        return
    more = f" (and {len(standing) - 1} more of the report's file names there)" if len(standing) > 1 else ""
    other = "--out <another folder>" if chosen else "--out <folder>"
    raise ConfigError(f"{standing[0]} exists and genlab report did not write it (or it changed since){more}: move it"
                      f" away, or write the report elsewhere with {other}")


def publish(stage: Path, out: Path, chosen: bool) -> list[Path]:
    """Move the staged report into `out`, replacing only files genlab report wrote there; the paths written.

    The record is written first with both the old and the new version of each file, so that a crash while
    the files go in leaves every one of them replaceable by the next report.
    """
    names = staged_files(stage)
    record = read_record(out)
    refuse_foreign_files(names, out, record, chosen)
    new = {name: file_sha256(stage / name) for name in names}
    kept = {name: hashes for name, hashes in record.items() if (out / name).is_file()}
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_record(out, {**kept, **{name: sorted({*kept.get(name, []), digest}) for name, digest in new.items()}})
        for name in names:
            with open(stage / name, "rb") as source:
                atomic_write(out / name, lambda stream: shutil.copyfileobj(source, stream))
        write_record(out, {**kept, **{name: [digest] for name, digest in new.items()}})
    except OSError as error:
        raise ConfigError(f"cannot write the report into {out} ({error.strerror or first_line(error)}): free some"
                          " space or write it elsewhere with --out <folder>") from error
    return [out / name for name in names]


def relative_link(target: Path, report_dir: Path) -> str:
    """A Markdown link destination from the report's folder to `target`, valid with spaces or brackets in it
    (CommonMark's `<...>` form)."""
    path = Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix()
    if not any(c.isspace() or c in "()<>" for c in path):
        return path
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"
