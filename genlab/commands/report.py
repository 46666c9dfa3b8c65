"""`genlab report <folder>`: one comparison of every run below a folder (a sweep, or all of outputs/).

Writes report.md (a Markdown table sorted by the objective, with each run's last sample grid),
report.csv, and report_<metric>.png (the metric of every run against generator updates, the
axis that means the same amount of training for every family), and lists failed jobs with the
command that re-runs each and interrupted ones with the command that resumes each.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from genlab.errors import first_line  # an error's first line: the rest would break the Markdown list
from genlab.presentation import format_value, save_figure
from genlab.run.summary import FILENAME, read_summary

# metrics where higher is better; every other metric is sorted ascending
HIGHER_IS_BETTER = {"val/elbo", "train/elbo", "val/is", "val/precision", "val/recall", "val/coverage_entropy"}
PREFERRED_OBJECTIVES = ("val/fid", "val/kid", "val/loss", "val/elbo")


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
        grid = self.folder / "samples" / "last.png"
        return grid if grid.is_file() else None

    @property
    def interrupted_checkpoint(self) -> Path | None:
        """The checkpoint an interrupted run resumes from (genlab.callbacks.interrupt writes it on Ctrl-C/SIGTERM)."""
        if self.status in ("completed", "pruned"):
            return None
        checkpoint = self.folder / "checkpoints" / "interrupted.ckpt"
        return checkpoint if self.status == "interrupted" or checkpoint.is_file() else None


# overrides that steer how a run was launched, not what it trained (a re-run sweep's flag)
NOT_SETTINGS = ("resume_sweep=",)


def find_runs(root: Path) -> list[Run]:
    runs = []
    for path in sorted(root.rglob(FILENAME)):
        summary = read_summary(path)
        runs.append(
            Run(
                folder=path.parent,
                name=str(path.parent.relative_to(root)) if path.parent != root else path.parent.name,
                status=summary["status"],
                overrides=[o for o in summary.get("overrides", []) if not o.startswith(NOT_SETTINGS)],
                metrics=summary.get("metrics", {}),
                optimized_metric=summary.get("optimized_metric"),
                error=summary.get("error"),
                continued_in=summary.get("continued_in"),
                judge=judge_of(summary),
                seconds=summary.get("seconds"),
            )
        )
    return runs


# the logged metrics a domain classifier judges (genlab/callbacks/sample_quality.py)
JUDGED_METRICS = ("val/fid", "val/coverage_entropy", "val/label_accuracy")


def judge_of(summary: dict[str, Any]) -> str | None:
    """`<cache key>, weights <sha256 prefix>` of the classifier that judged a run's val/* metrics (summary.json), or None."""
    classifier = (summary.get("judge") or {}).get("classifier") or {}
    if not classifier.get("key"):
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
            events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
            events.Reload()
            for tag in events.Tags().get("scalars", []):
                curves.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    for table in folder.rglob("metrics.csv"):
        with open(table) as handle:
            for row in csv.DictReader(handle):
                for name, value in row.items():
                    if name not in ("step", "epoch") and value:
                        curves.setdefault(name, []).append((int(row["step"]), float(value)))
    return {name: sorted(set(points)) for name, points in curves.items()}


def label_runs(runs: Sequence[Run]) -> None:
    """Name each run by the overrides not shared by every run (what the sweep varied); a run with
    none of its own (single runs started with the defaults) keeps its folder's name."""
    shared = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    for run in runs:
        run.label = " ".join(o for o in run.overrides if o not in shared) or run.name


def choose_objective(runs: Sequence[Run], requested: str | None) -> str | None:
    if requested:
        return requested
    declared = {r.optimized_metric for r in runs if r.optimized_metric}
    if len(declared) == 1:
        return declared.pop()
    logged = {name for r in runs for name in r.metrics}
    return next((name for name in PREFERRED_OBJECTIVES if name in logged), None)


def higher_is_better(objective: str | None, mode: str | None) -> bool:
    return (mode == "max") if mode else (objective in HIGHER_IS_BETTER)


def study_mode(folder: Path) -> str | None:
    """An Optuna search's folder: `max` or `min` from its study's direction (study.yaml), which ranks
    its runs the way the study did whatever the metric's name; None for any other folder."""
    record = folder / "study.yaml"
    if not record.is_file():
        return None
    from omegaconf import OmegaConf

    direction = OmegaConf.load(record).get("direction")
    return {"maximize": "max", "minimize": "min"}.get(direction)


