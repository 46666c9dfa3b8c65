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

from genlab.errors import ConfigError, GenlabError
from genlab.run.legacy import upgrade_run_config

if TYPE_CHECKING:
    from genlab.modules.base import TrainingModule


class CheckpointMismatchError(GenlabError):
    """A checkpoint's tensors do not fit the model its run folder's config builds."""


def run_folder_of(ckpt_path: str | Path) -> Path:
    return Path(ckpt_path).expanduser().resolve().parent.parent


def config_file_of(ckpt_path: str | Path) -> Path:
    """Where the config of a checkpoint's run lies: <run>/.hydra/config.yaml for <run>/checkpoints/<name>.ckpt."""
    return run_folder_of(ckpt_path) / ".hydra" / "config.yaml"


def why_not_a_checkpoint_file(checkpoint: Path) -> str:
    """Why `checkpoint` cannot be loaded as a file, with the checkpoints it may have meant (for ckpt_path's message)."""
    if checkpoint.is_dir():
        inside = sorted(checkpoint.glob("*.ckpt")) or sorted(checkpoint.glob("checkpoints/*.ckpt"))
        last = next((path for path in inside if path.name == "last.ckpt"), inside[-1] if inside else None)
        example = f"e.g. ckpt_path={last}" if last else "a .ckpt file in a run's checkpoints/ folder"
        return f"this is a folder, not a checkpoint file: give one of its checkpoints, {example}"
    if checkpoint.exists():
        return "this is not a regular file: give a .ckpt file in a run's checkpoints/ folder"
    nearby = sorted(path.name for path in checkpoint.parent.glob("*.ckpt")) if checkpoint.parent.is_dir() else []
    there = f" ({checkpoint.parent} holds {', '.join(nearby[:5])})" if nearby else ""
    return f"the checkpoint does not exist{there}; give a .ckpt file in a run's checkpoints/ folder"


def load_run_config(ckpt_path: str | Path, paths: DictConfig | None = None, trust_run: bool = False) -> DictConfig:
    """The config a checkpoint's run was trained with; `paths` (this session's) replaces the run's.

    The checkpoint itself is looked at first: a typo in ckpt_path is reported as such, not as a
    run folder without its config. The config may name only code genlab's own configs build
    (genlab/run/trust.py), unless `trust_run`: the user vouches for the folder.
    """
    if not str(ckpt_path).strip():  # Path("") is ".", a folder: say what was really given
        raise ConfigError("ckpt_path is empty: give a .ckpt file in a run's checkpoints/ folder")
    checkpoint = Path(ckpt_path).expanduser()
    if not checkpoint.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: {why_not_a_checkpoint_file(checkpoint)}")
    config_file = config_file_of(ckpt_path)
    if not config_file.is_file():
        raise ConfigError(
            f"{config_file} is missing: ckpt_path must point into the checkpoints/ folder of a genlab run"
            " (the run's config is read from <run>/.hydra/config.yaml)"
        )
    from genlab.run.trust import check_run_config

    cfg = OmegaConf.load(config_file)
    check_run_config(cfg, config_file, trust_run)
    cfg = upgrade_run_config(cfg)
    if paths is not None:
        with open_dict(cfg):
            cfg.paths = paths
    return cfg


def load_model(ckpt_path: str | Path, cfg: DictConfig, device: Any = "cpu", ema: bool = True,
               ema_length: float | None = None, ema_step: int | None = None) -> TrainingModule:
    """Rebuild the run's LightningModule and load the checkpoint's weights into it, in eval mode.

    `ema`: whether its samples come from the generator's moving average, when the run kept one. `ema_length`:
    EDM2's post-hoc average of that relative length (at generator step `ema_step`; null: the checkpoint's),
    rebuilt from the run's snapshots and loaded in place of the raw weights (genlab/run/posthoc_snapshots.py)."""
    from genlab.builder import build_module
    from genlab.run.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(ckpt_path)
    model = build_module(cfg)
    load_weights(model, checkpoint, ckpt_path)
    model.progress.load_state_dict(checkpoint.get("progress") or {})  # the generator steps these weights had
    model.samples_from_ema = ema and ema_length is None
    model = model.to(device).eval()
    if ema_length is not None:
        step = int((checkpoint.get("progress") or {}).get("generator_steps", 0))
        load_posthoc_average(model, run_folder_of(ckpt_path), step, ema_length, ema_step, cfg)
    return model


def load_posthoc_average(model: TrainingModule, run_dir: Path, checkpoint_step: int, ema_length: float,
                         ema_step: int | None, cfg: DictConfig) -> None:
    """The post-hoc average in place of the image network's raw weights, with its own batch norm statistics when the
    run measures them for its EMA (`model.ema.standing_statistics`); `model.weights` names it for metrics.json."""
    from genlab.ema import measure_batch_norm_statistics
    from genlab.run.posthoc_snapshots import reconstruct

    network = model.family.image_network()
    averaged = {name for name, _ in network.named_parameters()}
    state, model.weights_loaded = reconstruct(run_dir, model.posthoc_ema, checkpoint_step, averaged, ema_length, ema_step)
    network.load_state_dict(state)
    batches = int(OmegaConf.select(cfg, "model.ema.standing_statistics", default=0) or 0)
    if batches:
        size = int(OmegaConf.select(cfg, "model.ema.standing_batch_size", default=64) or 64)
        make_batch = model.family.standing_batches()
        measure_batch_norm_statistics(network, lambda: make_batch(size), batches)


def load_weights(model: TrainingModule, checkpoint: dict[str, Any], ckpt_path: str | Path) -> None:
    """Load the checkpoint's state_dict into `model`; a checkpoint of another model is one line, not torch's dump."""
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f"ckpt_path={ckpt_path} holds no state_dict: it is not a checkpoint that genlab train wrote"
        )
    from genlab.modules.base import upgrade_state_dict

    state_dict = upgrade_state_dict(state_dict)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f"ckpt_path={ckpt_path} does not fit the model its run's config builds ({type(getattr(model, 'family', model)).__name__},"
            f" from {config_file_of(ckpt_path)}): {first_difference(model.state_dict(), state_dict)}"
        ) from error


def first_difference(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """The first tensor that tells a checkpoint and a model apart, in words."""
    for name, tensor in expected.items():
        if name not in found:
            return f"the checkpoint has no {name}"
        shape = getattr(found[name], "shape", None)
        if shape is None or tuple(shape) != tuple(tensor.shape):
            what = "not a tensor" if shape is None else list(shape)
            return f"{name} is {what} in the checkpoint but {list(tensor.shape)} in the model"
    extra = sorted(found.keys() - expected.keys())
    return f"the checkpoint has {extra[0]}, which the model has not" if extra else "their tensors differ"
