"""`genlab report <folder>`: one comparison of every run below a folder (a sweep, or all of outputs/).

Writes report.md (a Markdown table sorted by the objective, with each run's last sample grid),
report.csv, and report_<metric>.png (the metric of every run against generator updates, the
axis that means the same amount of training for every family), and lists failed jobs with the
command that re-runs each and interrupted ones with the command that resumes each.

A run whose summary.json or .hydra/ record cannot be read is listed with its file and fault, and the
others are reported. The report replaces only files it wrote itself (their hashes are kept in
.genlab-report.json beside them): any other file with one of its names stops it before it writes anything.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn, Sequence

from genlab.commands.report_files import check_out_folder, publish, relative_link
from genlab.commands.report_runs import (Run, UnreadableFile, UnreadableRun, judge_warning, judges_differ, read_all_curves,
                                         read_runs, read_yaml)
from genlab.errors import ConfigError, GenlabError, first_line  # first_line: the rest would break a Markdown list
from genlab.presentation import format_value, save_figure
from genlab.run.shell import command_line, hydra_value
from genlab.run.summary import FILENAME

# metrics where higher is better; every other metric is sorted ascending
HIGHER_IS_BETTER = {"val/elbo", "train/elbo", "val/is", "val/precision", "val/recall", "val/coverage_entropy",
                    *(f"{split}/{name}" for split in ("val", "test") for name in ("psnr", "ssim", "label_accuracy"))}
PREFERRED_OBJECTIVES = ("val/fid", "val/kid", "val/loss", "val/elbo")


REPAIR = "repair or remove that file (or the run's folder), then run genlab report again"


def unreadable_warning(run: UnreadableRun) -> str:
    return f"genlab report: warning: left out run {run.name}: {run.reason}: {REPAIR}"


def unreadable_section(unreadable: Sequence[UnreadableRun], report_dir: Path) -> list[str]:
    """Markdown for the runs left out: each run, its file and what is wrong with it."""
    if not unreadable:
        return []
    lines = ["", "## Unreadable runs", "", f"Left out of this report; for each, {REPAIR}.", ""]
    for run in unreadable:
        lines.append(f"- {code(run.name)}: {code(relative_path(run.reason.path, report_dir))} {run.reason.problem}")
    return lines


def relative_path(path: Path, report_dir: Path) -> str:
    return os.path.relpath(path.resolve(), report_dir.resolve())


def code(text: str) -> str:
    """`text` as Markdown inline code, fenced with more backticks than it holds in a row (a path may hold one)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


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
    try:
        study = read_yaml(record)
    except UnreadableFile:  # the study's own section says so (study_section), once
        return None
    direction = study.get("direction") if isinstance(study, dict) else None
    return {"maximize": "max", "minimize": "min"}.get(direction) if isinstance(direction, str) else None


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



def single_run(overrides: Sequence[str]) -> list[str]:
    """A search trial's overrides as one run: without hparams_search=..., which would start a whole search."""
    return [o for o in overrides if not o.startswith("hparams_search=")]




def rerun_command(run: Run) -> str:
    """The shell command that trains a failed run again from scratch, with its overrides."""
    return command_line(["genlab", "train", *single_run(run.overrides)])


def resume_command(run: Run, checkpoint: Path) -> str:
    """The shell command that resumes an interrupted run from its checkpoint (an older ckpt_path gives way)."""
    overrides = [o for o in single_run(run.overrides) if not o.startswith("ckpt_path=")]
    overrides.append(f"ckpt_path={hydra_value(str(checkpoint))}")
    return command_line(["genlab", "train", *overrides])


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
        lines += [f"- {code(run.name)} ({code(run.label)}): {first_line(run.error)}" for run in pruned]
    if interrupted:
        lines += ["", "## Interrupted runs", ""]
        for run, checkpoint in interrupted:
            lines.append(f"- {code(run.name)}: {first_line(run.error) or 'interrupted'}")
            lines.append(f"  continued in {code(run.continued_in)}" if run.continued_in
                         else f"  resume: {code(resume_command(run, checkpoint))}")
    if failed:
        lines += ["", "## Failed runs", ""]
        for run in failed:
            lines += [f"- {code(run.name)}: {first_line(run.error)}", f"  re-run: {code(rerun_command(run))}"]
    return lines