def sort_runs(runs: list[Run], objective: str | None, mode: str | None) -> list[Run]:
    higher = higher_is_better(objective, mode)

    def key(run: Run) -> tuple[bool, float]:
        """Completed runs with the objective first, best first; the rest after, in their order."""
        value = run.metrics.get(objective, math.nan) if objective else math.nan
        if run.status != "completed" or math.isnan(value):
            return (True, 0.0)
        return (False, -value if higher else value)

    return sorted(runs, key=key)


def logged_metrics(runs: Sequence[Run]) -> list[str]:
    """Every final metric some run logged (learning rates left out: they are settings, not results)."""
    return sorted({name for r in runs for name in r.metrics if not name.startswith("lr-")})


def metric_columns(runs: Sequence[Run], objective: str | None) -> list[str]:
    names = logged_metrics(runs)
    return ([objective] if objective in names else []) + [n for n in names if n != objective]


def sort_order(runs: Sequence[Run], objective: str | None, mode: str | None = None) -> str:
    """One sentence on how the runs are ranked, or why they are not (no run logged the objective)."""
    if objective and any(objective in r.metrics for r in runs):
        return f"sorted by {objective} ({'higher' if higher_is_better(objective, mode) else 'lower'} is better)"
    logged = ", ".join(logged_metrics(runs)) or "none"
    wanted = objective or ", ".join(PREFERRED_OBJECTIVES)
    return f"not sorted: no run logged a metric to sort by ({wanted}; choose one with --metric); they logged: {logged}"


def short_name(name: str) -> str:
    """A sweep job's folder `<n>_<overrides>` as `<n>` (the overrides have their own column); any other folder whole."""
    parent, _, folder = name.rpartition("/")
    number, sep, _ = folder.partition("_")
    if not (sep and number.isdigit()):
        return name
    return f"{parent}/{number}" if parent else number


def hydra_value(text: str) -> str:
    """A value Hydra's override grammar reads back as it is: quoted when it holds `=`, `,` or other syntax."""
    if re.fullmatch(r"[\w/.+@-]+", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def single_run(overrides: Sequence[str]) -> list[str]:
    """A search trial's overrides as one run: without hparams_search=..., which would start a whole search."""
    return [o for o in overrides if not o.startswith("hparams_search=")]


def rerun_command(run: Run) -> str:
    """The shell command that trains a failed run again from scratch, with its overrides."""
    return " ".join(["genlab", "train", *map(shlex.quote, single_run(run.overrides))])


def resume_command(run: Run, checkpoint: Path) -> str:
    """The shell command that resumes an interrupted run from its checkpoint (an older ckpt_path gives way)."""
    overrides = [o for o in single_run(run.overrides) if not o.startswith("ckpt_path=")]
    overrides.append(f"ckpt_path={hydra_value(str(checkpoint))}")
    return " ".join(["genlab", "train", *map(shlex.quote, overrides)])


def table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_csv(runs: Sequence[Run], columns: list[str], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "status", "overrides", *columns, "samples"])
        for run in runs:
            writer.writerow([
                run.name, run.status, " ".join(run.overrides),
                *(format_value(run.metrics.get(c)) for c in columns), run.samples or "",
            ])


def unfinished_sections(runs: Sequence[Run]) -> list[str]:
    """Markdown for runs that did not complete: interrupted ones resume from their checkpoint, failed ones re-run."""
    interrupted = [(r, c) for r in runs if (c := r.interrupted_checkpoint)]
    failed = [r for r in runs if r.status not in ("completed", "pruned") and not r.interrupted_checkpoint]
    pruned = [r for r in runs if r.status == "pruned"]
    lines: list[str] = []
    if pruned:  # stopped early by an Optuna pruner: nothing to re-run
        lines += ["", "## Pruned trials", ""]
        lines += [f"- `{run.name}` (`{run.label}`): {first_line(run.error)}" for run in pruned]
    if interrupted:
        lines += ["", "## Interrupted runs", ""]
        for run, checkpoint in interrupted:
            lines.append(f"- `{run.name}`: {first_line(run.error) or 'interrupted'}")
            lines.append(f"  continued in `{run.continued_in}`" if run.continued_in else f"  resume: `{resume_command(run, checkpoint)}`")
    if failed:
        lines += ["", "## Failed runs", ""]
        for run in failed:
            lines += [f"- `{run.name}`: {first_line(run.error)}", f"  re-run: `{rerun_command(run)}`"]
    return lines


