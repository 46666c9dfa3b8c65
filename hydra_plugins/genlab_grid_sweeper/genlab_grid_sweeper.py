"""Hydra's grid sweeper (`genlab train -m a=1,2 b=x,y`) with genlab's promises; the work is genlab.run.grid_sweep's.

Kept light: Hydra imports every module below hydra_plugins/ at each start. It wraps Hydra's basic sweeper
rather than subclassing it, since Hydra loads its own plugin modules anew when it scans them (a subclass of
the first copy is not one of the second's).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GenlabGridSweeper(Sweeper):
    """Every job checked before the first starts; a failed job is one line and the others still run; a signal
    stops the sweep (no new job) with the command that continues it; resume_sweep=true refuses what is not the
    sweep it names; one sweep command at a time in a folder."""

    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None) -> None:
        self.max_batch_size, self.params = max_batch_size, params
        self.basic: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        self.basic = BasicSweeper(self.max_batch_size, self.params)
        self.basic.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from genlab.run.grid_sweep import run_grid

        return run_grid(self.basic, arguments)
