"""Experiment trackers beside TensorBoard: MLflow (`logger=mlflow`) and Weights & Biases (`logger=wandb`).

Lightning's loggers carry the scalars; what genlab adds reaches every tracker through one place,
`publish.py`: the sample grids as images, and at the end of a run its settings and final metrics.
Each tracker's part is a module of its own (`tensorboard.py`, `mlflow.py`, `wandb.py`); `naming.py`
names the runs and groups them by their sweep. Importing this package or `naming.py` (whose resolvers every
command registers as it starts) loads neither torch nor a tracker's package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genlab.errors import ConfigError, first_line


@dataclass(frozen=True)
class Final:
    """What a completed run tells every tracker once, as TensorBoard's HPARAMS tab shows it."""

    hparams: dict[str, bool | int | float | str]  # genlab/run/hparams.py: the essentials and the run's overrides
    metrics: dict[str, float]  # summary.json's final metrics (test/* too, with evaluate=...)
    curves: tuple[str, ...]  # the names logged as scalars while training: TensorBoard's metric columns
    step: int  # generator updates at the end: the axis of every logged value


def require_package(module: str, logger: str, install: str) -> None:
    """Refuse `logger=<logger>` in one line, with the command that installs it, when `module` cannot be imported."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"logger={logger} needs the {module} package, which cannot be imported ({first_line(error)}):"
            f" pip install {install} (or genlab's extra: pip install 'genlab[{logger}]')"
        ) from None


def to_pixels(grid: Any) -> Any:
    """A grid in [0, 1] (C x H x W) as the H x W x C uint8 array that torchvision's save_image writes to the PNG."""
    import torch

    return grid.detach().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
