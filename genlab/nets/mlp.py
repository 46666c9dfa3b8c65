"""Fully connected generator and discriminator, as in the original GAN paper (Goodfellow et al. 2014).

The paper's discriminator used maxout units; LeakyReLU is the common modern stand-in.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from genlab.nets.layers import check_latent_dim, maybe_spectral, norm_layer, one_hot


class Generator(nn.Module):
    """z (N, latent_dim) [+ one-hot label] -> image (N, C, H, W) in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (256, 512, 1024),
        num_classes: int = 0,
    ):
        super().__init__()
        check_latent_dim(latent_dim)
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, tuple(image_shape)
        layers: list[nn.Module] = []
        width = latent_dim + num_classes
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(True)]
            width = size
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        code = one_hot(labels, self.num_classes, z.shape[0], z.device)
        if code is not None:
            z = torch.cat([z, code], dim=1)
        return self.net(z).view(-1, *self.image_shape)


class Discriminator(nn.Module):
    """image (N, C, H, W) [+ one-hot label] -> one raw score per image (N,)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (512, 256),
        num_classes: int = 0,
        norm: str = "none",
    ):
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = math.prod(image_shape) + num_classes
        for size in hidden:
            layers += [maybe_spectral(nn.Linear(width, size), norm), norm_layer(norm, size, dims=1), nn.LeakyReLU(0.2, True)]
            width = size
        layers.append(maybe_spectral(nn.Linear(width, 1), norm))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        flat = images.flatten(1)
        code = one_hot(labels, self.num_classes, images.shape[0], images.device)
        if code is not None:
            flat = torch.cat([flat, code], dim=1)
        return self.net(flat).flatten()
