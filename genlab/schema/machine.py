"""Checks that read more than one key, or the machine: what Lightning and torch would otherwise refuse with a
traceback once the run had started (three of them for `trainer.devices=3` on a CPU)."""

from __future__ import annotations

import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError, GenlabError


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def has_mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def lightning_precisions() -> list[Any]:
    """Every value Lightning's Trainer takes for `precision`, read from Lightning itself."""
    from lightning_fabric import connector

    def flat(kind: Any) -> list[Any]:
        arguments = typing.get_args(kind)
        return [value for argument in arguments for value in (flat(argument) if typing.get_args(argument) else [argument])]

    return flat(connector._PRECISION_INPUT)


def select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)


def check_device(key: str, name: str) -> None:
    """`device=cuda` (eval, sample) on a machine with no GPU, or a GPU index it does not have."""
    if name.startswith("cuda"):
        count, index = gpu_count(), int(name.partition(":")[2] or 0)
        if count == 0:
            raise ConfigError(f"{key}={name}: this machine has no CUDA GPU that torch can use: use {key}=cpu (or auto)")
        if index >= count:
            raise ConfigError(f"{key}={name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    if name == "mps" and not has_mps():
        raise ConfigError(f"{key}=mps: this machine has no Apple GPU that torch can use: use {key}=cpu (or auto)")


def check_trainer_fits_the_machine(cfg: DictConfig) -> None:
    """trainer.accelerator, trainer.devices and trainer.precision against this machine and Lightning's list."""
    accelerator, devices = select(cfg, "trainer.accelerator") or "auto", select(cfg, "trainer.devices")
    strategy = str(select(cfg, "trainer.strategy") or "auto")
    precision = select(cfg, "trainer.precision")
    allowed = lightning_precisions()
    if precision is not None and precision not in allowed:
        names = ", ".join(str(p) for p in allowed if isinstance(p, str) and "-" in p and "transformer" not in p)
        raise ConfigError(f"trainer.precision={precision!r} is not valid: it must be one of {names}")
    gpus = gpu_count()
    wanted = len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) else None
    if accelerator in ("gpu", "cuda"):
        if gpus == 0:
            raise ConfigError(f"trainer.accelerator={accelerator}: this machine has no CUDA GPU that torch can use:"
                              " use trainer=cpu (or trainer.accelerator=auto)")
        if wanted is not None and wanted > gpus:
            raise ConfigError(f"trainer.devices={devices}: this machine has {gpus} GPU(s): lower trainer.devices")
    if accelerator == "mps" and not has_mps():
        raise ConfigError("trainer.accelerator=mps: this machine has no Apple GPU that torch can use: use trainer=cpu")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and gpus == 0 and not has_mps())
    if on_cpu and wanted is not None and wanted > 1 and "ddp" not in strategy:
        raise ConfigError(f"trainer.devices={devices} on CPU processes needs DDP over gloo: add trainer=ddp_cpu"
                          f" (trainer=ddp_cpu trainer.devices={wanted})")
    if accelerator == "auto" and gpus and wanted is not None and wanted > gpus:
        raise ConfigError(f"trainer.devices={devices}: this machine has {gpus} GPU(s): lower trainer.devices")


def check_training_ends(cfg: DictConfig) -> None:
    """A run with neither an epoch, a step or a time limit nor a budget would train until stopped."""
    if select(cfg, "trainer.max_epochs") != -1 or (select(cfg, "trainer.max_steps") or -1) > 0:
        return
    if select(cfg, "trainer.max_time"):
        return
    if any(select(cfg, f"budget.{name}") for name in ("generator_steps", "images")):
        return
    raise ConfigError("trainer.max_epochs=-1 with trainer.max_steps=-1, no trainer.max_time and no budget never ends:"
                      " set trainer.max_epochs, trainer.max_steps or budget.generator_steps")


def check_manual_optimization(cfg: DictConfig) -> None:
    """A two-player family steps its optimizers itself (Lightning's manual optimization), where Lightning refuses
    trainer.gradient_clip_val and trainer.accumulate_grad_batches: say which key does it instead."""
    from hydra.utils import get_object

    target = select(cfg, "model._target_")
    try:
        roles = getattr(get_object(target), "roles", ()) if isinstance(target, str) else ()
    except Exception:
        return  # an unimportable target is the schema's to refuse
    if len(roles) < 2:
        return
    if select(cfg, "trainer.gradient_clip_val"):
        raise ConfigError("trainer.gradient_clip_val does not apply to a two-player game, whose loop steps each optimizer"
                          " itself: use optimizer.clip_grad_norm=<max norm> instead")
    if (select(cfg, "trainer.accumulate_grad_batches") or 1) > 1:
        raise ConfigError("trainer.accumulate_grad_batches does not apply to a two-player game, whose loop steps each"
                          " optimizer itself: raise data.batch_size instead")


