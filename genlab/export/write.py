"""A loaded run written as an export folder (genlab/export/layout.py names its files), checked before it is kept.

Everything is written into a hidden folder beside `out`, then loaded back through genlab/export/read.py (the
road genlab.load takes) and made to sample: its images must equal the run's bit for bit, under the EMA and the
raw weights alike, or nothing is kept. Only then is the folder renamed to `out`. A non-empty `out` is refused
before anything is made: nothing a user made is ever replaced.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genlab.errors import ConfigError, GenlabError
from genlab.run.file_digest import file_sha256
from genlab.export.layout import (CARD, CONFIG, EMA, EMA_PREFIX, FORMAT, MANIFEST, METRICS, ONNX, POSTHOC_PREFIX, RAW,
                                  SAMPLES, VERSION)

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from genlab.api.run import Run

FORMATS = ("safetensors", "onnx")
# images each weight set samples when the export is checked against the run
CHECKED_IMAGES = 4


class ExportMismatch(GenlabError):
    """The export, loaded back, does not sample as the run does: a bug; nothing was kept."""

    exit_code = 1


def check_out(out: Path) -> None:
    """`out` is a new folder, or an empty one: refused in one line when it is a file or holds anything."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file: genlab export writes a folder; choose a new folder")
    held = sorted(entry.name for entry in out.iterdir()) if out.is_dir() else []
    if held:
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise ConfigError(f"out={out} already holds {shown}: genlab export never writes over a folder that holds files;"
                          " choose a new folder (or remove this one yourself)")


