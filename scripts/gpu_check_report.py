"""The GPU check's findings as one dated section of a markdown file, rewritten after every row.

A lent GPU machine may be taken back mid-run, so the section is saved whole after each finding: a run cut
short still leaves every figure it measured, and says where it stopped. Re-running on the same day and
device replaces that section and nothing else in the file. No torch here: the check's bookkeeping is
importable and testable without it.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class CheckFailed(Exception):
    """A wrong result (NaN, a wrong shape, devices that disagree): the check stops at the first one."""

    def __init__(self, stage: str, subject: str, what: str) -> None:
        super().__init__(f"{stage}, {subject}: {what}")
        self.stage, self.subject, self.what = stage, subject, what


@dataclass
class Stage:
    """One stage's outcome: passed, failed, skipped (and why), or stopped when its time budget ran out."""

    name: str
    title: str
    status: str = "not run"
    seconds: float = 0.0
    note: str = ""


@dataclass
class Table:
    """A table of a stage's figures, with a line that says how to read them."""

    title: str
    about: str
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Report:
    """Everything the section shows; `save()` writes it into `path`, replacing the same day's and device's."""

    path: Path
    date: str
    device: str
    command: str
    facts: list[str] = field(default_factory=list)
    stages: dict[str, Stage] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    outcome: str = "running: this section is rewritten as the check goes on"

    @property
    def heading(self) -> str:
        return f"## GPU check, {self.date} ({self.device})"

    def add_row(self, table: str, row: dict[str, object]) -> None:
        """One finding, saved at once."""
        self.tables[table].rows.append({column: str(value) for column, value in row.items()})
        self.save()

    def set_stage(self, name: str, status: str, seconds: float, note: str = "") -> None:
        stage = self.stages[name]
        stage.status, stage.seconds, stage.note = status, seconds, note
        self.save()

    def render(self) -> str:
        stage_rows = [{"stage": s.title, "status": s.status, "seconds": f"{s.seconds:.0f}" if s.seconds else "",
                       "note": s.note} for s in self.stages.values()]
        parts = [self.heading, "", f"**{self.outcome}**", "", "```bash", self.command, "```", ""]
        parts += [f"- {fact}" for fact in self.facts] + [""]
        parts += [markdown_table(["stage", "status", "seconds", "note"], stage_rows), ""]
        for table in self.tables.values():
            if table.rows:
                parts += [f"### {table.title}", "", table.about, "", markdown_table(table.columns, table.rows), ""]
        return "\n".join(parts)

    def save(self) -> None:
        write_section(self.path, self.heading, self.render())


def markdown_table(columns: list[str], rows: list[dict[str, str]]) -> str:
    """A GitHub table; a cell a row lacks stays empty, and a `|` inside a cell is escaped."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(row.get(column, "").replace("|", "\\|") for column in columns) + " |")
    return "\n".join(lines)


def replace_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` (up to the next `## ` heading) replaced by `section`, or with
    `section` appended when there is none."""
    section = section.rstrip("\n") + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        following = pattern.sub(lambda _: section + "\n", text, count=1)
        return following.rstrip("\n") + "\n"
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + section


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace or append the section atomically: a reader (or a run killed mid-write) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(replace_section(text, heading, section))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
