"""The one place genlab's own records reach the trackers: each logger's part is found by its class, so a grid
or a run's end is one call for every tracker a run logs to, and a new tracker is a module and a line here."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Iterable

from genlab.trackers import Final


def tracker_of(logger: Any) -> ModuleType | None:
    """The module whose `image` and `final` write to `logger` (Lightning's class or a subclass), or None for a logger
    that keeps no images (CSV: its table has the scalars)."""
    from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    from genlab.trackers import mlflow, tensorboard, wandb

    parts = {TensorBoardLogger: tensorboard, MLFlowLogger: mlflow, WandbLogger: wandb}
    return next((parts[kind] for kind in type(logger).__mro__ if kind in parts), None)


def log_image(loggers: Iterable[Any], tag: str, grid: Any, step: int) -> None:
    """A grid (C x H x W in [0, 1]) to every tracker, under `tag` at x = `step`."""
    for logger in loggers:
        part = tracker_of(logger)
        if part is not None:
            part.image(logger, tag, grid, step)


def log_final(loggers: Iterable[Any], run: Final) -> None:
    """A completed run's settings and final metrics to every tracker (TensorBoard's HPARAMS tab, MLflow's params
    and metrics, W&B's config and summary)."""
    for logger in loggers:
        part = tracker_of(logger)
        if part is not None:
            part.final(logger, run)
