"""Config values checked before any data is loaded or any network is built.

Hydra checks the config's shape; these rules check values, and name the key that is wrong.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError

_ABSENT = object()


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_number(value: Any) -> bool:
    return _number(value) and value > 0


def non_negative_number(value: Any) -> bool:
    return _number(value) and value >= 0


def positive_integer(value: Any) -> bool:
    return _integer(value) and value > 0


def non_negative_integer(value: Any) -> bool:
    return _integer(value) and value >= 0


# (key, check, what a valid value is); keys absent from a config are skipped
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("seed", _integer, "an integer"),
    ("optimizer.lr", positive_number, "a positive number"),
    ("optimizer.generator.lr", positive_number, "a positive number"),
    ("optimizer.discriminator.lr", positive_number, "a positive number"),
    ("data.batch_size", positive_integer, "a positive integer"),
    ("data.val_size", non_negative_integer, "an integer >= 0"),
    ("trainer.max_epochs", lambda v: v == -1 or positive_integer(v), "a positive integer (or -1 with trainer.max_steps)"),
    ("model.latent_dim", positive_integer, "a positive integer"),
    ("model.n_critic", positive_integer, "a positive integer"),
    ("model.gp_weight", non_negative_number, "a number >= 0"),
    ("model.clip_value", lambda v: v is None or positive_number(v), "null or a positive number"),
    ("model.kl_weight", non_negative_number, "a number >= 0"),
    ("on_nonfinite", lambda v: v in ("stop", "skip"), "stop or skip"),
    ("speed.compile", lambda v: isinstance(v, bool), "true or false"),
    ("speed.channels_last", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.benchmark", lambda v: v is None or isinstance(v, bool), "null, true or false"),
]


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule."""
    for key, check, expected in RULES:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT)
        except Exception as error:  # an interpolation that cannot resolve
            raise ConfigError(f"{key} cannot be resolved: {error}") from error
        if value is not _ABSENT and not check(value):
            raise ConfigError(f"{key}={value!r} is not valid: it must be {expected}")
