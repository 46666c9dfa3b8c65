"""A trial's life in the study, seen from the sweeper: how it ended (read from its summary.json), whether
it counts towards n_trials, and an interrupted trial's continuation from its checkpoint by a new trial."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from genlab.errors import GenlabError, first_line
from genlab.run.summary import FILENAME, read_summary
from genlab.run.sweep_rerun import resume_checkpoint
from genlab.search.outcomes import MetricNotLogged
from genlab.search.space import override_value
from genlab.search.trial import mark_continued

# user attributes of a trial: how its job ended, its folder, and the interrupted trial it continues
STATUS, FOLDER, RESUMES, RESUMES_FOLDER = "status", "folder", "resumes", "resumes_folder"
# study attribute that claims an interrupted trial for one command: continuing_<number> -> that command's token
CONTINUING = "continuing_{}"
# a trial asked for an interrupted one that another command on the study already continues: failed, not counted
DUPLICATE = "duplicate"


def counts_as_finished(trial: FrozenTrial) -> bool:
    """Completed, pruned or failed for good; an interrupted trial (or one whose process died) is run again."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(STATUS) == "failed"


def unfinished(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Interrupted trials that no later trial continues yet."""
    continued = {t.user_attrs.get(RESUMES) for t in trials}
    return [t for t in trials if t.state == TrialState.FAIL and not counts_as_finished(t)
            and t.user_attrs.get(STATUS) != DUPLICATE and t.number not in continued]


def claim(study: optuna.Study, number: int, token: str) -> bool:
    """Mark interrupted trial `number` as continued by this command, unless another command did first.
    The write is read back, so of two commands that claim together at most the later writer goes on
    (what slips through this window is failed at launch as a duplicate)."""
    key = CONTINUING.format(number)
    if key in study.user_attrs:
        return False
    study.set_user_attr(key, token)
    return study.user_attrs.get(key) == token


def continue_interrupted(study: optuna.Study, token: str | None = None) -> list[int]:
    """Enqueue each interrupted trial's parameters again, first in line; the new trial goes on from the
    old one's checkpoint (resume_overrides). Returns the numbers of the trials continued."""
    token = token or uuid.uuid4().hex
    numbers = []
    for trial in unfinished(study.get_trials(deepcopy=False)):
        if not claim(study, trial.number, token):
            continue
        folder = trial.user_attrs.get(FOLDER, f"trial_{trial.number}")
        study.enqueue_trial(trial.params, user_attrs={RESUMES: trial.number, RESUMES_FOLDER: folder})
        numbers.append(trial.number)
    return numbers


def is_duplicate(study: optuna.Study, trial: optuna.Trial) -> bool:
    """A follower of an interrupted trial that an earlier trial already follows (two commands raced)."""
    resumes = trial.user_attrs.get(RESUMES)
    if resumes is None:
        return False
    return any(t.user_attrs.get(RESUMES) == resumes and t.number < trial.number and t.user_attrs.get(STATUS) != DUPLICATE
               for t in study.get_trials(deepcopy=False))


def fail_duplicate(study: optuna.Study, trial: optuna.Trial) -> None:
    trial.set_user_attr(STATUS, DUPLICATE)
    study.tell(trial, state=TrialState.FAIL)


def resume_overrides(user_attrs: Mapping[str, Any], sweep_dir: Path) -> list[str]:
    """`ckpt_path=<sweep>/trial_<n>/checkpoints/...` for a trial that continues interrupted trial n."""
    folder = user_attrs.get(RESUMES_FOLDER)
    checkpoint = None if folder is None else resume_checkpoint(sweep_dir / folder)
    return [] if checkpoint is None else [f"ckpt_path={override_value(str(checkpoint))}"]


def abandon(study: optuna.Study, trial: optuna.Trial) -> None:
    """A trial whose job never reported back: failed as interrupted, so the next command continues it."""
    trial.set_user_attr(STATUS, "interrupted")
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def job_error(result: JobReturn) -> BaseException | None:
    """The exception a failed job raised. JobReturn.return_value re-raises it after writing a line to
    stderr, so its stored field is read instead."""
    return result._return_value if result.status == JobStatus.FAILED else None


def bad_value(value: Any, metric: str | None) -> str | None:
    """Why a completed trial's returned metric cannot be told to the study, or None when it can."""
    if value is None:
        return f"optimized_metric={metric!r} was never logged by this trial"
    if isinstance(value, float) and math.isnan(value):
        return f"optimized_metric={metric!r} is NaN at the end of this trial"
    return None


def settle(study: optuna.Study, trial: optuna.Trial, result: JobReturn, sweep_dir: Path, metric: str | None) -> GenlabError | None:
    """Tell the study how the trial ended, read from its summary.json; the error that ends the search, if any."""
    folder = Path(str(OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir"))) if result.hydra_cfg else sweep_dir / f"trial_{trial.number}"
    summary = read_summary(folder / FILENAME) if (folder / FILENAME).is_file() else {}
    error = job_error(result)
    status = summary.get("status") or ("failed" if error is not None else "completed")
    trial.set_user_attr(FOLDER, folder.name)
    if trial.user_attrs.get(RESUMES_FOLDER):
        mark_continued(sweep_dir / trial.user_attrs[RESUMES_FOLDER], folder.name)
    if status == "completed" and error is None:
        value = result.return_value
        why = bad_value(value, metric)
        if why is None:
            trial.set_user_attr(STATUS, "completed")
            study.tell(trial, float(value))
            return None
        status, error = "failed", GenlabError(why)  # failed for good: counted, never run again
    if status == "pruned":
        trial.set_user_attr(STATUS, "pruned")
        study.tell(trial, state=TrialState.PRUNED)
        return None
    trial.set_user_attr(STATUS, "interrupted" if status == "interrupted" else "failed")
    if error is not None:
        trial.set_user_attr("error", first_line(error))
    study.tell(trial, state=TrialState.FAIL)
    if isinstance(error, MetricNotLogged):
        return error
    if status == "interrupted":
        stop = GenlabError(
            f"trial {trial.number} was interrupted ({first_line(summary.get('error') or 'stopped').rstrip(':')}):"
            " run the same command again to continue the study; the trial goes on from its checkpoint")
        stop.exit_code = getattr(error, "exit_code", 1)
        return stop
    return None
