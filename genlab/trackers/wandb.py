"""Weights & Biases' part (`logger=wandb`): Lightning's logger, refused in one line without the package; the grids
as images; the settings as the run's config and the final metrics as its summary, after which the run ends."""

from __future__ import annotations

from functools import wraps
from typing import Any

from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger

from genlab.trackers import Final, require_package, to_pixels


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, with its arguments (configs/logger/wandb.yaml), once wandb is installed.

    Each job gets a run of its own: Lightning hands a new logger the run already open in the process, so one
    left open by an earlier job (a sweep's job that failed after training) is ended first, and a failed fit
    ends its run at once.
    """

    @wraps(LightningWandbLogger.__init__)  # its signature: genlab's schema checks the YAML's keys against it
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        require_package("wandb", "wandb", "wandb")
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # Lightning passes it unasked, and wandb warns of it every run
            self._wandb_init.pop("anonymous", None)

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            import wandb

            if wandb.run is not None:
                wandb.run.finish(exit_code=1)
        return super().experiment

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed" and self._experiment is not None:
            self._experiment.finish(exit_code=1)


def image(logger: Any, tag: str, grid: Any, step: int) -> None:
    logger.log_image(key=tag, images=[to_pixels(grid)], step=step)


def final(logger: Any, run: Final) -> None:
    logger.log_hyperparams(run.hparams)
    logger.experiment.summary.update(run.metrics)
    logger.experiment.finish()