def check_one_process_per_job(cfg: DictConfig) -> None:
    """Inside a sweep or search, a job trains in one process: Lightning's DDP launcher starts the other ranks by
    running the command line again, which would start the whole sweep (or a second search) from rank 1. On SLURM
    (hydra/launcher=submitit_slurm) the ranks come from SLURM itself, one task each, and that works."""
    devices, nodes = select(cfg, "trainer.devices"), select(cfg, "trainer.num_nodes") or 1
    processes = (len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) else 1) * nodes
    launcher = str(select(cfg, "hydra.launcher._target_") or "")
    if processes > 1 and "submitit" not in launcher:
        raise ConfigError(f"trainer.devices={devices} with trainer.num_nodes={nodes} in a sweep: each job trains in one"
                          " process here (DDP would start the sweep again from its second rank); sweep with"
                          " trainer.devices=1, train a multi-process run on its own, or sweep on SLURM with"
                          " hydra/launcher=submitit_slurm")


TRANSLATION_MODELS = "regress, pix2pix, cyclegan, palette or palette_flow"


def check_task_fits(cfg: DictConfig) -> None:
    """An image-to-image task needs a family that takes an input image, and data it can be made from (a colour
    task on grey data, an x4 task on sizes 4 does not divide): refused now, by key, not once training starts."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_object, instantiate

    from genlab.families.translation import Translation, check_task

    task, target = select(cfg, "task"), select(cfg, "model._target_")
    try:
        family = get_object(target) if isinstance(target, str) else None
    except Exception:
        return  # an unimportable target is the schema's to refuse
    translates = isinstance(family, type) and issubclass(family, Translation)
    if task is None or not isinstance(task, DictConfig) or "_target_" not in task:
        if translates:
            check_task(None, str(select(cfg, "hydra.runtime.choices.model") or family.__name__.lower()))
        return
    name = str(select(cfg, "hydra.runtime.choices.task") or task._target_.rpartition(".")[2].lower())
    if not translates:
        model = select(cfg, "hydra.runtime.choices.model") or target
        raise ConfigError(f"task={name} needs an image-to-image family, and model={model} makes images from noise:"
                          f" choose model={TRANSLATION_MODELS}, or leave the task out (task=null)")
    try:
        built = instantiate(task)  # the task's own checks against data.image_shape
    except InstantiationException as error:
        if isinstance(error.__cause__, GenlabError):
            raise error.__cause__ from None
        raise
    family.check_pairing(built, str(select(cfg, "hydra.runtime.choices.model") or family.__name__.lower()))


def check_posthoc_snapshots_written(cfg: DictConfig) -> None:
    """EDM2's post-hoc averages are of use only through their snapshots, which a callback writes."""
    if not select(cfg, "model.ema.posthoc.sigma_rels"):
        return
    writer = select(cfg, "callbacks.posthoc_ema")
    if not (isinstance(writer, DictConfig) and "_target_" in writer):
        raise ConfigError("model.ema.posthoc.sigma_rels keeps post-hoc averages whose snapshots callbacks.posthoc_ema"
                          " writes, and it is off: keep callbacks.posthoc_ema (callbacks=default), or set"
                          " model.ema.posthoc.sigma_rels=null")


def check_posthoc_not_judged_while_training(cfg: DictConfig) -> None:
    """`evaluate` judges the weights at the end of training; a post-hoc average is rebuilt from the run's snapshots
    once it has ended, by genlab eval."""
    for name in ("ema_length", "ema_step"):
        value = select(cfg, f"evaluate.{name}")
        if value is not None:
            raise ConfigError(f"evaluate.{name}={value} is not judged at the end of training: drop it, and run"
                              f" genlab eval ckpt_path=<run>/checkpoints/last.ckpt {name}={value} once the run ends")


def check_train(cfg: DictConfig) -> None:
    check_trainer_fits_the_machine(cfg)
    check_training_ends(cfg)
    check_manual_optimization(cfg)
    check_task_fits(cfg)
    check_posthoc_snapshots_written(cfg)
    check_posthoc_not_judged_while_training(cfg)


def check_posthoc_keys(cfg: DictConfig) -> None:
    """ema_length picks a post-hoc average, ema=false the raw weights; ema_step is the step of a post-hoc average."""
    length, step = select(cfg, "ema_length"), select(cfg, "ema_step")
    if length is not None and select(cfg, "ema") is False:
        raise ConfigError(f"ema_length={length} asks for a post-hoc average and ema=false for the raw weights:"
                          " drop one of them")
    if step is not None and length is None:
        raise ConfigError(f"ema_step={step} is the step of a post-hoc average, and ema_length (its length) is null:"
                          " add ema_length=0.1 (or another length), or drop ema_step")


def check_loading(cfg: DictConfig) -> None:
    device = select(cfg, "device")
    if isinstance(device, str):
        check_device("device", device)
    check_posthoc_keys(cfg)
