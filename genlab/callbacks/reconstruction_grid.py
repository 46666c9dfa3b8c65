"""Every epoch, for models that reconstruct (VAEs): held-out images above their reconstructions."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid

from genlab.callbacks.sample_grid import publish_grid


class ReconstructionGrid(pl.Callback):
    """Writes `reconstructions/epoch_XXXX.png` and `reconstructions/last.png`; logs `reconstructions`.

    Uses the first validation batch (not shuffled, so the same images every epoch).
    Models without a `reconstruct` method (GANs) are skipped.
    """

    def __init__(self, dirpath: str | Path, n_images: int = 16) -> None:
        self.dirpath, self.n_images = Path(dirpath), n_images

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reconstruct = getattr(getattr(pl_module, "family", None), "reconstruct", None)
        if not trainer.is_global_zero or reconstruct is None:
            return
        loader = trainer.val_dataloaders
        if not loader:
            return
        images, labels = next(iter(loader))
        images, labels = images[: self.n_images], labels[: self.n_images]
        rebuilt = reconstruct(images, labels)
        pairs = torch.cat([images.float().cpu(), rebuilt.float().cpu()])
        grid = make_grid(pairs, nrow=len(images), normalize=True, value_range=(-1, 1))
        publish_grid(trainer, grid, self.dirpath, "reconstructions")
