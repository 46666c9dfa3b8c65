"""The run folder must take checkpoints before training starts, not fail halfway through."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError


def check_writable(folder: Path, min_free_mb: float) -> None:
    """Write a probe file where `folder` is (or would be created); demand `min_free_mb` free there.

    Creates nothing that stays: a run folder appears only when the run really starts.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot write to the run folder {folder} ({error.strerror}): choose another with"
            " paths.log_dir=... or hydra.run.dir=..."
        ) from error
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(
            f"only {free_mb:.0f} MB free where the run folder {folder} lies, less than paths.min_free_mb={min_free_mb}:"
            " free some space or choose another folder with paths.log_dir=..."
        )


class RunFolderCheck(Callback):
    """Hydra callback: checks the run (or sweep) folder before Hydra itself creates it."""

    def _check(self, key: str, config: DictConfig) -> None:
        HydraConfig.instance().set_config(config)  # the folder's name may use ${hydra:...}
        try:
            check_writable(Path(OmegaConf.select(config, key)), config.paths.get("min_free_mb", 0))
        except ConfigError as error:
            print(f"genlab: error: {error}", file=sys.stderr)
            sys.exit(error.exit_code)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.run.dir", config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.sweep.dir", config)
