"""Inside a sweep job: which Optuna trial it is (the sweeper sets it in the job's environment through
`hydra.job.env_set`, and the job opens the same study from the sweeper's own config), and what its
folder records when it is pruned or continued by a later trial."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

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


def current_trial_id() -> int | None:
    """The storage's id of the trial this Hydra job runs; None outside an Optuna search. Opens nothing."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    trial_id = (HydraConfig.get().job.env_set or {}).get(TRIAL_ID)
    return None if trial_id is None else int(trial_id)


def current_trial() -> Any | None:
    """The optuna.Trial this Hydra job runs, with the study's pruner; None outside an Optuna search."""
    trial_id = current_trial_id()
    if trial_id is None:
        return None
    import optuna
    from hydra.core.hydra_config import HydraConfig

    from genlab.search.builders import build_pruner
    from genlab.search.storage import open_storage, storage_url

    hydra = HydraConfig.get()
    sweeper = hydra.sweeper
    storage = open_storage(storage_url(sweeper.get("storage"), hydra.sweep.dir))
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=build_pruner(sweeper.get("pruner")))
    return optuna.Trial(study, trial_id)


def mark_continued(folder: Path, successor: str) -> None:
    """Note in an interrupted run's summary.json which run went on from its checkpoint (genlab report
    then offers no resume command for it)."""
    path = folder / FILENAME
    if path.is_file():
        summary = read_summary(path)
        summary["continued_in"] = successor
        atomic_write_json(path, summary)


def record_pruned(cfg: DictConfig, pruned: TrialPruned) -> float:
    """summary.json of a trial its pruner stopped: status `pruned`, why, and its metrics at that point."""
    write_summary(cfg.paths.output_dir, "pruned", pruned.metrics, cfg.get("optimized_metric"), error=str(pruned),
                  **pruned.progress)
    log.info("%s", pruned)
    return pruned.value if not math.isnan(pruned.value) else math.nan
