"""An export folder read back, on the checked road a run folder takes: nothing in it may run code.

Before anything is built: a file that is a pickle (or torch.save's zip of pickles) is refused, whatever it is
called, since genlab never writes one into an export; the manifest must be genlab's; config.yaml passes
genlab/run/trust.py's rules (only callables genlab ships, only resolvers that read). Then the family is built
from config.yaml by genlab.builder and the weights come from safetensors files, which hold tensors only.
`trust_run=True` skips the pickle and config checks, as the CLI's `trust_run=true` does for a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genlab.errors import ConfigError, GenlabError
from genlab.export.layout import (CONFIG, EMA, FORMAT, MANIFEST, OWN_SUFFIXES, PICKLE_STARTS, PICKLE_SUFFIXES,
                                  POSTHOC_PREFIX, RAW, VERSION)

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from genlab.api.run import Run
    from genlab.modules.base import TrainingModule


def is_export(path: Path) -> bool:
    """Whether `path` is a folder `genlab export` wrote (it holds genlab_export.json)."""
    return path.is_dir() and (path / MANIFEST).is_file()


def load_export(folder: Path, paths: DictConfig, *, device: str = "cpu", ema: bool = True,
                trust_run: bool = False) -> Run:
    """The exported model, checked, built and loaded, as a genlab.api Run."""
    from genlab.api.run import Run

    config = load_export_config(folder, paths, trust_run)
    manifest = read_manifest(folder)
    model = load_export_model(folder, config, device, ema)
    model.progress.load_state_dict(manifest.get("progress") or {})
    return Run(model, config, source=folder.resolve(), checkpoint=folder.resolve() / str(manifest["checkpoint"]),
               training=manifest.get("training") or {}, trust_run=trust_run)


def load_export_config(folder: Path, paths: DictConfig | None, trust_run: bool = False) -> DictConfig:
    """config.yaml of an export folder, after the folder's files and the config itself were checked; `paths` (this
    session's) replaces the run's."""
    from omegaconf import open_dict

    from genlab.run.legacy import upgrade_run_config
    from genlab.run.trust import check_config, read_config, trusted

    if not trusted(trust_run):
        refuse_pickles(folder)
    read_manifest(folder)
    config_file = folder / CONFIG
    if not config_file.is_file():
        raise ConfigError(f"{config_file} is missing: an export folder holds the config genlab export wrote;"
                          " export the run again")
    cfg = read_config(config_file, folder)
    if not trusted(trust_run):
        check_config(cfg, str(config_file), folder)
    cfg = upgrade_run_config(cfg)
    if paths is not None:
        with open_dict(cfg):
            cfg.paths = paths
    return cfg


def refuse_pickles(folder: Path) -> None:
    """Refuse a folder that holds a pickle or a torch.save file (by its name or its first bytes), in one line."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = path.name.lower()
        if name.endswith(OWN_SUFFIXES) and not name.endswith(PICKLE_SUFFIXES):
            continue
        with open(path, "rb") as stream:
            head = stream.read(4)
        if name.endswith(PICKLE_SUFFIXES) or head.startswith(PICKLE_STARTS):
            raise ConfigError(f"{path} is a pickle (or a torch.save file): genlab never writes one into an export,"
                              f" and loading it could run code; remove it, or if you trust {folder}, add trust_run=true")


def read_manifest(folder: Path) -> dict[str, Any]:
    """genlab_export.json, checked to be genlab's and of a layout this version reads."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read ({error}): export the run again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a genlab export manifest (no \"format\": \"{FORMAT}\"): export the run again")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ConfigError(f"{path} is of export layout version {version!r}, this genlab reads up to {VERSION}:"
                          " upgrade genlab")
    if not isinstance(manifest.get("checkpoint"), str):
        raise ConfigError(f"{path} names no checkpoint: export the run again")
    return manifest


def load_export_model(folder: Path, config: DictConfig, device: str, ema: bool) -> TrainingModule:
    """The run's loop rebuilt from `config`, its weights from raw.safetensors and ema.safetensors, in eval mode."""
    from genlab.builder import build_module
    from genlab.run.load import CheckpointMismatchError, first_difference

    model = build_module(config)
    if not (folder / RAW).is_file():
        raise ConfigError(f"{folder / RAW} is missing: an export holds its trained weights there; export the run again")
    state: dict[str, Any] = {}
    for name in (RAW, EMA):
        if (folder / name).is_file():
            state.update(read_tensors(folder / name))
    expected = {key: value for key, value in model.state_dict().items() if not key.startswith(POSTHOC_PREFIX)}
    fits = expected.keys() == state.keys() and all(tuple(state[k].shape) == tuple(v.shape) for k, v in expected.items())
    if not fits:
        raise CheckpointMismatchError(
            f"{folder}'s weights do not fit the model its {CONFIG} builds ({type(model.family).__name__}):"
            f" {first_difference(expected, state)}; export the run again")
    model.load_state_dict(state, strict=False)
    model.samples_from_ema = ema
    return model.to(device).eval()


def read_tensors(path: Path) -> dict[str, Any]:
    """A safetensors file's tensors (no code runs on reading one), or one line naming the file."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        raise GenlabError(f"{path} is not a readable safetensors file ({type(error).__name__}: {error}):"
                          " export the run again") from error
