"""The runs below a folder, as `genlab report` reads them: each run's summary.json and .hydra/ record (whole, or
not at all: a run that cannot be read is kept apart with its file and fault), its curves, and its judge."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from genlab.errors import first_line, is_number
from genlab.run.summary import FILENAME


@dataclass
class Run:
    folder: Path
    name: str
    status: str
    overrides: list[str]
    metrics: dict[str, float]
    optimized_metric: str | None
    error: str | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    label: str = ""  # the overrides that set this run apart from the others
    continued_in: str | None = None  # an interrupted search trial that a later trial went on from
    judge: str | None = None  # the domain classifier that judged its val/* sample quality (key and weights)
    seconds: float | None = None  # the wall clock of its training (summary.json)

    @property
    def samples(self) -> Path | None:
        """Its last grid: samples from noise, or an image-to-image run's input | outputs | target rows."""
        grids = (self.folder / "samples" / "last.png", self.folder / "translations" / "last.png")
        return next((grid for grid in grids if grid.is_file()), None)

    @property
    def interrupted_checkpoint(self) -> Path | None:
        """The checkpoint an interrupted run resumes from (genlab.callbacks.interrupt writes it on Ctrl-C/SIGTERM)."""
        if self.status in ("completed", "pruned"):
            return None
        checkpoint = self.folder / "checkpoints" / "interrupted.ckpt"
        return checkpoint if self.status == "interrupted" or checkpoint.is_file() else None


# overrides that steer how a run was launched, not what it trained (a re-run sweep's flag)
NOT_SETTINGS = ("resume_sweep=",)


