"""Run folders as `genlab train` leaves them, built without training, for the tests of genlab's Python API and of
`genlab export`: a family's config composed as `genlab train` composes it, in <run>/.hydra/config.yaml, and its
freshly built weights, moved off their start by seeded noise (so that the EMA, a copy of the start, and the raw
weights make different images), in <run>/checkpoints/last.ckpt. Each is built in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import make_mnist

# one small model of each kind the API must reproduce: a GAN, a diffusion family (with sampler options), a
# conditional family, an image-to-image family that draws (pix2pix's test-time dropout), a VAE (ONNX)
FAMILIES: dict[str, tuple[str, ...]] = {
    "dcgan": ("model=dcgan", "model.latent_dim=8", "model.net.generator.base_channels=8",
              "model.net.discriminator.base_channels=8", "model.ema.decay=0.999"),
    "ddpm": ("model=ddpm", "model.net.denoiser.width=8"),
    "cgan": ("model=cgan", "model.latent_dim=8", "model.net.generator.base_channels=8",
             "model.net.discriminator.base_channels=8"),
    "pix2pix": ("model=pix2pix", "task=denoise", "++model.net.generator.width=16", "++model.net.generator.depth=3",
                "++model.net.generator.max_channels=32", "++model.net.discriminator.width=8"),
    "vae": ("model=vae", "model.latent_dim=4", "model.net.encoder.base_channels=8", "model.net.decoder.base_channels=8"),
}
PROGRESS = {"generator_steps": 7, "images_seen": 112}
SUMMARY = {"status": "completed", "overrides": ["model=dcgan", "paths.data_dir=/somewhere/private",
                                               "data.root=/somewhere/private/digits"],
           "metrics": {"val/fid": 50.0}, "seconds": 90.0, "epochs": 2, "generator_steps": 7.0, "images_seen": 112.0}


def composed(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=["data=mnist", "data.val_size=16", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def build_run(folder: Path, family: str, seed: int = 0, overrides: tuple[str, ...] | None = None) -> Path:
    """A run folder of `family` (FAMILIES; or of `overrides`) at `folder`, with a summary.json; returns its
    checkpoint."""
    from omegaconf import open_dict

    from genlab.api.loading import session_paths
    from genlab.builder import build_module

    cfg = composed(*(FAMILIES[family] if overrides is None else overrides))
    built = cfg.copy()
    with open_dict(built):
        built.paths = session_paths()  # as a command's: Hydra's own interpolations resolve only inside one
    torch.manual_seed(seed)
    module = build_module(built)
    with torch.no_grad():
        for parameter in module.family.image_network().parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    (folder / "checkpoints").mkdir()
    checkpoint = folder / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "epoch": 1, "global_step": 14, "progress": PROGRESS}, checkpoint)
    (folder / "summary.json").write_text(json.dumps(SUMMARY))
    return checkpoint


def build_runs(root: Path, *families: str) -> dict[str, Path]:
    """Each family's run folder under `root`, and the tiny MNIST (in the real format) at root/data."""
    make_mnist(root / "data", n_train=96, n_test=32)
    return {family: build_run(root / family, family).parent.parent for family in families}
