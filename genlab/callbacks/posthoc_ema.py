"""EDM2's post-hoc EMA snapshots: every `model.ema.posthoc.snapshot_every` generator steps, each of the loop's
power-function averages (genlab/posthoc_ema.py) goes to <run>/posthoc_ema/ (genlab/run/posthoc_snapshots.py).

The schedule counts generator steps, the common training axis (genlab/modules/progress.py), so it means the same
for a GAN and a one-loss family. A run without post-hoc averages (`model.ema.posthoc.sigma_rels: null`, the
default) writes nothing. Only the first process writes; every DDP rank holds the same averages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from genlab.modules.base import TrainingModule
from genlab.run.posthoc_snapshots import snapshot_folder, snapshot_name, write_snapshots


class PosthocEmaSnapshots(pl.Callback):
    """`run_dir`: the run folder; the snapshots go to its posthoc_ema/, where genlab eval and sample look for them."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._seen: int | None = None  # the generator step whose snapshot is on disk (or was not due)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        posthoc = pl_module.posthoc_ema if isinstance(pl_module, TrainingModule) else None
        if posthoc is None:
            return
        step = pl_module.generator_steps
        self._seen = step
        # a resumed run whose checkpoint was written before its step's snapshot (an interrupt in the same batch)
        if posthoc.due(step) and trainer.is_global_zero:
            snapshots = posthoc.snapshots(step)
            if not all((snapshot_folder(self.run_dir) / snapshot_name(s)).is_file() for s in snapshots):
                write_snapshots(self.run_dir, snapshots)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        posthoc = pl_module.posthoc_ema if isinstance(pl_module, TrainingModule) else None
        if posthoc is None or pl_module.generator_steps == self._seen:
            return  # a batch with no generator step (a critic's turn) takes no snapshot
        self._seen = step = pl_module.generator_steps
        if posthoc.due(step) and trainer.is_global_zero:
            write_snapshots(self.run_dir, posthoc.snapshots(step))
