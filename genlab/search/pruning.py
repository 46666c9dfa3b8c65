"""Pruning inside a trial: its metric goes to the study every validation epoch, and the study's
pruner (median, Hyperband, ... from hydra.sweeper.pruner) may stop a hopeless trial early."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from genlab.search.outcomes import MetricNotLogged, TrialPruned


def logged_values(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}


class OptunaPruning(pl.Callback):
    """Reports `monitor` at x = generator updates after each validation epoch and asks the pruner.

    Outside an Optuna trial (a plain run, a grid sweep) it does nothing. The step is the generator
    update count, the axis that means the same training for every family and that survives resume.
    """

    def __init__(self, monitor: str | None) -> None:
        self.monitor = monitor
        self.trial: Any | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            from genlab.search.trial import current_trial

            self.trial = current_trial()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking:
            return
        metrics = logged_values(trainer)
        if not self.monitor or self.monitor not in metrics:
            raise MetricNotLogged(
                f"optimized_metric={self.monitor!r} was not logged by the first validation epoch of trial"
                f" {self.trial.number}: choose one of {', '.join(sorted(metrics)) or 'none'}"
            )
        value, step = metrics[self.monitor], int(getattr(pl_module, "generator_steps", trainer.global_step))
        self.trial.report(value, step)
        if self.trial.should_prune():
            pruner = type(self.trial.study.pruner).__name__
            progress = pl_module.progress() if hasattr(pl_module, "progress") else {}
            raise TrialPruned(
                f"trial {self.trial.number} pruned by {pruner} at generator step {step}: {self.monitor}={value:.6g}",
                value, metrics, {**progress, "epochs": trainer.current_epoch},
            )