class UnreadableFile(Exception):
    """A file of a run (or of the folder) that the report cannot use: which file and what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path, self.problem = path, problem


@dataclass
class UnreadableRun:
    """A run left out of the report, and why: listed in report.md and warned about, never a traceback."""

    name: str
    reason: UnreadableFile


# summary.json's fields (genlab/run/summary.py): status is required; every other may be missing or null
SUMMARY_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "overrides": (list,), "metrics": (dict,), "optimized_metric": (str,), "error": (str,),
    "continued_in": (str,), "seconds": (int, float), "judge": (dict,),
}


def kind_of(value: Any) -> str:
    """A JSON or YAML value's kind in words, for messages: `a list`, `a string`, `null`."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def read_text(path: Path) -> str:
    """A file's text, or UnreadableFile naming what stops it being read (permissions, bytes that are not UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableFile(path, f"cannot be read ({getattr(error, 'strerror', None) or first_line(error)})") from error
    if not text.strip():
        raise UnreadableFile(path, "is empty")
    return text


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise UnreadableFile(path, f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg});"
                                   " it may have been cut short") from error
    if not isinstance(data, dict):
        raise UnreadableFile(path, f"holds {kind_of(data)}, not an object of the run's fields")
    return data


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.load(read_text(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UnreadableFile(path, f"is not valid YAML ({at}{getattr(error, 'problem', None) or first_line(error)})") from error


def check_summary(path: Path, summary: dict[str, Any]) -> None:
    """Each field summary.json holds has the type genlab writes; each metric is a number (NaN included)."""
    if "status" not in summary:
        raise UnreadableFile(path, 'has no "status" (genlab writes completed, failed, interrupted or pruned)')
    for name, types in SUMMARY_FIELDS.items():
        value = summary.get(name)
        if (value is not None or name == "status") and (not isinstance(value, types) or isinstance(value, bool)):
            wanted = " or ".join(kind_of(t()) for t in types if t is not float)
            raise UnreadableFile(path, f'has "{name}": {json.dumps(value)[:40]}, which is not {wanted}')
    for name, value in (summary.get("metrics") or {}).items():
        if not is_number(value):
            raise UnreadableFile(path, f'has metrics["{name}"] = {json.dumps(value)[:40]}, which is not a number')
    if not all(isinstance(o, str) for o in summary.get("overrides") or []):
        raise UnreadableFile(path, '"overrides" holds something other than strings (key=value overrides)')


def hydra_record(folder: Path) -> list[str] | None:
    """Check the run's own .hydra/config.yaml and overrides.yaml (the files `genlab eval`, `genlab sample` and a
    resume rebuild it from); return the overrides Hydra recorded, None where it recorded none."""
    config, overrides = folder / ".hydra" / "config.yaml", folder / ".hydra" / "overrides.yaml"
    if config.exists() and not isinstance(composed := read_yaml(config), dict):
        raise UnreadableFile(config, f"holds {kind_of(composed)}, not a mapping of config keys")
    if not overrides.exists():
        return None
    recorded = read_yaml(overrides)
    if not isinstance(recorded, list) or not all(isinstance(o, str) for o in recorded):
        raise UnreadableFile(overrides, f"holds {kind_of(recorded)}, not a list of key=value overrides")
    return recorded


def read_run(path: Path, root: Path) -> Run:
    """One run from its summary.json (and Hydra's record beside it); UnreadableFile when either cannot be used."""
    summary = read_json_object(path)
    check_summary(path, summary)
    recorded = hydra_record(path.parent)
    overrides = summary.get("overrides")
    if overrides is None:  # a summary written by hand or by an older genlab: Hydra's record of the command line
        overrides = recorded or []
    return Run(
        folder=path.parent,
        name=run_name(path.parent, root),
        status=summary["status"],
        overrides=[o for o in overrides if not o.startswith(NOT_SETTINGS)],
        metrics={name: float(value) for name, value in (summary.get("metrics") or {}).items()},
        optimized_metric=summary.get("optimized_metric"),
        error=summary.get("error"),
        continued_in=summary.get("continued_in"),
        judge=judge_of(summary),
        seconds=summary.get("seconds"),
    )


def run_name(folder: Path, root: Path) -> str:
    return str(folder.relative_to(root)) if folder != root else folder.name


def read_runs(root: Path) -> tuple[list[Run], list[UnreadableRun]]:
    """Every run below `root` that can be read, and the ones that cannot (with the file and its fault)."""
    runs, unreadable = [], []
    for path in sorted(root.rglob(FILENAME)):
        try:
            runs.append(read_run(path, root))
        except UnreadableFile as reason:
            unreadable.append(UnreadableRun(run_name(path.parent, root), reason))
    return runs, unreadable


# the logged metrics a domain classifier judges (genlab/callbacks/sample_quality.py)
JUDGED_METRICS = ("val/fid", "val/coverage_entropy", "val/label_accuracy")


def judge_of(summary: dict[str, Any]) -> str | None:
    """`<cache key>, weights <sha256 prefix>` of the classifier that judged a run's val/* metrics (summary.json), or None."""
    classifier = (summary.get("judge") or {}).get("classifier")
    if not isinstance(classifier, dict) or not classifier.get("key"):
        return None
    return f"{classifier['key']}, weights {str(classifier.get('weights_sha256', ''))[:12]}"


def judges_differ(runs: Sequence[Run]) -> dict[str, list[str]]:
    """The runs that logged judged metrics, by the classifier that judged them, when it was not one for all
    ({} when it was): their val/fid, coverage and label accuracy are not comparable across the groups."""
    judged = [run for run in runs if any(name in run.metrics for name in JUDGED_METRICS)]
    groups: dict[str, list[str]] = {}
    for run in judged:
        groups.setdefault(run.judge or "not recorded (a run of an earlier genlab)", []).append(run.name)
    return groups if len(groups) > 1 else {}


def judge_warning(groups: dict[str, list[str]]) -> str:
    return (f"these runs were judged by {len(groups)} different domain classifiers, so their "
            f"{', '.join(JUDGED_METRICS)} do not compare across them: "
            + "; ".join(f"{judge}: {', '.join(names)}" for judge, names in groups.items()))


def read_curves(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the run's TensorBoard event files (or its CSV log), as (step, value) lists."""
    curves: dict[str, list[tuple[int, float]]] = {}
    event_dirs = sorted({p.parent for p in folder.rglob("events.out.tfevents.*")})
    if event_dirs:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for directory in event_dirs:
            try:
                events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
                events.Reload()
                for tag in events.Tags().get("scalars", []):
                    curves.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
            except Exception as error:  # TensorBoard's reader raises its own kinds for a damaged event file
                raise UnreadableFile(directory, f"holds TensorBoard events that cannot be read ({first_line(error)})") from error
    for table in folder.rglob("metrics.csv"):
        try:
            with open(table, newline="") as handle:
                for row in csv.DictReader(handle):
                    for name, value in row.items():
                        if name not in ("step", "epoch") and value:
                            curves.setdefault(name, []).append((int(row["step"]), float(value)))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, csv.Error) as error:
            raise UnreadableFile(table, f"is not a table of numbers by step as genlab's CSV logger writes ({first_line(error)})") from error
    return {name: sorted(set(points)) for name, points in curves.items()}


def read_all_curves(runs: Sequence[Run], warnings: list[str]) -> None:
    """Each run's curves; a run whose logs cannot be read keeps its row, without a curve, and a warning says why."""
    for run in runs:
        try:
            run.curves = read_curves(run.folder)
        except UnreadableFile as reason:
            warnings.append(f"genlab report: warning: no curve of run {run.name}: {reason}: repair or remove it to plot the run")
