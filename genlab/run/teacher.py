"""A finished run loaded as a distillation teacher (`model.teacher.ckpt_path=...`): its family, frozen.

The teacher is read the way `genlab eval` reads a run (genlab/run/load.py: its own config, checked against
what genlab's configs build, tensors-only weights), with the weights it samples with: its EMA, unless
`model.teacher.ema=false`. A student family says which teachers it can learn from (`accepts_teacher`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from omegaconf import DictConfig

from genlab.errors import ConfigError

if TYPE_CHECKING:
    from genlab.families.base import Family

# model.teacher's keys
OPTIONS = ("ckpt_path", "ema", "sampler", "trust_run")


def teacher_options(cfg: DictConfig) -> dict[str, Any] | None:
    """`model.teacher` as a plain mapping, or None where the model has no teacher."""
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "model.teacher")
    if node is None:
        return None
    options = OmegaConf.to_container(node, resolve=True)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model.teacher.{unknown[0]} is not a teacher option; the options are: {', '.join(OPTIONS)}")
    if not options.get("ckpt_path"):
        raise ConfigError("model.teacher.ckpt_path is not set: give a checkpoint of a trained run to distil,"
                          " e.g. model.teacher.ckpt_path=outputs/train/runs/<date>/checkpoints/last.ckpt")
    return options


def teacher_config(options: Mapping[str, Any], paths: DictConfig | None = None) -> DictConfig:
    """The teacher run's own config, checked as `genlab eval` checks a run's (the checkpoint, its folder, its code)."""
    from genlab.run.load import load_run_config

    try:
        return load_run_config(options["ckpt_path"], paths, bool(options.get("trust_run", False)))
    except ConfigError as error:
        raise ConfigError(f"model.teacher: {error}") from error


def check_teacher(cfg: DictConfig) -> None:
    """Before a run folder is made: the teacher, where the model has one, is set and is a readable genlab run."""
    options = teacher_options(cfg)
    if options is not None:
        teacher_config(options)


def load_teacher(options: Mapping[str, Any], paths: DictConfig | None = None) -> Family:
    """The teacher run's family on the CPU, in eval mode, frozen, with its EMA weights in place unless `ema` is false."""
    from genlab.run.load import load_model

    module = load_model(options["ckpt_path"], teacher_config(options, paths), "cpu", ema=True)
    family = module.family
    if options.get("ema", True) and module.ema is not None:
        family.image_network().load_state_dict(module.ema.averaged.module.state_dict())
    family.requires_grad_(False)
    return family.eval()
