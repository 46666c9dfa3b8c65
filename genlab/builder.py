"""The one road from a composed config to objects: the datamodule, the family, its training loop, the Trainer.

`genlab train`, a finished run loaded back (`genlab eval`, `genlab sample`), the tests and
scripts/benchmark.py all build here, so a model is the same object wherever it is used:
`model` (less `model.ema`) is the family's math (genlab/families/), which the loop its roles call for
trains (genlab/modules/: one player, or two for a game) with the `optimizer` group, `model.ema`,
`on_nonfinite` and the `speed` options. Values that third-party classes consume (optimizer and Trainer
arguments) are checked here, by key, before any data is loaded; genlab's own classes check their own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from omegaconf import DictConfig

from genlab.errors import ConfigError, is_positive_integer, is_positive_number, require

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from genlab.data.datamodule import ImageDataModule
    from genlab.families.base import Family
    from genlab.modules.base import TrainingModule
    from genlab.tasks.base import Task

log = logging.getLogger("genlab")
# the roles an optimizer config may hold partial optimizers for
PLAYERS = ("generator", "discriminator")


# the loop that trains a family, by how many optimizers (players) its roles name
LOOPS = {1: "genlab.modules.one_player.OnePlayer", 2: "genlab.modules.two_player.TwoPlayer"}


class Built(NamedTuple):
    datamodule: ImageDataModule
    module: TrainingModule
    trainer: pl.Trainer


def _optimizer_key(optimizer: DictConfig, role: str, argument: str) -> str:
    """The key a user sets: `optimizer.lr` when the role takes it from the top (`${..lr}`), else the role's own."""
    node = optimizer[role]._get_node(argument)
    if node is not None and node._is_interpolation() and str(node._value()).replace(" ", "") == f"${{..{argument}}}":
        return f"optimizer.{argument}"
    return f"optimizer.{role}.{argument}"


# when a learning-rate schedule steps: once per epoch, or after every update of its optimizer
SCHEDULER_INTERVALS = ("epoch", "step")


def build_optimizers(cfg: DictConfig) -> dict[str, Any]:
    """The `optimizer` group as factories (partial optimizers per player, an optional scheduler, and when
    that steps: `scheduler_interval`), each optimizer tried once on a probe parameter so that a value torch
    refuses is reported now, by key."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    optimizer_cfg = OmegaConf.to_container(cfg.optimizer, resolve=True)
    # `interval` and `clip_grad_norm` are genlab's, not the scheduler's or the optimizer's: taken out before they are built
    interval = (optimizer_cfg.get("scheduler") or {}).pop("interval", "epoch")
    require(interval in SCHEDULER_INTERVALS, "optimizer.scheduler.interval", interval, " or ".join(SCHEDULER_INTERVALS))
    clip = optimizer_cfg.pop("clip_grad_norm", None)
    require(clip is None or is_positive_number(clip), "optimizer.clip_grad_norm", clip,
            "null (no clipping) or a positive number, e.g. 1.0")
    factories = instantiate(optimizer_cfg, _convert_="all")
    factories["scheduler_interval"] = interval
    factories["clip_grad_norm"] = clip
    for role in PLAYERS:
        if role not in factories:
            continue
        learning_rate = factories[role].keywords.get("lr")
        require(is_positive_number(learning_rate), _optimizer_key(cfg.optimizer, role, "lr"), learning_rate,
                "a positive number")
        try:
            factories[role]([torch.nn.Parameter(torch.zeros(1))])
        except (TypeError, ValueError) as error:
            raise ConfigError(f"optimizer.{role} cannot be built: {error}") from error
    return factories


def model_nodes(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """`model` resolved and split: the family's node, and `model.ema` (the loop's average; null: none)."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg.model, resolve=True)
    return node, node.pop("ema", None)


def build_family(cfg: DictConfig, teacher: Family | None = None) -> Family:
    """The family `cfg.model` describes (its math around its networks), on the CPU; a distilling family learns from
    `teacher` (`model.teacher`'s run, which only `genlab train` loads: a student samples without it)."""
    from hydra.utils import instantiate

    from genlab.families.base import Family

    node, _ = model_nodes(cfg)
    teacher_node = node.pop("teacher", None)
    family = instantiate(node, _convert_="partial")
    if teacher_node is not None and not hasattr(family, "use_teacher"):
        raise ConfigError(f"model.teacher: {type(family).__name__} learns from no teacher; leave model.teacher out,"
                          " or distil with model=reflow (or creflow)")
    if teacher is not None:
        family.use_teacher(teacher, (teacher_node or {}).get("sampler"))
    if not isinstance(family, Family):
        raise ConfigError(f"model._target_={node.get('_target_')!r} is a {type(family).__name__}, not a genlab family"
                          " (genlab/families/): pick a model option, or point _target_ at a Family subclass")
    return family