def runs_markdown(runs: Sequence[Run], columns: list[str], objective: str | None, root: Path, plot: Path | None,
                  report_dir: Path, mode: str | None = None, again: str | None = None) -> list[str]:
    """report.md's runs: the ranked table (sample grids linked from `report_dir`, where report.md goes), the plot,
    the runs that did not complete with their commands, and `again`, the sweep's own command."""
    order = sort_order(runs, objective, mode)
    lines = [f"# Report: {root}", "", f"{order[0].upper()}{order[1:]}.", ""]
    header = ["rank", "run", "varied overrides", *(f"`{c}`" for c in columns), "samples"]
    lines += [table_row(header), "|---" * len(header) + "|"]
    for rank, run in enumerate((r for r in runs if r.status == "completed"), start=1):
        sample = f"![]({relative_link(run.samples, report_dir)})" if run.samples else ""
        values = [format_value(run.metrics.get(c)) for c in columns]
        lines.append(table_row([str(rank), short_name(run.name), code(run.label), *values, sample]))
    groups = judges_differ(runs)
    if groups:
        lines += ["", "## Judged by different classifiers", "", f"**Warning:** {judge_warning(groups)}.",
                  "(`classifier.*` settings or data that differ train another domain classifier; see each run's summary.json)"]
    if plot:
        lines += ["", f"![every run's curve]({plot.name})"]
    lines += unfinished_sections(runs)
    if again and any(r.status not in ("completed", "pruned") for r in runs):
        lines += ["", "Or the whole sweep again, in its folder: jobs that completed are skipped, interrupted and failed"
                  " ones go on from their last checkpoint (or start over without one):", "", f"    {again}"]
    return lines


def dig(record: Any, *keys: str) -> Any:
    """record[key][key]... through nested mappings; None where a level is missing or not a mapping."""
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def sweep_rerun_command(root: Path) -> str | None:
    """For a grid sweep's folder (Hydra's multirun.yaml in it): its own command with resume_sweep=true.
    UnreadableFile when multirun.yaml does not hold Hydra's lists of overrides."""
    path = root / "multirun.yaml"
    if not path.is_file():
        return None
    record = read_yaml(path)
    overrides = dig(record, "hydra", "overrides")
    lists = [dig(overrides, part) or [] for part in ("task", "hydra")]
    if not all(isinstance(group, list) and all(isinstance(o, str) for o in group) for group in lists):
        raise UnreadableFile(path, "does not hold hydra.overrides.task and hydra.overrides.hydra as lists of overrides")
    task = [o for o in lists[0] if not o.startswith("resume_sweep=")]
    steering = [o for o in lists[1] if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    words = [*task, *steering, "resume_sweep=true", f"hydra.sweep.dir={hydra_value(str(root))}"]
    return command_line(["genlab", "train", "-m", *words])


def sweep_command_or_warning(root: Path, runs: Sequence[Run], warnings: list[str]) -> str | None:
    """The sweep's own command when some run did not finish; a warning instead when its record cannot be read."""
    if all(r.status in ("completed", "pruned") for r in runs):
        return None
    try:
        return sweep_rerun_command(root)
    except UnreadableFile as reason:
        warnings.append(f"genlab report: warning: the command that re-runs the whole sweep is left out: {reason}")
        return None


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


# curves the plot's legend names; the others are drawn thin and grey, so 50 runs stay readable
LABELLED_CURVES = 10
LEGEND_LABEL_CHARACTERS = 48


def legend_label(label: str) -> str:
    """A run's label cut to a legend's width (the full one is in report.md's table)."""
    if len(label) <= LEGEND_LABEL_CHARACTERS:
        return label
    return label[:LEGEND_LABEL_CHARACTERS - 1] + "…"


def legend_title(shown: Sequence[Run], total: int, metric: str, ranked_by: str | None) -> str | None:
    """Says which runs the legend names when it cannot name all: the best by the objective, or the first ones."""
    if total <= len(shown):
        return None
    ranked = ranked_by is not None and all(r.status == "completed" and ranked_by in r.metrics for r in shown)
    named = f"best {len(shown)} of {total} runs by {metric}" if ranked else f"first {len(shown)} of {total} runs in report.md"
    return f"{named};\nthe other {total - len(shown)}: thin grey lines"


def plot_curves(runs: Sequence[Run], metric: str, path: Path, ranked_by: str | None = None) -> Path | None:
    """The metric of every run against generator updates (or, if a run did not log them, against the logger's step).

    `runs` come in the report's order: the first LABELLED_CURVES are drawn in colour and named in a legend
    outside the axes; the rest thin and grey behind them (`ranked_by`: the objective they are sorted by)."""
    with_curve = [r for r in runs if r.curves.get(metric)]
    if not with_curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = all(progress_axis(run) for run in with_curve)
    figure, axes = plt.subplots(figsize=(8, 5))
    shown, background = with_curve[:LABELLED_CURVES], with_curve[LABELLED_CURVES:]
    for run in [*background, *shown]:
        points = on_progress_axis(run.curves[metric], progress_axis(run)) if common else run.curves[metric]
        x, values = zip(*points)
        if run in background:
            axes.plot(x, values, color="0.65", linewidth=0.6, alpha=0.7, zorder=1)
        else:
            axes.plot(x, values, label=legend_label(run.label), linewidth=1.4, marker="o", markersize=3, zorder=2)
    axes.set_xlabel("generator updates" if common else "logger step (batches; not comparable across families)")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} for {len(with_curve)} runs")
    return save_figure(figure, axes, path, legend_size=7, legend_title=legend_title(shown, len(with_curve), metric, ranked_by),
                       legend_outside=True)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are genlab's one line (`genlab: error: argument --mode: invalid choice ...`)
    instead of a usage paragraph."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see genlab report --help)")


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = ArgumentParser(prog="genlab report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a multirun folder, a run folder, or outputs/")
    parser.add_argument("--metric", help="the objective to sort by (default: the runs' optimized_metric, else val/fid, val/loss, ...)")
    parser.add_argument("--mode", choices=("min", "max"), help="whether lower or higher is better (default: a search's direction, else by metric name)")
    parser.add_argument("--out", type=Path, help="where to write the report files (default: the folder); genlab report"
                                                 " replaces only files it wrote there itself")
    parser.add_argument("--mean-over", metavar="KEY",
                        help="also one row per group of runs that differ only in this key (e.g. seed): each metric's"
                             " mean ± std over them, report_groups.csv, and report_grids.png (one grid per group)")
    return parser.parse_args(argv)


