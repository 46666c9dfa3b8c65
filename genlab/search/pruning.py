"""Pruning inside a trial: its metric goes to the study after every validation epoch, and the study's
pruner (median, Hyperband, ... from hydra.sweeper.pruner) may stop a hopeless trial early."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from genlab.errors import ConfigError
from genlab.search.outcomes import MetricNotLogged, TrialPruned


def logged_values(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}


class OptunaPruning(pl.Callback):
    """Reports `monitor` at step = the epoch (1 after the first training epoch) and asks the pruner.

    Optuna's pruners compare trials only at the same step. Epochs line up across trials, generator
    updates do not: a search over data.batch_size or n_critic gives each trial its own updates per
    epoch. A resumed trial keeps its epoch count (Lightning restores it from the checkpoint). The
    pruners' n_warmup_steps, interval_steps and resources are therefore epochs too. Outside an
    Optuna trial (a plain run, a grid sweep) the callback does nothing.
    """

    def __init__(
        self, monitor: str | None, trial_id: int | str | None = None, study_name: str | None = None,
        storage: str | None = None, sweep_dir: str | None = None, pruner: Any = None,
    ) -> None:
        # `trial_id` and the study's settings come from the job's Hydra config (configs/hparams_search/optuna_base.yaml);
        # outside a search the trial id is null
        self.monitor = monitor
        self.trial_id, self.study_name, self.storage, self.sweep_dir, self.pruner = trial_id, study_name, storage, sweep_dir, pruner
        self.trial: Any | None = None
        self.reported: set[int] = set()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from genlab.search.trial import open_trial

        if self.trial_id is None:
            return
        if trainer.world_size > 1:  # a pruned rank would stop alone and leave the others waiting in DDP
            raise ConfigError(
                f"trainer.devices: an Optuna trial trains on one device, not {trainer.world_size} processes (pruning"
                " under DDP is not supported): drop trainer=ddp, and give each trial its own device with"
                " hydra.sweeper.trial_devices=[0,1,...]")
        if trainer.is_global_zero:
            self.trial = open_trial(self.trial_id, self.study_name, self.storage, self.sweep_dir, self.pruner)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking:
            return
        metrics = logged_values(trainer)
        if not self.monitor or self.monitor not in metrics:
            raise MetricNotLogged(
                f"optimized_metric={self.monitor!r} was not logged by the first validation epoch of trial"
                f" {self.trial.number}: choose one of {', '.join(sorted(metrics)) or 'none'}"
            )
        epoch = trainer.current_epoch + 1  # epochs trained, this one included
        if epoch in self.reported:  # a second validation in the same epoch (val_check_interval < 1): the first counts
            return
        self.reported.add(epoch)
        value = metrics[self.monitor]
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            pruner = type(self.trial.study.pruner).__name__
            progress = pl_module.progress.axis() if hasattr(pl_module, "progress") else {}
            raise TrialPruned(
                f"trial {self.trial.number} pruned by {pruner} at epoch {epoch}: {self.monitor}={value:.6g}",
                value, metrics, {**progress, "epochs": trainer.current_epoch},
            )
