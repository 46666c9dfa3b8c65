"""After a multirun, the one command that compares its runs: `genlab report <sweep folder>`."""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from genlab.run.summary import FILENAME


def shown_path(folder: Path) -> str:
    """The folder relative to the working directory when it lies below it (what the user typed), else whole."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


class ReportCommand(Callback):
    """Hydra callback: prints `compare the runs: genlab report <hydra.sweep.dir>` when a multirun ends.

    Hydra skips on_multirun_end when a job failed (its sweeper raises after running them all), yet
    that is when the report helps most (it lists the command that re-runs each failed job), so the
    line is also promised at exit from on_multirun_start, and printed once either way.
    """

    def __init__(self) -> None:
        self.command: str | None = None
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # the folder's name may use ${hydra:...}
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        self.command, self.sweep_dir = f"genlab report {shown_path(sweep_dir)}", sweep_dir
        atexit.register(self.announce)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self.announce)
        self.announce()

    def announce(self) -> None:
        """Print the command once, and only when the sweep left runs to compare (a refused one leaves none)."""
        if self.command and self.sweep_dir is not None and any(self.sweep_dir.rglob(FILENAME)):
            print(f"compare the runs: {self.command}", flush=True)
            self.command = None
