"""`genlab report <folder> --mean-over seed`: runs that differ only in one key (their seed) as one row each,
every metric as mean ± std over them, and one sample grid per row side by side.

A study is a sweep and this report: `genlab train -m recipe=a,b seed=0,1,2 ...` trains every (recipe, seed),
`evaluate={...}` judges each at its end (test/<metric>), and the report tabulates the recipes over seeds
(docs/results.md shows the commands that made its tables).
"""

from __future__ import annotations

import csv
import math
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from genlab.commands.report_files import relative_link
from genlab.presentation import format_value


@dataclass
class Group:
    """The completed runs whose overrides differ only in the averaged key."""

    label: str
    runs: list[Any] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [run.metrics[metric] for run in self.runs if metric in run.metrics and math.isfinite(run.metrics[metric])]

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.mean(values) if values else math.nan

    def std(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else math.nan

    def cell(self, metric: str) -> str:
        """`mean ± std` (or the one value), empty when no run logged it."""
        values = self.values(metric)
        if not values:
            return ""
        return format_value(values[0]) if len(values) == 1 else f"{format_value(self.mean(metric))} ± {self.std(metric):.2g}"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_runs(runs: Sequence[Any], key: str) -> list[Group]:
    """Completed runs by their varied overrides without `key` (run.label, which genlab report sets), in order."""
    groups: dict[str, Group] = {}
    for run in runs:
        if run.status != "completed":
            continue
        label = " ".join(o for o in run.label.split(" ") if override_key(o) != key) or "(the defaults)"
        groups.setdefault(label, Group(label)).runs.append(run)
    return list(groups.values())


def sort_groups(groups: list[Group], objective: str | None, higher: bool) -> list[Group]:
    def key(group: Group) -> tuple[bool, float]:
        value = group.mean(objective) if objective else math.nan
        return (math.isnan(value), -value if higher else value)

    return sorted(groups, key=key)


def markdown(groups: list[Group], columns: list[str], key: str, objective: str | None,
             pictures: dict[str, Path], out: Path) -> list[str]:
    """The report's section: one row per group, each metric as mean ± std over the runs' `key`, with the group's
    picture (`pictures`, copied into the report's folder `out`)."""
    keys = sorted({o for group in groups for run in group.runs for o in run.overrides if override_key(o) == key})
    lines = ["", f"## Mean over {key}", "",
             f"Each row: the completed runs that differ only in `{key}` ({', '.join(f'`{k}`' for k in keys) or 'none'}),"
             f" every metric as mean ± std over them" + (f", sorted by `{objective}`" if objective else "") +
             "; minutes: the wall clock of training, mean over the runs.", ""]
    header = ["group", "runs", *(f"`{c}`" for c in columns), "minutes", "samples (first run)"]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for group in groups:
        minutes = [run.seconds / 60 for run in group.runs if run.seconds is not None]
        spent = f"{statistics.mean(minutes):.1f}" if minutes else ""
        picture = f"![]({relative_link(pictures[group.label], out)})" if group.label in pictures else ""
        lines.append("| " + " | ".join([f"`{group.label}`", str(len(group.runs)), *(group.cell(c) for c in columns),
                                         spent, picture]) + " |")
    return lines


def write_csv(groups: list[Group], columns: list[str], path: Path) -> None:
    """report_groups.csv: per group, each metric's mean, std and number of runs."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "runs", *(f"{c}{part}" for c in columns for part in ("", " std", " n"))])
        for group in groups:
            cells = []
            for column in columns:
                cells += [format_value(group.mean(column), 6), format_value(group.std(column), 3), len(group.values(column))]
            writer.writerow([group.label, len(group.runs), *cells])


def copy_grids(groups: list[Group], out: Path) -> dict[str, Path]:
    """Each group's first run's last sample grid, copied to <out>/grids/<group>.png (the report keeps its pictures
    beside it, wherever the runs lie)."""
    copies = {}
    for group in groups:
        grid = group.runs[0].samples
        if grid is None:
            continue
        copy = out / "grids" / f"{group.label.replace('/', '.').replace(' ', '_')}.png"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(grid, copy)
        copies[group.label] = copy
    return copies


def open_picture(path: Path) -> Any:
    """A run's sample grid as an RGB image, or None when it is not one PIL can read (a grid cut short): the
    strip shows the other groups, and report.md still links this one."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, SyntaxError, ValueError):  # PIL.UnidentifiedImageError is an OSError
        return None


def strip(groups: list[Group], pictures: dict[str, Path], objective: str | None, path: Path) -> Path | None:
    """The groups' pictures side by side, four to a row, each captioned with its group and objective: a look at
    every group at once."""
    from PIL import Image, ImageDraw

    shown = []
    for group in groups:
        if group.label in pictures and (picture := open_picture(pictures[group.label])) is not None:
            caption = group.label + (f"\n{objective} {group.cell(objective)}" if objective and group.values(objective) else "")
            shown.append((caption, picture))
    if not shown:
        return None
    caption_height, gap, per_row = 30, 8, 4
    width = max(picture.width for _, picture in shown) + gap
    height = caption_height + max(picture.height for _, picture in shown) + gap
    rows = math.ceil(len(shown) / per_row)
    canvas = Image.new("RGB", (width * min(per_row, len(shown)) - gap, height * rows - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (caption, picture) in enumerate(shown):
        x, y = width * (index % per_row), height * (index // per_row)
        draw.multiline_text((x + 2, y + 2), caption, fill="black", spacing=2)
        canvas.paste(picture, (x, y + caption_height))
    canvas.save(path)
    return path
