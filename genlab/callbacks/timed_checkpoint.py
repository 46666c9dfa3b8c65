"""A checkpoint every few minutes of training, for every family: the points of an FID-against-minutes curve.

Lightning's `ModelCheckpoint(train_time_interval=...)` saves nothing for a module with manual
optimization (every GAN here): its batch-end hook then only looks at `every_n_train_steps`. This one
counts training time from `on_train_start` (validation included, start-up not) and writes
`<dirpath>/timed_<generator updates>.ckpt` at the first batch end after each `minutes` of it, with the
training minutes it was written at (`checkpoint["training_minutes"]`: a slow validation may let more
than one interval pass before a batch ends, and the file then stands for the time it was really
written); under DDP rank zero's clock decides, so that every rank saves together.
"""

from __future__ import annotations

from time import monotonic
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from genlab.errors import is_number, require


class TimedCheckpoint(pl.Callback):
    def __init__(self, dirpath: str | Path, minutes: float) -> None:
        require(is_number(minutes) and minutes > 0, "callbacks.timed_checkpoint.minutes", minutes, "a positive number")
        self.dirpath = Path(dirpath)
        self.seconds = float(minutes) * 60
        self._start: float | None = None
        self._saved = 0  # intervals written so far
        self._writing: float | None = None  # the training minutes of the checkpoint being written

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._saved = monotonic(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        elapsed = monotonic() - self._start if self._start is not None else 0.0
        due = trainer.strategy.broadcast(int(elapsed // self.seconds))
        if due > self._saved:
            self._saved = due
            steps = getattr(pl_module, "generator_steps", trainer.global_step)
            self._writing = elapsed / 60
            try:
                trainer.save_checkpoint(self.dirpath / f"timed_{steps}.ckpt")
            finally:
                self._writing = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._writing is not None:
            checkpoint["training_minutes"] = self._writing
