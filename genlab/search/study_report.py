"""The study's part of `genlab report <search folder>`: its trials ranked, the parameter importances
Optuna computes (its default evaluator), and the objective of every trial in the order they ran.

The search folder's study.yaml (written by the sweeper) says where the study is stored, so a
report works the same for SQLite in the folder, a shared database or a journal file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from genlab.errors import first_line
from genlab.presentation import format_value, save_figure

STUDY_FILE = "study.yaml"


@dataclass
class StudySummary:
    name: str
    storage: str
    direction: str
    metric: str | None
    trials: list[Any]  # optuna FrozenTrials
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""

    @property
    def finished(self) -> list[Any]:
        from optuna.trial import TrialState

        return [t for t in self.trials if t.state == TrialState.COMPLETE]

    def ranked(self) -> list[Any]:
        """Completed trials best first, then pruned ones (by their last reported value), then the rest."""
        from optuna.trial import TrialState

        sign = -1 if self.direction == "maximize" else 1

        def key(trial: Any) -> tuple[int, float]:
            value = trial.value if trial.state == TrialState.COMPLETE else last_reported(trial)
            group = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}.get(trial.state, 2)
            return (group, sign * value if value is not None and not math.isnan(value) else math.inf)

        return sorted(self.trials, key=key)


def last_reported(trial: Any) -> float | None:
    """A pruned trial's value: the last one it reported before the pruner stopped it."""
    if not trial.intermediate_values:
        return trial.value
    return trial.intermediate_values[max(trial.intermediate_values)]


def load_study(folder: Path) -> StudySummary | None:
    """The study recorded in <folder>/study.yaml, or None when the folder is not a search's."""
    record_path = folder / STUDY_FILE
    if not record_path.is_file():
        return None
    import optuna

    from genlab.search.storage import open_storage, storage_url

    record = OmegaConf.to_container(OmegaConf.load(record_path))
    url = storage_url(record.get("storage"), folder)  # null: the SQLite file beside study.yaml
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=record["study_name"], storage=open_storage(url))
    summary = StudySummary(record["study_name"], url, record.get("direction", "minimize"),
                           record.get("optimized_metric"), study.get_trials(deepcopy=False))
    summary.importances, summary.importance_note = importances(study)
    return summary


def importances(study: Any) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances over completed trials (its default evaluator), or why there are none yet."""
    import warnings

    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            weights = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as error:
            return {}, first_line(error)
    notes = [first_line(str(w.message)) for w in caught if issubclass(w.category, UserWarning)]
    return weights, " ".join(notes)


def markdown(summary: StudySummary, plot: Path | None, report_dir: Path) -> list[str]:
    """The report's study section: where it is stored, the trial ranking, the importances, the plot."""
    from genlab.search.storage import dashboard_command

    counts: dict[str, int] = {}
    for trial in summary.trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    # a failed trial without the status `failed` was interrupted: a later trial continues it from its checkpoint
    interrupted = sum(t.state.name == "FAIL" and t.user_attrs.get("status") != "failed" for t in summary.trials)
    note = f" ({interrupted} of the failed ones interrupted, continued by later trials)" if interrupted else ""
    lines = ["", f"## Study `{summary.name}`", "",
             f"{summary.direction} `{summary.metric}`; trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + note + ".",
             f"Stored in `{summary.storage}`; open it with `{dashboard_command(summary.storage)}`.", ""]
    params = sorted({name for t in summary.trials for name in t.params})
    header = ["rank", "trial", "state", f"`{summary.metric}`", "last epoch reported", *(f"`{p}`" for p in params)]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for rank, trial in enumerate(summary.ranked(), start=1):
        value = trial.value if trial.value is not None else last_reported(trial)
        epoch = str(max(trial.intermediate_values)) if trial.intermediate_values else ""
        cells = [str(rank), str(trial.number), trial.state.name.lower(), format_value(value, digits=6), epoch,
                 *(str(trial.params.get(p, "")) for p in params)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Parameter importances (optuna.importance.get_param_importances)", ""]
    if summary.importances:
        lines += [f"- `{name}`: {weight:.3f}" for name, weight in summary.importances.items()]
        if summary.importance_note:
            lines += ["", f"Optuna notes: {summary.importance_note}"]
    else:
        lines.append(f"none yet: {summary.importance_note}")
    if plot:
        lines += ["", f"![the objective of every trial]({plot.relative_to(report_dir)})"]
    return lines


def plot_trials(summary: StudySummary, path: Path) -> Path | None:
    """Each trial's objective in the order the trials ran (pruned ones at their last report), and the best so far."""
    from optuna.trial import TrialState

    points = [(t.number, t.value if t.state == TrialState.COMPLETE else last_reported(t), t.state)
              for t in summary.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    points = [(n, v, s) for n, v, s in points if v is not None and not math.isnan(v)]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for state, marker, label in ((TrialState.COMPLETE, "o", "completed"), (TrialState.PRUNED, "x", "pruned (last report)")):
        chosen = [(n, v) for n, v, s in points if s == state]
        if chosen:
            axes.scatter(*zip(*chosen), marker=marker, label=label)
    best, line = None, []
    better = max if summary.direction == "maximize" else min
    for number, value, state in sorted(points):
        if state == TrialState.COMPLETE:
            best = value if best is None else better(best, value)
        if best is not None:
            line.append((number, best))
    if line:
        axes.step(*zip(*line), where="post", color="black", linewidth=1, label="best so far")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial")
    axes.set_ylabel(summary.metric or "objective")
    axes.set_title(f"study {summary.name}: {len(points)} trials")
    return save_figure(figure, axes, path, legend_size=8)