WHAT_TO_GIVE = "give the folder of a sweep or a run, or outputs/"


def check_runs_folder(folder: Path) -> None:
    if not folder.exists():
        raise ConfigError(f"{folder} does not exist: {WHAT_TO_GIVE}")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a folder: {WHAT_TO_GIVE}")


def check_some_readable(folder: Path, runs: Sequence[Run], unreadable: Sequence[UnreadableRun]) -> None:
    """Refuse a folder without a run the report can read: there would be nothing to report."""
    if runs:
        return
    if not unreadable:
        raise ConfigError(f"no runs (no {FILENAME}) found below {folder}: {WHAT_TO_GIVE}")
    more = f" (and {len(unreadable) - 1} more runs)" if len(unreadable) > 1 else ""
    raise ConfigError(f"no run below {folder} can be read: {unreadable[0].reason}{more}: repair or remove those files,"
                      " then run genlab report again")


def check_metric(metric: str | None, runs: Sequence[Run]) -> None:
    """--metric must be one some run logged: a typo would otherwise leave the report silently unsorted."""
    logged = sorted({name for run in runs for name in run.metrics})
    if metric is not None and metric not in logged:
        raise ConfigError(f"--metric {metric}: no run logged it; choose one of: {', '.join(logged) or 'none (no run logged a metric)'}")


