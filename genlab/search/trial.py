"""Which Optuna trial a sweep job is: the sweeper sets it in the job's environment
(`hydra.job.env_set`), and the job opens the same study from the sweeper's own config."""

from __future__ import annotations

from typing import Any

# set by the sweeper for each job it launches (Hydra applies hydra.job.env_set around the job)
TRIAL_ID = "GENLAB_OPTUNA_TRIAL_ID"
TRIAL_NUMBER = "GENLAB_OPTUNA_TRIAL"


def job_environment(trial_id: int, number: int) -> list[str]:
    """The Hydra overrides that tell a launched job its trial (they name neither folder nor run)."""
    return [f"++hydra.job.env_set.{TRIAL_ID}={trial_id}", f"++hydra.job.env_set.{TRIAL_NUMBER}={number}"]


def current_trial() -> Any | None:
    """The optuna.Trial this Hydra job runs, with the study's pruner; None outside an Optuna search."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    trial_id = (hydra.job.env_set or {}).get(TRIAL_ID)
    if trial_id is None:
        return None
    import optuna
    from hydra.utils import instantiate

    from genlab.search.storage import open_storage, storage_url

    sweeper = hydra.sweeper
    pruner = instantiate(sweeper.pruner) if sweeper.get("pruner") else optuna.pruners.NopPruner()
    storage = open_storage(storage_url(sweeper.get("storage"), hydra.sweep.dir))
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=pruner)
    return optuna.Trial(study, int(trial_id))
