"""Every epoch: a grid of samples from one fixed latent batch, to TensorBoard and as a PNG in the run folder.

A fixed batch makes the grids of successive epochs (and of runs in a sweep) comparable.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from genlab.modules.base import GenerativeModule


def publish_grid(trainer: pl.Trainer, grid: torch.Tensor, dirpath: Path, tag: str) -> None:
    """Save a grid as <dirpath>/epoch_XXXX.png and last.png, and log it to TensorBoard under `tag`."""
    dirpath.mkdir(parents=True, exist_ok=True)
    save_image(grid, dirpath / f"epoch_{trainer.current_epoch:04d}.png")
    save_image(grid, dirpath / "last.png")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=trainer.global_step)


def grid_labels(num_classes: int, n_per_class: int) -> torch.Tensor:
    """Row k of the grid shows class k: [0]*n, [1]*n, ..."""
    return torch.arange(num_classes).repeat_interleave(n_per_class)


class SampleGrid(pl.Callback):
    """Writes `samples/epoch_XXXX.png` (and `samples/last.png`) and logs `samples` to TensorBoard.

    Conditional models get one row per class; unconditional ones an `nrow` x `nrow` grid.
    """

    def __init__(self, dirpath: str | Path, nrow: int = 8, seed: int = 1234, every_n_epochs: int = 1) -> None:
        self.dirpath = Path(dirpath)
        self.nrow, self.seed, self.every_n_epochs = nrow, seed, every_n_epochs

    def fixed_inputs(self, module: GenerativeModule) -> tuple[torch.Tensor, torch.Tensor | None]:
        generator = torch.Generator().manual_seed(self.seed)
        if module.conditional:
            labels = grid_labels(module.num_classes, self.nrow)
            return module.sample_latent(len(labels), generator), labels
        return module.sample_latent(self.nrow * self.nrow, generator), None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs and not trainer.should_stop and epoch + 1 != trainer.max_epochs:
            return
        if not trainer.is_global_zero or not isinstance(pl_module, GenerativeModule):
            return
        z, labels = self.fixed_inputs(pl_module)
        images = pl_module.generate(z, labels).float().cpu()
        publish_grid(trainer, make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1)), self.dirpath, "samples")
