"""Everything a search is given, checked before a study or folder is created: each mistake is one
line naming its key (hydra.sweeper.<key>, optimized_metric), never a traceback in the first trial."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig

from genlab.errors import ConfigError, first_line, is_integer, is_positive_integer
from genlab.schema.machine import check_one_process_per_job
from genlab.search.space import SearchSpace, trial_overrides

SETTINGS = {
    "study_name", "storage", "direction", "n_trials", "n_jobs", "trial_devices", "heartbeat_interval",
    "heartbeat_grace_period", "sampler", "pruner", "params", "enqueue_trials",
}


def check_known(settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ConfigError(
            f"hydra.sweeper.{unknown[0]} is not a setting of genlab's Optuna sweeper: use one of {', '.join(sorted(SETTINGS))}")


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def check_settings(settings: Mapping[str, Any], config: DictConfig) -> None:
    """The sweeper's plain settings: counts, direction, name, devices, heartbeats."""
    if not config.get("optimized_metric"):
        raise ConfigError("optimized_metric is null: an Optuna search needs the metric it optimizes, e.g. optimized_metric=val/fid")
    for key in ("n_trials", "n_jobs"):
        value = settings.get(key, 1)
        if not is_positive_integer(value):
            raise ConfigError(f"hydra.sweeper.{key}={value!r} is not valid: it must be a positive integer")
    if settings.get("direction") not in ("minimize", "maximize"):
        raise ConfigError(f"hydra.sweeper.direction={settings.get('direction')!r} is not valid: it must be minimize or maximize")
    name = settings.get("study_name")
    if not name:
        raise ConfigError("hydra.sweeper.study_name is required: the study's name in its storage")
    if not (isinstance(name, str) and re.fullmatch(r"[\w][\w.-]*", name)):
        raise ConfigError(f"hydra.sweeper.study_name={name!r} is not valid: it names the search's folder below"
                          " outputs/, so letters, digits, '_', '-' and '.' only (no '/', no leading '.')")
    check_one_process_per_job(config)
    devices = settings.get("trial_devices")
    if devices is not None and not (is_list(devices) and len(devices) and all(is_integer(d) and d >= 0 for d in devices)):
        raise ConfigError(
            f"hydra.sweeper.trial_devices={plain(devices)!r} is not valid: it must be null or a list of device"
            " indices, e.g. [0,1,2,3] (the k-th trial of a batch trains on the k-th)")
    interval, grace = settings.get("heartbeat_interval"), settings.get("heartbeat_grace_period")
    if interval is not None and not is_positive_integer(interval):
        raise ConfigError(
            f"hydra.sweeper.heartbeat_interval={interval!r} is not valid: it must be a positive number of seconds, or null for no heartbeats")
    if interval is not None and grace is not None and not (is_integer(grace) and grace > interval):
        raise ConfigError(
            f"hydra.sweeper.heartbeat_grace_period={grace!r} is not valid: it must be a number of seconds above"
            f" heartbeat_interval ({interval}), e.g. {2 * interval}")


def plain(value: Any) -> Any:
    """An OmegaConf node as the list or dict the user typed, for messages."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_keys(space: SearchSpace, hydra_context: Any, config: DictConfig) -> None:
    """Every searched key must compose: an unknown key is refused now, naming it, not in every trial."""
    def example(dist: Any) -> Any:
        return dist.choices[0] if hasattr(dist, "choices") else dist.low

    def composes(overrides: list[str]) -> Exception | None:
        try:
            hydra_context.config_loader.load_sweep_config(config, space.fixed + overrides)
        except Exception as error:
            return error
        return None

    every = trial_overrides({k: example(d) for k, d in space.distributions.items()})
    if composes(every) is None:
        return
    for key, override in zip(space.distributions, every, strict=True):
        error = composes([override])
        if error is None:
            continue
        if any("not in struct" in str(e) for e in (error, error.__cause__, error.__context__) if e is not None):
            raise ConfigError(
                f"hydra.sweeper.params.{key}: {key} is not a key of the config; fix its name, or add it with +{key}=... if it is new")
        raise ConfigError(f"hydra.sweeper.params.{key} cannot be searched: {first_line(error)}")
    raise ConfigError(f"hydra.sweeper.params cannot be composed together: {first_line(composes(every))}")


def check_enqueued(settings: Mapping[str, Any], space: SearchSpace) -> None:
    """enqueue_trials is a list of parameter sets, each inside the search space, named by its place if not."""
    enqueued = settings.get("enqueue_trials") or []
    if not is_list(enqueued):
        raise ConfigError(
            f"hydra.sweeper.enqueue_trials={plain(enqueued)!r} is not valid: it must be a list of parameter sets,"
            " e.g. [{optimizer.lr: 2e-4}]")
    for index, params in enumerate(enqueued):
        if not isinstance(params, Mapping):
            raise ConfigError(
                f"hydra.sweeper.enqueue_trials[{index}]={plain(params)!r} is not valid: it must be a parameter set,"
                " e.g. {optimizer.lr: 2e-4}")
        for key, value in dict(params).items():
            where = f"hydra.sweeper.enqueue_trials[{index}].{key}={value!r}"
            dist = space.distributions.get(key)
            if dist is None:
                raise ConfigError(f"{where} is not a searched parameter: choose from {', '.join(space.distributions)}")
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                inside = False
            if not inside:
                raise ConfigError(f"{where} lies outside its search space {dist}")