def check_mean_over(key: str | None, runs: Sequence[Run]) -> None:
    """--mean-over must be a key some run set on its command line: other keys would average nothing."""
    from genlab.commands.report_groups import override_key

    keys = sorted({override_key(o) for run in runs for o in run.overrides})
    if key is not None and key not in keys:
        raise ConfigError(f"--mean-over {key}: no run set it; choose one of the keys the runs set: {', '.join(keys) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    """`genlab report`: its exit code; a mistake in the command or its input is one `genlab: error:` line."""
    try:
        return report(parse_arguments(sys.argv[1:] if argv is None else argv))
    except GenlabError as error:
        print(f"genlab: error: {error}", file=sys.stderr)
        return error.exit_code


def report(args: argparse.Namespace) -> int:
    """Read every run, draw the report in a staging folder, then put it in place: nothing is written (and no
    file replaced) unless every check passed; warnings about runs left out come after it is written."""
    folder, chosen = args.folder, args.out is not None
    out = args.out or folder
    check_runs_folder(folder)
    check_out_folder(out, chosen)
    runs, unreadable = read_runs(folder)
    check_some_readable(folder, runs, unreadable)
    check_metric(args.metric, runs)
    check_mean_over(args.mean_over, runs)
    objective = choose_objective(runs, args.metric)
    mode = args.mode or study_mode(folder)
    runs = sort_runs(runs, objective, mode)
    label_runs(runs)
    warnings = [unreadable_warning(run) for run in unreadable]
    read_all_curves(runs, warnings)
    with tempfile.TemporaryDirectory(prefix="genlab-report-") as stage:
        try:
            notes = draw_report(Path(stage), out, folder, runs, unreadable, objective, mode, args.mean_over, warnings)
        except OSError as error:  # a run's grid that cannot be read, or a full disk where the report is drawn
            raise ConfigError(f"cannot draw the report ({error.strerror or first_line(error)}: {error.filename}): check"
                              f" that file's permissions, or free space in {tempfile.gettempdir()} (or set TMPDIR)") from error
        written = publish(Path(stage), out, chosen)
    print(counts_line(runs, unreadable) + f", {sort_order(runs, objective, mode)}")
    print(written_line(written, out))
    for note in notes:
        print(note)
    for warning in warnings:
        print(warning, file=sys.stderr)
    groups = judges_differ(runs)
    if groups:
        print(f"genlab report: warning: {judge_warning(groups)}", file=sys.stderr)
    return 0


def draw_report(stage: Path, out: Path, folder: Path, runs: Sequence[Run], unreadable: Sequence[UnreadableRun],
                objective: str | None, mode: str | None, mean_over: str | None, warnings: list[str]) -> list[str]:
    """Every file of the report, drawn into `stage` as they will lie in `out` (links computed from `out`); the
    lines to print about them."""
    curve_metric = objective or "train/g_loss"
    plot = plot_curves(runs, curve_metric, stage / f"report_{curve_metric.replace('/', '_')}.png",
                       ranked_by=objective if curve_metric == objective else None)
    columns = metric_columns(runs, objective)
    write_csv(runs, columns, stage / "report.csv")
    again = sweep_command_or_warning(folder, runs, warnings)
    lines = runs_markdown(runs, columns, objective, folder, plot, out, mode, again)
    lines += unreadable_section(unreadable, out)
    if mean_over:
        lines += groups_section(runs, columns, objective, mode, mean_over, stage)
    study_lines, notes = study_section(folder, stage, warnings)
    lines += study_lines
    (stage / "report.md").write_text("\n".join(lines) + "\n")
    return notes


def counts_line(runs: Sequence[Run], unreadable: Sequence[UnreadableRun]) -> str:
    completed = sum(r.status == "completed" for r in runs)
    pruned = sum(r.status == "pruned" for r in runs)
    interrupted = sum(r.interrupted_checkpoint is not None for r in runs)
    failed = len(runs) - completed - pruned - interrupted
    left_out = f", {len(unreadable)} unreadable (left out, listed in report.md)" if unreadable else ""
    return f"{len(runs)} runs ({completed} completed, {pruned} pruned, {failed} failed, {interrupted} interrupted){left_out}"


def written_line(written: Sequence[Path], out: Path) -> str:
    """`wrote <out>/report.md, ...`: the report's own files by name, the groups' copied grids as one count."""
    top = [str(path) for path in written if path.parent == out]
    grids = [path for path in written if path.parent != out]
    return "wrote " + ", ".join(top) + (f", {out / 'grids'}/ (each group's grid)" if grids else "")


def groups_section(runs: Sequence[Run], columns: list[str], objective: str | None, mode: str | None, key: str,
                   stage: Path) -> list[str]:
    """--mean-over KEY: the groups' section of report.md, with report_groups.csv, the groups' grids and the
    grids side by side (report_grids.png) drawn into `stage`."""
    from genlab.commands import report_groups

    groups = report_groups.sort_groups(report_groups.group_runs(runs, key), objective, higher_is_better(objective, mode))
    pictures = report_groups.copy_grids(groups, stage)
    picture = report_groups.strip(groups, pictures, objective, stage / "report_grids.png")
    lines = report_groups.markdown(groups, columns, key, objective, pictures, stage)
    if picture:
        lines += ["", f"![each group's first run's samples]({picture.name})"]
    report_groups.write_csv(groups, columns, stage / "report_groups.csv")
    return lines


def study_section(folder: Path, stage: Path, warnings: list[str]) -> tuple[list[str], list[str]]:
    """An Optuna search's folder: its study's ranking, parameter importances and objective plot (drawn into
    `stage`), and a line to print about it; a study that cannot be read becomes a warning."""
    from genlab.search.study_report import load_study, markdown, plot_trials

    try:
        study = load_study(folder)
    except Exception as error:  # the study's record, storage or database is gone or damaged: the runs' report stands alone
        warnings.append(f"genlab report: warning: the study recorded in {folder / 'study.yaml'} cannot be read"
                        f" ({first_line(str(error))}); its section is left out")
        return [], []
    if study is None:
        return [], []
    plot = plot_trials(study, stage / "report_study.png")
    note = (f"study {study.name}: {len(study.finished)} of {len(study.trials)} trials completed;"
            f" most important parameter: {next(iter(study.importances), 'not known yet')}")
    return markdown(study, plot, stage), [note]


if __name__ == "__main__":
    sys.exit(main())
