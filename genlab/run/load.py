"""A finished run, loaded back from one of its checkpoints: its config and its trained model.

Checkpoints live in <run folder>/checkpoints/, the config the run was trained with in
<run folder>/.hydra/config.yaml; `genlab eval` and `genlab sample` rebuild the model from that
config with genlab.builder (so their own command lines need only ckpt_path) and load the weights
tensors-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict

from genlab.errors import ConfigError

if TYPE_CHECKING:
    from genlab.modules.base import GenerativeModule


def run_folder_of(ckpt_path: str | Path) -> Path:
    return Path(ckpt_path).expanduser().resolve().parent.parent


def load_run_config(ckpt_path: str | Path, paths: DictConfig | None = None) -> DictConfig:
    """The config a checkpoint's run was trained with; `paths` (this session's) replaces the run's."""
    config_file = run_folder_of(ckpt_path) / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(
            f"{config_file} is missing: ckpt_path must point into the checkpoints/ folder of a genlab run"
            " (the run's config is read from <run>/.hydra/config.yaml)"
        )
    cfg = OmegaConf.load(config_file)
    if paths is not None:
        with open_dict(cfg):
            cfg.paths = paths
    return cfg


def load_model(ckpt_path: str | Path, cfg: DictConfig, device: Any = "cpu") -> GenerativeModule:
    """Rebuild the run's LightningModule and load the checkpoint's weights into it, in eval mode."""
    from genlab.builder import build_module
    from genlab.run.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(ckpt_path)
    model = build_module(cfg)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()
