"""`genlab sample ckpt_path=... n=64`: a sample grid and a latent interpolation strip from a trained run.

Conditional models get one row per class; every model gets `n_interpolations` rows that walk a
straight line in latent space between two random latents (a smooth walk means the generator
learned a continuous mapping, not a lookup of training images).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from genlab.cli import full_command_line
from genlab.errors import report_user_errors
from genlab.runs import load_model, load_run_config, resolve_device, run_folder_of

if TYPE_CHECKING:  # torch loads only when sampling starts, so `genlab sample --help` is instant
    import torch

log = logging.getLogger("genlab")


def sample_grid(model, n: int, nrow: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """`n` samples (rounded to whole rows of classes for conditional models) and the row length."""
    from genlab.callbacks.sample_grid import grid_labels

    if model.conditional:
        per_class = max(1, n // model.num_classes)
        labels = grid_labels(model.num_classes, per_class)
        return model.generate(model.sample_latent(len(labels), generator), labels), per_class
    return model.generate(model.sample_latent(n, generator)), nrow


def interpolation_strip(model, rows: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """rows x steps images: z = (1 - t) z0 + t z1 for t evenly spaced in [0, 1]."""
    import torch

    start, end = model.sample_latent(rows, generator), model.sample_latent(rows, generator)
    t = torch.linspace(0, 1, steps, device=start.device)[None, :, None]
    z = ((1 - t) * start[:, None] + t * end[:, None]).reshape(rows * steps, -1)
    labels = torch.arange(rows).repeat_interleave(steps) % model.num_classes if model.conditional else None
    return model.generate(z, labels)


def sample(cfg: DictConfig) -> dict[str, Path]:
    import torch
    from torchvision.utils import save_image

    run_cfg = load_run_config(cfg.ckpt_path, cfg.paths)
    model = load_model(cfg.ckpt_path, run_cfg, resolve_device(cfg.device))
    out = Path(cfg.out) if cfg.out else run_folder_of(cfg.ckpt_path) / "samples"
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    images, nrow = sample_grid(model, cfg.n, cfg.nrow, generator)
    written = {"grid": out / f"sample_seed{cfg.seed}.png", "interpolation": out / f"interpolation_seed{cfg.seed}.png"}
    save_image(images, written["grid"], nrow=nrow, normalize=True, value_range=(-1, 1))
    strip = interpolation_strip(model, cfg.n_interpolations, cfg.interpolation_steps, generator)
    save_image(strip, written["interpolation"], nrow=cfg.interpolation_steps, normalize=True, value_range=(-1, 1))
    for name, path in written.items():
        log.info("%-13s %s", name, path)
    return written


@hydra.main(config_path="pkg://genlab.configs", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with full_command_line(), report_user_errors():
        sample(cfg)
