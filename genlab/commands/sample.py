"""`genlab sample ckpt_path=... n=64`: a sample grid and an interpolation strip from a trained run.

Conditional models get one row per class; every model gets `n_interpolations` rows that walk
between two noise draws (a smooth walk means the model learned a continuous mapping, not a
lookup of training images). `sampler={...}` holds the family's sampler options, if it has any.
Many-step families (diffusion, flow matching) add a strip of the sampler's trajectory, noise to image.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from genlab.commands.app import Job, hydra_app, sampler_options
from genlab.run.load import load_model, load_run_config, run_folder_of

log = logging.getLogger("genlab")


def sample(cfg: DictConfig) -> dict[str, Path]:
    import torch
    from torchvision.utils import save_image

    from genlab.builder import resolve_device
    from genlab.generation import interpolation_strip, sample_grid

    run_cfg = load_run_config(cfg.ckpt_path, cfg.paths)
    model = load_model(cfg.ckpt_path, run_cfg, resolve_device(cfg.device), ema=cfg.get("ema", True))
    options = sampler_options(cfg)
    out = Path(cfg.out) if cfg.out else run_folder_of(cfg.ckpt_path) / "samples"
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    images, nrow = sample_grid(model, cfg.n, cfg.nrow, generator, options)
    written = {"grid": out / f"sample_seed{cfg.seed}.png", "interpolation": out / f"interpolation_seed{cfg.seed}.png"}
    save_image(images, written["grid"], nrow=nrow, normalize=True, value_range=(-1, 1))
    strip = interpolation_strip(model, cfg.n_interpolations, cfg.interpolation_steps, generator, options)
    save_image(strip, written["interpolation"], nrow=cfg.interpolation_steps, normalize=True, value_range=(-1, 1))
    # many-step families: each row one sample from its noise through the sampler's steps to the image
    frames = model.trajectory(cfg.trajectory_rows, cfg.trajectory_frames, generator, **options)
    if frames is not None:
        written["trajectory"] = out / f"trajectory_seed{cfg.seed}.png"
        save_image(frames.flatten(0, 1), written["trajectory"], nrow=cfg.trajectory_frames, normalize=True,
                   value_range=(-1, 1))
    for name, path in written.items():
        log.info("%-13s %s", name, path)
    return written


@hydra_app("sample")
def main(cfg: DictConfig, job: Job) -> None:
    sample(cfg)