def build_module(cfg: DictConfig, teacher: Family | None = None) -> TrainingModule:
    """The family (taught by `teacher`, if given) with the loop that trains it, its optimizers, its EMA, its
    divergence rule, its speed options."""
    from hydra.utils import get_class

    from genlab.nets.speed import SpeedOptions, apply_speed_options
    from genlab.regularizers import check_sync_batchnorm

    speed = SpeedOptions.from_config(cfg.get("speed"))
    family = build_family(cfg, teacher)
    check_sync_batchnorm(family, cfg.get("trainer"))  # a penalty DDP's synchronised batch norm cannot differentiate
    loop = get_class(LOOPS[len(family.roles)])
    module = loop(family, optimizer=build_optimizers(cfg), ema=model_nodes(cfg)[1],
                  on_nonfinite=cfg.get("on_nonfinite", "stop"), seed=cfg.get("seed"))
    # the networks themselves, and the averages' copies (their layout matches theirs; never called, so never compiled)
    averages = [average for average in (module.ema, module.posthoc_ema) if average is not None]
    apply_speed_options([*family.children(), *averages], speed)
    return module


def build_task(cfg: DictConfig) -> Task | None:
    """The image-to-image task `cfg.task` describes (genlab/tasks/), or None for the noise families."""
    from hydra.utils import instantiate

    node = cfg.get("task")
    return instantiate(node) if node else None


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    """The data set `cfg.data` describes, its batches made into the task's pairs when there is one; nothing is read
    from disk until `setup`."""
    from hydra.utils import instantiate

    return instantiate(cfg.data, task=build_task(cfg))


def instantiate_all(configs: DictConfig | None) -> list[Any]:
    """Build every `_target_` entry of a dict-of-configs group (callbacks, logger); null entries are off."""
    from hydra.utils import instantiate

    if not configs:
        return []
    return [instantiate(node) for node in configs.values() if isinstance(node, DictConfig) and "_target_" in node]


def judged_monitors(callbacks: list[Any], cfg: DictConfig) -> list[Any]:
    """The callbacks without a checkpoint that monitors val/fid where nothing will log it (no quality callback, no
    validation split, a data set of one class): Lightning would stop the run at its first validation."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from genlab.callbacks.sample_quality import SampleQuality
    from genlab.callbacks.translation_quality import TranslationQuality

    data = cfg.get("data") or {}
    judged = any(isinstance(c, (SampleQuality, TranslationQuality)) for c in callbacks) and \
        bool(data.get("val_size")) and (data.get("num_classes") or 0) >= 2
    if judged:
        return callbacks
    kept = [c for c in callbacks if not (isinstance(c, ModelCheckpoint) and c.monitor in ("val/fid",))]
    if len(kept) < len(callbacks):
        log.info("best.ckpt is not kept: nothing measures val/fid in this run (it needs callbacks.sample_quality or"
                 " callbacks.translation_quality, a validation split and a data set of two classes or more); last.ckpt is")
    return kept


def build_trainer(cfg: DictConfig, callbacks: Iterable[Any] | None = None, **arguments: Any) -> pl.Trainer:
    """The Trainer `cfg.trainer` describes, with the config's loggers and callbacks (or the ones given)."""
    from hydra.utils import instantiate

    trainer_cfg = cfg.trainer
    max_epochs = trainer_cfg.get("max_epochs")
    require(max_epochs == -1 or is_positive_integer(max_epochs), "trainer.max_epochs", max_epochs,
            "a positive integer (or -1 with trainer.max_steps or budget.*)")
    benchmark = trainer_cfg.get("benchmark")
    require(benchmark is None or isinstance(benchmark, bool), "trainer.benchmark", benchmark, "null, true or false")
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = judged_monitors(instantiate_all(cfg.get("callbacks")) if callbacks is None else list(callbacks), cfg)
    if not loggers:  # a learning-rate monitor only reports to loggers, and Lightning refuses it without one
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, **arguments)


def build(cfg: DictConfig, teacher: Family | None = None) -> Built:
    """Everything `genlab train` fits: (datamodule, module, trainer); `teacher` for a distilling family."""
    return Built(build_datamodule(cfg), build_module(cfg, teacher), build_trainer(cfg))


def resolve_device(name: str) -> str:
    """`auto` is the GPU where there is one; anything else is a torch device name."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
