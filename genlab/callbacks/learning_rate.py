"""Lightning's LearningRateMonitor, with its values on the axis of every other logged value."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor as LightningLearningRateMonitor


class LearningRateMonitor(LightningLearningRateMonitor):
    """Logs each optimizer's learning rate once per epoch at x = generator updates.

    Lightning's own writes at the count of batches, while genlab's scalars and images sit at
    generator updates (TrainingModule.log_common_axis): the same x must mean the same training.
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.logging_interval == "step":
            return
        stats = self._extract_stats(trainer, "epoch" if self.logging_interval is None else "any")
        step = int(getattr(trainer.lightning_module, "generator_steps", trainer.global_step))
        for logger in trainer.loggers if stats else []:
            logger.log_metrics(stats, step=step)
