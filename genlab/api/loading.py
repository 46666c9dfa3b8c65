"""Where a trained model comes from: a run folder, one of its checkpoints, or a folder `genlab export` wrote.

Every road goes through the CLI's checks: a checkpoint's run config through genlab/run/load.py (its file
checked first, then genlab/run/trust.py's rules, then the weights tensors-only), an export's config through the
same trust rules and its weights from safetensors files (genlab/export/read.py). `genlab sample` and
`genlab eval` call `checkpoint_run` after `load_run_config`, as `load` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genlab.errors import ConfigError, is_integer, require

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from genlab.api.run import Run

# what a run folder's checkpoint is called when `checkpoint` names none
DEFAULT_CHECKPOINT = "last"


def load(
    path: str | os.PathLike[str],
    *,
    checkpoint: str = DEFAULT_CHECKPOINT,
    device: str = "cpu",
    ema: bool = True,
    ema_length: float | None = None,
    ema_step: int | None = None,
    trust_run: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Run:
    """A trained genlab model, ready to sample, from a run folder, a checkpoint or an export folder.

    Args:
        path: a run folder (`outputs/train/runs/<date>`), a checkpoint in its `checkpoints/`, or a folder
            `genlab export` wrote.
        checkpoint: which of a run folder's checkpoints: `last` (default), `best`, `epoch_0004`, ...
        device: `cpu`, `cuda`, `cuda:1`, ... or `auto` (the GPU where there is one).
        ema: sample from the run's moving average of its generator when it kept one; False: the raw weights.
        ema_length, ema_step: EDM2's post-hoc average of that relative length (a run trained with
            `model/ema=posthoc`; not an export), as `genlab sample ema_length=...`.
        trust_run: build the config even where it names code genlab does not ship (your own family); as the
            CLI's `trust_run=true`, only for a folder you trust.
        data_dir, cache_dir: where this session's data sets and judges lie (default: ./data and ./.cache/genlab,
            or $GENLAB_DATA_DIR and $GENLAB_CACHE_DIR), as the CLI's `paths.*`; only `pairs` and `evaluate` read them.

    Raises a GenlabError whose one line names the file and the fix: a path that is no run, a checkpoint of
    another model, a config naming code genlab does not ship, a pickle.
    """
    check_weights(ema, ema_length, ema_step)
    require(isinstance(trust_run, bool), "trust_run", trust_run, "True or False")
    source = Path(path).expanduser()
    paths = session_paths(data_dir, cache_dir)
    from genlab.export.read import is_export

    if is_export(source):
        if ema_length is not None or ema_step is not None:
            raise ConfigError(f"ema_length: {source} is an export, which holds its EMA and raw weights but not the run's"
                              " post-hoc snapshots: load the run folder itself for ema_length")
        from genlab.export.read import load_export

        return load_export(source, paths, device=resolved_device(device), ema=ema, trust_run=trust_run)
    from genlab.run.load import load_run_config

    ckpt_path = checkpoint_in(source, checkpoint)
    config = load_run_config(ckpt_path, paths, trust_run=trust_run)
    return checkpoint_run(ckpt_path, config, device=resolved_device(device), ema=ema, ema_length=ema_length,
                          ema_step=ema_step, trust_run=trust_run)


def checkpoint_run(ckpt_path: str | os.PathLike[str], config: DictConfig, *, device: str = "cpu", ema: bool = True,
                   ema_length: float | None = None, ema_step: int | None = None, trust_run: bool = False) -> Run:
    """The run of `config` (genlab.run.load.load_run_config's, already checked, or vouched for by `trust_run`) with
    `ckpt_path`'s weights: what `load`, `genlab sample`, `genlab eval` and `genlab export` build their model with."""
    from genlab.api.run import Run
    from genlab.run.load import load_model, run_folder_of
    from genlab.run.summary import FILENAME

    model = load_model(ckpt_path, config, device, ema=ema, ema_length=ema_length, ema_step=ema_step)
    checkpoint = Path(ckpt_path).expanduser().resolve()
    return Run(model, config, source=checkpoint, checkpoint=checkpoint,
               summary_file=run_folder_of(checkpoint) / FILENAME, trust_run=trust_run)


def check_weights(ema: Any, ema_length: Any, ema_step: Any) -> None:
    """`ema`, `ema_length` and `ema_step` by the rules of the CLI's keys of those names (genlab/schema/)."""
    from omegaconf import OmegaConf

    from genlab.schema.machine import check_posthoc_keys
    from genlab.schema.train import SIGMA_REL

    require(isinstance(ema, bool), "ema", ema, "True or False")
    require(ema_length is None or SIGMA_REL(ema_length), "ema_length", ema_length, SIGMA_REL.expected)
    require(ema_step is None or (is_integer(ema_step) and ema_step >= 1), "ema_step", ema_step,
            "a generator step of one of the run's snapshots")
    check_posthoc_keys(OmegaConf.create({"ema": ema, "ema_length": ema_length, "ema_step": ema_step}))


def checkpoint_in(source: Path, checkpoint: str) -> Path:
    """The checkpoint file `source` names: itself, or a run folder's checkpoints/<checkpoint>.ckpt."""
    if source.is_file() or not source.exists():
        if not source.exists():
            raise ConfigError(f"{source} does not exist: give a run folder, a .ckpt file in its checkpoints/, or a"
                              " folder genlab export wrote")
        return source
    if not (source / ".hydra" / "config.yaml").is_file():
        raise ConfigError(f"{source} is neither a genlab run folder (no .hydra/config.yaml) nor an export"
                          " (no genlab_export.json): give a run folder, a .ckpt file, or a folder genlab export wrote")
    require(isinstance(checkpoint, str) and bool(checkpoint.strip()), "checkpoint", checkpoint,
            "a checkpoint's name, e.g. 'last' or 'best'")
    name = checkpoint if checkpoint.endswith(".ckpt") else f"{checkpoint}.ckpt"
    path = source / "checkpoints" / name
    if not path.is_file():
        held = sorted(p.stem for p in (source / "checkpoints").glob("*.ckpt"))
        choices = f"it holds {', '.join(held)}" if held else "it holds none"
        raise ConfigError(f"checkpoint={checkpoint!r}: {source / 'checkpoints'} has no {name} ({choices}):"
                          " choose one with checkpoint=<name>")
    return path


def resolved_device(device: Any) -> str:
    from genlab.builder import resolve_device

    require(isinstance(device, str) and bool(device), "device", device, "'cpu', 'cuda', 'cuda:N' or 'auto'")
    return resolve_device(device)


def session_paths(data_dir: str | os.PathLike[str] | None = None,
                  cache_dir: str | os.PathLike[str] | None = None) -> DictConfig:
    """This session's `paths` (configs/paths/default.yaml resolved from the working folder, as a genlab command
    started here would), which replace the run's own, as the CLI's do."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    node = OmegaConf.create((files("genlab.configs") / "paths" / "default.yaml").read_text(encoding="utf-8"))
    here = str(Path.cwd())
    node.root_dir, node.output_dir = here, here
    if data_dir is not None:
        node.data_dir = str(Path(data_dir).expanduser().absolute())
    if cache_dir is not None:
        node.cache_dir = str(Path(cache_dir).expanduser().absolute())
    # its values name each other as paths.<key>, so they resolve inside a config that holds them there
    return OmegaConf.create(OmegaConf.to_container(OmegaConf.create({"paths": node}), resolve=True)["paths"])


def check_seed(seed: Any) -> int:
    require(is_integer(seed), "seed", seed, "an integer")
    return int(seed)