def write_markdown(runs: Sequence[Run], columns: list[str], objective: str | None, root: Path, plot: Path | None, path: Path,
                   mode: str | None = None) -> None:
    order = sort_order(runs, objective, mode)
    lines = [f"# Report: {root}", "", f"{order[0].upper()}{order[1:]}.", ""]
    header = ["rank", "run", "varied overrides", *(f"`{c}`" for c in columns), "samples"]
    lines += [table_row(header), "|---" * len(header) + "|"]
    for rank, run in enumerate((r for r in runs if r.status == "completed"), start=1):
        sample = f"![]({run.samples.relative_to(path.parent)})" if run.samples else ""
        values = [format_value(run.metrics.get(c)) for c in columns]
        lines.append(table_row([str(rank), short_name(run.name), f"`{run.label}`", *values, sample]))
    groups = judges_differ(runs)
    if groups:
        lines += ["", "## Judged by different classifiers", "", f"**Warning:** {judge_warning(groups)}.",
                  "(`classifier.*` settings or data that differ train another domain classifier; see each run's summary.json)"]
    if plot:
        lines += ["", f"![every run's curve]({plot.name})"]
    lines += unfinished_sections(runs)
    again = sweep_rerun_command(root)
    if again and any(r.status not in ("completed", "pruned") for r in runs):
        lines += ["", "Or the whole sweep again, in its folder: jobs that completed are skipped, interrupted and failed"
                  " ones go on from their last checkpoint (or start over without one):", "", f"    {again}"]
    path.write_text("\n".join(lines) + "\n")


