"""genlab's Optuna sweeper as a Hydra plugin (`hydra/sweeper=genlab_optuna`).

Hydra imports every module below hydra_plugins/ at each start, and accepts a sweeper only from
there; this shell keeps that import light (no Optuna, no torch) and hands the work to
genlab.search.sweeper.
"""

from __future__ import annotations

from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GenlabOptunaSweeper(Sweeper):
    """Asks an Optuna study for trials, launches them through Hydra's launcher, tells their results."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.search: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from genlab.search.sweeper import OptunaSearch

        self.search = OptunaSearch(self.settings, hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.search.sweep(arguments)
