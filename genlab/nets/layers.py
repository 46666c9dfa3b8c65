"""Pieces shared by the networks: discriminator normalisation choices and label conditioning.

Labels enter a net in one of three ways: a one-hot code concatenated to its input (Mirza &
Osindero 2014), a class-conditional batch norm whose scale and shift are chosen by the class
(de Vries et al. 2017), or a projection of the discriminator's features onto a class embedding
(Miyato & Koyama 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError, is_positive_integer, require

NORMS = ("batch", "layer", "none", "spectral")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        # every net that takes `norm` is a discriminator, configured at model.net.discriminator
        raise ConfigError(f"model.net.discriminator.norm={norm!r} is not known; choose one of: {', '.join(NORMS)}")


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


def check_latent_dim(latent_dim: object) -> None:
    """Refuse a latent size the layers cannot take, before torch builds zero-width layers and warns."""
    require(is_positive_integer(latent_dim), "model.latent_dim", latent_dim, "a positive integer")


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not known; choose one of: {', '.join(choices)}")


def class_labels(labels: Tensor | None, num_classes: int, batch_size: int, device: torch.device) -> Tensor | None:
    """The class labels of a conditional net's batch, checked; None for unconditional nets."""
    if num_classes == 0:
        return None
    if labels is None:
        raise ConfigError("this network is conditional (num_classes > 0) and needs class labels")
    if labels.shape != (batch_size,):
        raise ConfigError(f"expected {batch_size} labels, got shape {tuple(labels.shape)}")
    return labels.to(device)


def one_hot(labels: Tensor | None, num_classes: int, batch_size: int, device: torch.device) -> Tensor | None:
    """Float one-hot codes for conditional nets (Mirza & Osindero 2014 concatenate them to the input)."""
    labels = class_labels(labels, num_classes, batch_size, device)
    return None if labels is None else F.one_hot(labels, num_classes).float()


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm with a scale and shift per class: gamma[y] * (x - mean) / std + beta[y].

    De Vries et al. 2017 and Miyato & Koyama 2018's generator: the class steers every layer's
    features instead of entering once with the noise. The statistics are shared by all classes.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.weight = nn.Parameter(torch.ones(num_classes, channels))  # gamma, one row per class
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))  # beta

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        # (N, C, H, W) * (N, C, 1, 1) + (N, C, 1, 1)
        return self.norm(x) * self.weight[labels][:, :, None, None] + self.bias[labels][:, :, None, None]


class Projection(nn.Module):
    """The class term <embed(y), phi(x)> of the projection discriminator (Miyato & Koyama 2018).

    Added to the unconditional score psi(phi(x)); it is the log-likelihood ratio of the classes
    under a log-linear model of p(y|x), a far stronger signal than a one-hot input plane.
    Spectrally normalised with the rest of the discriminator when `norm == 'spectral'`.
    """

    def __init__(self, num_classes: int, features: int, norm: str) -> None:
        super().__init__()
        embed = nn.Embedding(num_classes, features)
        nn.init.normal_(embed.weight, 0.0, 0.02)  # DCGAN's scale; set before spectral norm estimates sigma(W)
        self.embed = maybe_spectral(embed, norm)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return (self.embed(labels) * features.flatten(1)).sum(dim=1)


@dataclass(frozen=True)
class ConvLayout:
    """How the convolutional nets span an image size: from a (height, width) smallest map, `doublings` times.

    Up to 32 px (MNIST, CIFAR-10) the map is (H/4, W/4), doubled twice (genlab's nets since their first
    results); above, it is 4x4 with one up-sampling per doubling, DCGAN's 64x64 layout (Radford et al. 2016)
    carried on to 128 and 256, which needs a square power-of-two size."""

    channels: int
    height: int
    width: int
    doublings: int

    @property
    def paper(self) -> bool:
        return self.height == self.width == 4 and self.doublings > 2


def conv_layout(image_shape: Sequence[int]) -> ConvLayout:
    channels, height, width = image_shape
    if max(height, width) <= 32:
        return ConvLayout(*quarter_size(image_shape), 2)
    if height != width or height & (height - 1):
        raise ConfigError(f"data.image_shape={list(image_shape)}: above 32 px the convolutional nets build DCGAN's layout,"
                          " which needs a square power-of-two size: set the image size to 64, 128 or 256")
    return ConvLayout(channels, 4, 4, height.bit_length() - 3)


def sized(image_shape: Sequence[int] | None, by_size: Mapping[Any, Mapping[str, Any]] | None,
          given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keys of `given`, each its own value or, where None, the entry of `by_size` for the image's height: one
    config builds a net at every size its paper describes (the table lives in the net's YAML, not here)."""
    missing = [key for key, value in given.items() if value is None]
    if not missing:
        return dict(given)
    height = None if image_shape is None else int(image_shape[1])
    entry = {int(k): v for k, v in (by_size or {}).items()}.get(height) if height is not None else None
    if entry is None or any(key not in entry for key in missing):
        sizes = ", ".join(str(int(k)) for k in (by_size or {})) or "none"
        raise ConfigError(f"{where}.by_size has no layout for {height} px images (it has {sizes}): add one"
                          f" ({', '.join(missing)}), set {' and '.join(f'{where}.{key}' for key in missing)},"
                          " or pick one of those sizes")
    return {key: entry[key] if value is None else value for key, value in given.items()}


def quarter_size(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """(channels, H/4, W/4): the smallest map of the convolutional nets, which halve twice."""
    channels, height, width = image_shape
    if height % 4 or width % 4:
        raise ConfigError(
            f"the convolutional nets need height and width divisible by 4, got data.image_shape={list(image_shape)}"
        )
    return channels, height // 4, width // 4
