"""The study's pruner and sampler from their YAML nodes (configs/hydra/sweeper/{pruner,sampler}/),
built the same way by the sweeper and by each trial; a node that cannot be built is one line naming its key."""

from __future__ import annotations

from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError, first_line


def build(key: str, node: Any) -> Any:
    """instantiate(node), refused as `hydra.sweeper.<key> cannot be built: ...`."""
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except Exception as error:
        cause = error.__cause__ or error
        raise ConfigError(f"hydra.sweeper.{key} cannot be built: {first_line(cause)}") from error


def build_pruner(node: Any) -> optuna.pruners.BasePruner:
    """hydra.sweeper.pruner; none (or null) never prunes."""
    return build("pruner", node) if node else optuna.pruners.NopPruner()


def build_sampler(node: Any, previous_trials: int = 0) -> optuna.samplers.BaseSampler | None:
    """hydra.sweeper.sampler; a continued study offsets a fixed seed by its trial count, so that the
    re-run does not draw the startup trials it drew before. None: Optuna's default (TPE)."""
    if not node:
        return None
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    node = OmegaConf.create(plain)
    if previous_trials and node.get("seed") is not None:
        node.seed = int(node.seed) + previous_trials
    return build("sampler", node)
