"""Pieces shared by the networks: discriminator normalisation choices and label conditioning."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError

NORMS = ("batch", "layer", "none", "spectral")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"discriminator norm {norm!r} is not known; choose one of: {', '.join(NORMS)}")


def norm_layer(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """The layer after a hidden discriminator layer: BatchNorm, LayerNorm (WGAN-GP's advice), or nothing.

    `spectral` adds no layer here: it wraps the weights instead (see `maybe_spectral`).
    """
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels) if dims == 2 else nn.LayerNorm(channels)
    return nn.Identity()


def maybe_spectral(layer: nn.Module, norm: str) -> nn.Module:
    """Wrap a weight layer in spectral normalisation (Miyato et al. 2018) when `norm == 'spectral'`."""
    return nn.utils.parametrizations.spectral_norm(layer) if norm == "spectral" else layer


def one_hot(labels: Tensor | None, num_classes: int, batch_size: int, device: torch.device) -> Tensor | None:
    """Float one-hot codes for conditional nets (Mirza & Osindero 2014 concatenate them to the input)."""
    if num_classes == 0:
        return None
    if labels is None:
        raise ConfigError("this network is conditional (num_classes > 0) and needs class labels")
    if labels.shape != (batch_size,):
        raise ConfigError(f"expected {batch_size} labels, got shape {tuple(labels.shape)}")
    return F.one_hot(labels.to(device), num_classes).float()


def quarter_size(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """(channels, H/4, W/4): the smallest map of the convolutional nets, which halve twice."""
    channels, height, width = image_shape
    if height % 4 or width % 4:
        raise ConfigError(
            f"the convolutional nets need height and width divisible by 4, got data.image_shape={list(image_shape)}"
        )
    return channels, height // 4, width // 4
