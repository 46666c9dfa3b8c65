"""`genlab sample ckpt_path=... n=64`: a sample grid and an interpolation strip from a trained run.

Conditional models get one row per class; every model gets `n_interpolations` rows that walk
between two noise draws (a smooth walk means the model learned a continuous mapping, not a
lookup of training images). `sampler={...}` holds the family's sampler options, if it has any.
Many-step families (diffusion, flow matching) add a strip of the sampler's trajectory, noise to image.
Every image is made before any file is written, and no file is ever replaced: a second call with the same
seed writes sample_seed0-2.png and its siblings, and the log names each file written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from genlab.api.loading import checkpoint_run
from genlab.commands.app import Job, hydra_app, sampler_options
from genlab.errors import ConfigError, GenlabError
from genlab.run.folder import first_missing, remove_empty_up_to, why_unwritable
from genlab.run.fresh import first_free_number, write_new
from genlab.run.load import load_run_config, run_folder_of

if TYPE_CHECKING:
    from torch import Tensor

    from genlab.api.run import Run

log = logging.getLogger("genlab")


class SamplesNotSaved(GenlabError):
    """The images were made but a PNG could not be written; the message names the folder and what was kept."""


# what genlab sample writes, each as <stem>_seed<seed>.png (or <stem>_seed<seed>-2.png, ...: never a replaced file)
STEMS = {"grid": "sample", "interpolation": "interpolation", "trajectory": "trajectory"}


def sample(cfg: DictConfig) -> dict[str, Path]:
    """`genlab sample`: the checkpoint's run rebuilt (genlab's Python API, genlab/api/), its images made, then
    written as new files (logged by name)."""
    from genlab.builder import resolve_device

    run_cfg = load_run_config(cfg.ckpt_path, cfg.paths, trust_run=cfg.get("trust_run", False))
    out = output_folder(cfg.out, cfg.ckpt_path)
    run = checkpoint_run(cfg.ckpt_path, run_cfg, device=resolve_device(cfg.device), ema=cfg.get("ema", True),
                         ema_length=cfg.get("ema_length"), ema_step=cfg.get("ema_step"))
    if run.model.weights_loaded is not None:
        log.info("weights: %s", run.model.weights_loaded)
    if run.translates:
        return save_images(translation_images(run, cfg, sampler_options(cfg)), out, cfg.seed)
    return save_images(make_images(run, cfg, sampler_options(cfg)), out, cfg.seed)


def output_folder(out: str | None, ckpt_path: str) -> Path:
    """Where the PNGs go (`out`, or the run's samples/ folder), refused at once, before any sampling, when it
    is a file or cannot be created or written. Nothing is created here: a failed command leaves no folder."""
    folder = Path(out).expanduser() if out else run_folder_of(ckpt_path) / "samples"
    named = f"out={out}" if out else f"the run's samples folder {folder}"
    if folder.exists() and not folder.is_dir():
        what = "out names the folder the PNGs go to (created if missing)" if out else "the PNGs go into a folder"
        raise ConfigError(f"{named} is a file, not a folder: {what}; choose a folder with out=<folder>")
    reason = why_unwritable(folder)
    if reason is not None:
        raise ConfigError(f"{named}: the PNGs cannot be written there, as {reason}:"
                          " choose another folder with out=<folder>")
    return folder


def make_images(run: Run, cfg: DictConfig, options: dict[str, Any]) -> dict[str, tuple[Tensor, int]]:
    """Every image of the command, made before any file is written, all from one generator seeded by `seed`:
    name -> (images, images per row)."""
    import torch

    generator = torch.Generator().manual_seed(cfg.seed)
    made = {"grid": run.grid(cfg.n, cfg.nrow, generator=generator, **options)}
    if cfg.n_interpolations > 0:
        strip = run.interpolation(cfg.n_interpolations, cfg.interpolation_steps, generator=generator, **options)
        made["interpolation"] = (strip, cfg.interpolation_steps)
    # many-step families: each row one sample from its noise through the sampler's steps to the image
    frames = run.trajectory(cfg.trajectory_rows, cfg.trajectory_frames, generator=generator, **options)
    if frames is not None:
        made["trajectory"] = (frames.flatten(0, 1), cfg.trajectory_frames)
    return made


def translation_images(run: Run, cfg: DictConfig, options: dict[str, Any]) -> dict[str, tuple[Tensor, int]]:
    """An image-to-image run's rows: the test split's first `nrow` inputs (the task's pairs under `seed`), each with
    its outputs and its target; a diffusion or flow family adds each of the first inputs' outputs on their way."""
    import torch

    inputs, targets = run.pairs(cfg.nrow, split="test", seed=cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    made = {"grid": run.translation_grid(inputs, targets, cfg.outputs_per_input, generator=generator, **options)}
    frames = run.trajectory(cfg.trajectory_rows, cfg.trajectory_frames, generator=generator,
                            source=inputs[: cfg.trajectory_rows], **options)
    if frames is not None:
        made["trajectory"] = (frames.flatten(0, 1), cfg.trajectory_frames)
    return made


def save_images(made: dict[str, tuple[Tensor, int]], out: Path, seed: int) -> dict[str, Path]:
    """Write each grid as a new PNG in `out`, the files of one command under one shared number (sample_seed0.png,
    interpolation_seed0.png; then sample_seed0-2.png, ...), logging each name; an earlier file is never replaced.
    A folder made for files that could not be written is removed again."""
    from genlab.generation import png_bytes

    created = first_missing(out)
    written: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        targets = {name: out / f"{STEMS[name]}_seed{seed}.png" for name in made}
        number = first_free_number(list(targets.values()))
        for name, (images, nrow) in made.items():
            png = png_bytes(images, nrow)
            written[name] = write_new(targets[name], lambda stream, png=png: stream.write(png), first=number)
            log.info("%-13s %s", name, written[name])
    except OSError as error:
        if not written:
            remove_empty_up_to(out, created)
        kept = f"; written before: {', '.join(str(path) for path in written.values())}" if written else ""
        raise SamplesNotSaved(f"cannot write the PNGs into {out} ({error.strerror or error}){kept}:"
                              " free some space there or choose another folder with out=<folder>") from error
    return written


@hydra_app("sample")
def main(cfg: DictConfig, job: Job) -> None:
    sample(cfg)