def sweep_rerun_command(root: Path) -> str | None:
    """For a grid sweep's folder (Hydra's multirun.yaml in it): its own command with resume_sweep=true."""
    path = root / "multirun.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    overrides = OmegaConf.to_container(OmegaConf.load(path).hydra.overrides, resolve=False)
    task = [o for o in overrides.get("task", []) if not o.startswith("resume_sweep=")]
    steering = [o for o in overrides.get("hydra", []) if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    words = [*task, *steering, "resume_sweep=true", f"hydra.sweep.dir={hydra_value(str(root))}"]
    return " ".join(["genlab", "train", "-m", *map(shlex.quote, words)])


# the common axis of every family: generator updates (genlab/modules/progress.py counts them)
PROGRESS_CURVES = ("train/generator_steps", "val/generator_steps")


def progress_axis(run: Run) -> list[tuple[int, float]]:
    """(logger step, generator updates) points of a run: the logger's step counts batches, which
    mean different amounts of training per family; generator updates mean the same for all."""
    return sorted({point for name in PROGRESS_CURVES for point in run.curves.get(name, [])})


def on_progress_axis(points: list[tuple[int, float]], axis: list[tuple[int, float]]) -> list[tuple[float, float]]:
    """Each (step, value) moved to (generator updates, value), interpolated between logged progress points."""
    import numpy as np

    steps, progress = zip(*axis)
    return [(float(np.interp(step, steps, progress)), value) for step, value in points]


def plot_curves(runs: Sequence[Run], metric: str, path: Path) -> Path | None:
    """The metric of every run against generator updates (or, if a run did not log them, against the logger's step)."""
    with_curve = [r for r in runs if r.curves.get(metric)]
    if not with_curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = all(progress_axis(run) for run in with_curve)
    figure, axes = plt.subplots(figsize=(8, 5))
    for run in with_curve:
        points = on_progress_axis(run.curves[metric], progress_axis(run)) if common else run.curves[metric]
        x, values = zip(*points)
        axes.plot(x, values, label=run.label, linewidth=1.2, marker="o", markersize=3)
    axes.set_xlabel("generator updates" if common else "logger step (batches; not comparable across families)")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} for {len(with_curve)} runs")
    return save_figure(figure, axes, path, legend_size=7)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genlab report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a multirun folder, a run folder, or outputs/")
    parser.add_argument("--metric", help="the objective to sort by (default: the runs' optimized_metric, else val/fid, val/loss, ...)")
    parser.add_argument("--mode", choices=("min", "max"), help="whether lower or higher is better (default: a search's direction, else by metric name)")
    parser.add_argument("--out", type=Path, help="where to write the report files (default: the folder)")
    parser.add_argument("--mean-over", metavar="KEY",
                        help="also one row per group of runs that differ only in this key (e.g. seed): each metric's"
                             " mean ± std over them, report_groups.csv, and report_grids.png (one grid per group)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.folder.is_dir():
        print(f"genlab report: {args.folder} is not a folder", file=sys.stderr)
        return 2
    runs = find_runs(args.folder)
    if not runs:
        print(f"genlab report: no runs (no {FILENAME}) found below {args.folder}", file=sys.stderr)
        return 2
    objective = choose_objective(runs, args.metric)
    mode = args.mode or study_mode(args.folder)
    runs = sort_runs(runs, objective, mode)
    label_runs(runs)
    out = args.out or args.folder
    out.mkdir(parents=True, exist_ok=True)
    curve_metric = objective or "train/g_loss"
    for run in runs:
        run.curves = read_curves(run.folder)
    plot = plot_curves(runs, curve_metric, out / f"report_{curve_metric.replace('/', '_')}.png")
    columns = metric_columns(runs, objective)
    write_csv(runs, columns, out / "report.csv")
    write_markdown(runs, columns, objective, args.folder, plot, out / "report.md", mode)
    grouped = append_groups(runs, columns, objective, mode, args.mean_over, out) if args.mean_over else None
    study_plot = append_study(args.folder, out)
    completed = sum(r.status == "completed" for r in runs)
    pruned = sum(r.status == "pruned" for r in runs)
    interrupted = sum(r.interrupted_checkpoint is not None for r in runs)
    failed = len(runs) - completed - pruned - interrupted
    print(f"{len(runs)} runs ({completed} completed, {pruned} pruned, {failed} failed, {interrupted} interrupted),"
          f" {sort_order(runs, objective, mode)}")
    print(f"wrote {out / 'report.md'}, {out / 'report.csv'}" + "".join(f", {p}" for p in (plot, study_plot) if p)
          + (f", {out / 'report_groups.csv'}" if grouped is not None else "") + (f", {grouped}" if grouped else ""))
    groups = judges_differ(runs)
    if groups:
        print(f"genlab report: warning: {judge_warning(groups)}", file=sys.stderr)
    return 0


def append_groups(runs: Sequence[Run], columns: list[str], objective: str | None, mode: str | None, key: str,
                  out: Path) -> Path | None:
    """--mean-over KEY: the groups' section after the runs' table, report_groups.csv, and the groups' grids side
    by side (its path, or None without grids)."""
    from genlab.commands import report_groups

    groups = report_groups.sort_groups(report_groups.group_runs(runs, key), objective, higher_is_better(objective, mode))
    pictures = report_groups.copy_grids(groups, out)
    picture = report_groups.strip(groups, pictures, objective, out / "report_grids.png")
    lines = report_groups.markdown(groups, columns, key, objective, pictures, out)
    if picture:
        lines += ["", f"![each group's first run's samples]({picture.name})"]
    with open(out / "report.md", "a") as handle:
        handle.write("\n".join(lines) + "\n")
    report_groups.write_csv(groups, columns, out / "report_groups.csv")
    return picture


def append_study(folder: Path, out: Path) -> Path | None:
    """An Optuna search's folder: its study's ranking, parameter importances and objective plot, after the runs."""
    from genlab.search.study_report import load_study, markdown, plot_trials

    try:
        study = load_study(folder)
    except Exception as error:  # the study's storage is gone or unreachable: the runs' report stands alone
        print(f"genlab report: the study recorded in {folder}/study.yaml cannot be read ({first_line(str(error))})", file=sys.stderr)
        return None
    if study is None:
        return None
    plot = plot_trials(study, out / "report_study.png")
    with open(out / "report.md", "a") as handle:
        handle.write("\n".join(markdown(study, plot, out)) + "\n")
    print(f"study {study.name}: {len(study.finished)} of {len(study.trials)} trials completed;"
          f" most important parameter: {next(iter(study.importances), 'not known yet')}")
    return plot


if __name__ == "__main__":
    sys.exit(main())
