"""A training budget that means the same for every family (`budget.generator_steps`, `budget.images`).

Lightning's `trainer.max_steps` counts optimizer steps: a DCGAN batch takes two (critic and
generator), a WGAN batch one critic step and a fifth of a generator step, a VAE batch one. So
`max_steps=1500` is 750 generator updates for DCGAN, 250 for WGAN and 1,500 for a VAE. This
callback stops at a number of generator updates or of real images seen instead (both counted by
every loop, genlab/modules/progress.py), after the batch that reaches it; validation and checkpoints then run as at
the end of an epoch.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from genlab.errors import is_positive_integer, require
from genlab.modules.base import TrainingModule

log = logging.getLogger("genlab")


class TrainingBudget(pl.Callback):
    def __init__(self, generator_steps: int | None = None, images: int | None = None) -> None:
        for key, value in (("budget.generator_steps", generator_steps), ("budget.images", images)):
            require(value is None or is_positive_integer(value), key, value, "null or a positive integer")
        self.limits = {"generator_steps": generator_steps, "images_seen": images}

    def reached(self, module: TrainingModule) -> bool:
        progress = module.progress.axis()
        return any(limit is not None and progress[name] >= limit for name, limit in self.limits.items())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if isinstance(pl_module, TrainingModule) and self.reached(pl_module):
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        budget = {name: limit for name, limit in self.limits.items() if limit is not None}
        if budget and isinstance(pl_module, TrainingModule) and not self.reached(pl_module) and trainer.is_global_zero:
            log.warning(
                "training ended at %s before its budget %s: trainer.max_epochs or trainer.max_steps stopped it first"
                " (set trainer.max_epochs=-1 to let the budget decide)", pl_module.progress.axis(), budget,
            )
