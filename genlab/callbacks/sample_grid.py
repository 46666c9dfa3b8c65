"""Every epoch: a grid of samples from one fixed noise batch, to every tracker and as a PNG in the run folder.

A fixed batch makes the grids of successive epochs (and of runs in a sweep) comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid, save_image

from genlab.families.translation import Translation
from genlab.generation import sample_grid
from genlab.modules.base import TrainingModule
from genlab.trackers.publish import log_image


def publish_grid(trainer: pl.Trainer, grid: torch.Tensor, dirpath: Path, tag: str) -> None:
    """Save a grid as <dirpath>/epoch_XXXX.png and last.png, and log it under `tag` to every tracker (TensorBoard,
    MLflow, W&B: genlab/trackers/publish.py)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    save_image(grid, dirpath / f"epoch_{trainer.current_epoch:04d}.png")
    save_image(grid, dirpath / "last.png")
    # on the scalars' axis, generator updates (TrainingModule.log_common_axis)
    log_image(trainer.loggers, tag, grid, getattr(trainer.lightning_module, "generator_steps", trainer.global_step))


class SampleGrid(pl.Callback):
    """Writes `samples/epoch_XXXX.png` (and `samples/last.png`) and logs `samples` to every tracker.

    Conditional models get one row of `nrow` per class; unconditional ones an `nrow` x `nrow`
    grid. `sampler` holds the family's sampler options (steps, ...), if it has any.
    """

    def __init__(
        self, dirpath: str | Path, nrow: int = 8, seed: int = 1234, every_n_epochs: int = 1,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.nrow, self.seed, self.every_n_epochs = nrow, seed, every_n_epochs
        self.sampler = dict(sampler or {})

    def images(self, module: TrainingModule) -> torch.Tensor:
        """The grid's images: the same noise every call."""
        rows = module.family.num_classes if module.family.conditional else self.nrow
        generator = torch.Generator().manual_seed(self.seed)
        images, _ = sample_grid(module, rows * self.nrow, self.nrow, generator, self.sampler)
        return images

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs and not trainer.should_stop and epoch + 1 != trainer.max_epochs:
            return
        if not trainer.is_global_zero or not isinstance(pl_module, TrainingModule) or \
                isinstance(pl_module.family, Translation):  # its grid: callbacks/translation_quality.py
            return
        images = self.images(pl_module).float().cpu()
        publish_grid(trainer, make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1)), self.dirpath, "samples")