def export_run(run: Run, out: Path, *, format: str = "safetensors", n: int = 64, nrow: int = 8, seed: int = 0,
               sampler: dict[str, Any] | None = None, licence: str | None = None) -> Path:
    """Write `run` into the new folder `out` (see the module's docstring) and return it."""
    from genlab.export.onnx import check_onnx_export

    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not valid: it must be one of {', '.join(FORMATS)}")
    if run.model.weights_loaded is not None:  # raw.safetensors would hold it under the raw weights' name
        raise ConfigError(f"export: this run samples {run.model.weights_loaded} in place of its raw weights, which an"
                          " export cannot tell apart from them: load the run without ema_length to export it")
    sampler = dict(sampler or {})
    run.family.check_options(sampler)
    if format == "onnx":
        check_onnx_export(run)
    from genlab.run.folder import first_missing, remove_empty_up_to

    out = out.expanduser().absolute()
    check_out(out)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    created = first_missing(out.parent)  # a failed export removes the folders it made for itself
    try:
        partial.mkdir(parents=True)
        write_folder(run, partial, out.name, format=format, n=n, nrow=nrow, seed=seed, sampler=sampler, licence=licence)
        check_reloads_alike(run, partial, seed, sampler)
        check_out(out)  # again: nothing appeared there meanwhile
        if out.is_dir():
            out.rmdir()
        partial.rename(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
            remove_empty_up_to(out.parent, created)
    return out


def write_folder(run: Run, folder: Path, name: str, *, format: str, n: int, nrow: int, seed: int,
                 sampler: dict[str, Any], licence: str | None) -> None:
    from genlab.export.card import model_card
    from genlab.export.onnx import write_onnx
    from genlab.generation import png_bytes

    write_weights(run, folder)
    (folder / CONFIG).write_text(exported_config(run.config), encoding="utf-8")
    metrics = run.metrics
    if metrics:
        (folder / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    samples = None
    if n > 0:
        images, per_row = sample_grid(run, n, nrow, seed, sampler)
        (folder / SAMPLES).write_bytes(png_bytes(images, per_row))
        samples = {"file": SAMPLES, "n": len(images), "seed": seed, "sampler": sampler, "weights": run.weights}
    graph = write_onnx(run, folder / ONNX, seed) if format == "onnx" else None
    manifest = manifest_of(run, samples=samples, graph=graph, licence=licence)
    (folder / CARD).write_text(model_card(manifest, metrics, name), encoding="utf-8")
    manifest["files"] = {path.name: file_sha256(path) for path in sorted(folder.iterdir()) if path.is_file()}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def write_weights(run: Run, folder: Path) -> None:
    """raw.safetensors (the loop's state less its averages) and ema.safetensors (the EMA, when kept), each tensor
    a copy of its own (safetensors refuses tensors that share memory)."""
    from safetensors.torch import save_file

    state = run.model.state_dict()
    raw = {key: value for key, value in state.items() if not key.startswith((EMA_PREFIX, POSTHOC_PREFIX))}
    ema = {key: value for key, value in state.items() if key.startswith(EMA_PREFIX)}
    about = {"genlab_version": genlab_version(), "checkpoint": run.checkpoint.name,
             "generator_steps": str(run.model.generator_steps)}
    for name, tensors, weights in ((RAW, raw, "raw"), (EMA, ema, "ema")):
        if tensors:
            save_file({key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()},
                      str(folder / name), metadata={**about, "weights": weights})


def exported_config(config: DictConfig) -> str:
    """The run's config with its model node resolved (a run folder's interpolations, e.g. the data's image shape,
    become values) and without `paths`, which the loading session supplies: a value that names a path
    (`${paths.cache_dir}/...`) keeps its interpolation, so no folder of the exporting machine is written down."""
    from omegaconf import OmegaConf

    content = OmegaConf.to_container(config, resolve=False)
    content["model"] = keep_paths(content["model"], OmegaConf.to_container(config.model, resolve=True))
    content.pop("paths", None)
    return OmegaConf.to_yaml(OmegaConf.create(content))


def keep_paths(written: Any, resolved: Any) -> Any:
    """`resolved`, but where `written` (the same node unresolved) interpolates `paths`, `written`."""
    if isinstance(written, dict) and isinstance(resolved, dict):
        return {key: keep_paths(written.get(key), value) for key, value in resolved.items()}
    if isinstance(written, list) and isinstance(resolved, list) and len(written) == len(resolved):
        return [keep_paths(w, r) for w, r in zip(written, resolved)]
    return written if isinstance(written, str) and "${paths." in written else resolved


def sample_grid(run: Run, n: int, nrow: int, seed: int, sampler: dict[str, Any]) -> tuple[Any, int]:
    """`genlab sample`'s grid of the run: from noise, or an image-to-image family's rows from the test split."""
    if run.translates:
        inputs, targets = run.pairs(nrow, seed=seed)
        return run.translation_grid(inputs, targets, seed=seed, **sampler)
    return run.grid(n, nrow, seed=seed, **sampler)


def check_reloads_alike(run: Run, folder: Path, seed: int, sampler: dict[str, Any]) -> None:
    """Load `folder` back as genlab.load does and compare its images with the run's, bit for bit, per weight set."""
    import torch

    from genlab.export.read import load_export

    loaded = load_export(folder, run.config.paths, device=str(run.device), trust_run=run.trust_run)
    for ema in ([True, False] if run.model.ema is not None else [False]):
        if run.translates:
            inputs = torch.rand((CHECKED_IMAGES, *run.family.task.source_shape),
                                generator=torch.Generator().manual_seed(seed)).mul(2).sub(1).to(run.device)
            mine, theirs = (r.translate(inputs, seed=seed, ema=ema, **sampler) for r in (run, loaded))
        else:
            mine, theirs = (r.sample(CHECKED_IMAGES, seed=seed, ema=ema, **sampler) for r in (run, loaded))
        if not torch.equal(mine, theirs):
            difference = (mine.float() - theirs.float()).abs().max().item()
            raise ExportMismatch(f"the export loaded back samples other images than the run ({'ema' if ema else 'raw'}"
                                 f" weights, up to {difference:.3g} apart): nothing was kept; this is a bug in genlab"
                                 " export, please report it")


def manifest_of(run: Run, *, samples: dict[str, Any] | None, graph: dict[str, Any] | None,
                licence: str | None) -> dict[str, Any]:
    """genlab_export.json: what was exported, from which checkpoint, how it samples, what trained it."""
    family = run.family
    task = getattr(family, "task", None)
    return {
        "format": FORMAT, "version": VERSION, "genlab_version": genlab_version(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": run.checkpoint.name,
        "family": {"name": type(family).__name__, "target": f"{type(family).__module__}.{type(family).__qualname__}"},
        "data": {"name": str(run.config.data.get("name", "unnamed")), "image_shape": list(run.image_shape),
                 "num_classes": family.num_classes},
        "task": getattr(task, "name", None),
        "weights": {"raw": RAW, "ema": EMA if run.model.ema is not None else None, "default": run.weights},
        "sampler": {"options": family.sampler_options(), "defaults": run.sampler_defaults},
        "progress": run.model.progress.state_dict(),
        "training": training_facts(run),
        "choices": hydra_choices(run),
        "samples": samples,
        "onnx": graph,
        "licence": licence,
    }


def training_facts(run: Run) -> dict[str, Any]:
    """What the run's summary.json says of its training (not its paths): status, time, steps, its overrides."""
    summary = run.summary
    facts = {key: summary.get(key) for key in ("status", "seconds", "epochs", "generator_steps", "images_seen")
             if summary.get(key) is not None}
    overrides = [without_folders(o) for o in summary.get("overrides") or [] if isinstance(o, str) and
                 not o.lstrip("+~").startswith(("paths.", "hydra.", "ckpt_path"))]
    if overrides:
        facts["overrides"] = overrides
    return facts


# an absolute path in an override's value (a teacher's checkpoint, a callback's folder): this machine's, not the model's
ABSOLUTE_PATH = re.compile(r"(?<=[=:,\[{])\s*/[^,\]}\s]*")


def without_folders(override: str) -> str:
    """An override with each absolute path in its value written as <path> (`model.teacher.ckpt_path=<path>`)."""
    return ABSOLUTE_PATH.sub("<path>", override)


def hydra_choices(run: Run) -> dict[str, str]:
    """The options the run was composed of (model=dcgan, data=mnist_mini, ...): a run's .hydra/hydra.yaml, an
    export's manifest; {} when neither says."""
    import yaml

    if run.source.is_dir():  # an export exported again
        manifest = run.source / MANIFEST
        return dict(json.loads(manifest.read_text(encoding="utf-8")).get("choices") or {}) if manifest.is_file() else {}
    try:
        hydra = yaml.safe_load((run.checkpoint.parent.parent / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))
        choices = hydra["hydra"]["runtime"]["choices"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    return {str(key): str(value) for key, value in choices.items()
            if value is not None and not str(key).startswith("hydra")}


def genlab_version() -> str:
    from genlab import __version__

    return __version__
