"""Inside a sweep job: which Optuna trial it is (the sweeper sets its id in the job's `hydra.job.env_set`,
which configs/hparams_search/optuna_base.yaml hands to the pruning callback with the study's settings),
and what its folder records when it is pruned or continued by a later trial."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from genlab.run.atomic import atomic_write_json
from genlab.run.summary import FILENAME, read_summary, write_summary
from genlab.search.outcomes import TrialPruned

log = logging.getLogger("genlab")

# set by the sweeper for each job it launches (Hydra applies hydra.job.env_set around the job)
TRIAL_ID = "GENLAB_OPTUNA_TRIAL_ID"
TRIAL_NUMBER = "GENLAB_OPTUNA_TRIAL"


def job_environment(trial_id: int, number: int) -> list[str]:
    """The Hydra overrides that tell a launched job its trial (they name neither folder nor run)."""
    return [f"++hydra.job.env_set.{TRIAL_ID}={trial_id}", f"++hydra.job.env_set.{TRIAL_NUMBER}={number}"]


def open_trial(trial_id: int, study_name: str, storage: str | None, sweep_dir: str | Path, pruner: Any) -> Any:
    """The optuna.Trial with storage id `trial_id` of the study `study_name` (stored at `storage`, or in the
    search's folder `sweep_dir` when null), with the study's `pruner` node built as the sweeper builds it."""
    import optuna

    from genlab.search.builders import build_pruner
    from genlab.search.storage import open_storage, storage_url

    opened = open_storage(storage_url(storage, sweep_dir))
    study = optuna.load_study(study_name=study_name, storage=opened, pruner=build_pruner(pruner))
    return optuna.Trial(study, int(trial_id))


def mark_continued(folder: Path, successor: str) -> None:
    """Note in an interrupted run's summary.json which run went on from its checkpoint (genlab report
    then offers no resume command for it)."""
    path = folder / FILENAME
    if path.is_file():
        summary = read_summary(path)
        summary["continued_in"] = successor
        atomic_write_json(path, summary)


def record_pruned(cfg: DictConfig, pruned: TrialPruned, overrides: Sequence[str]) -> float:
    """summary.json of a trial its pruner stopped: status `pruned`, why, its `overrides` and its metrics at that point."""
    write_summary(cfg.paths.output_dir, "pruned", pruned.metrics, cfg.get("optimized_metric"), error=str(pruned),
                  overrides=overrides, **pruned.progress)
    log.info("%s", pruned)
    return pruned.value if not math.isnan(pruned.value) else math.nan
