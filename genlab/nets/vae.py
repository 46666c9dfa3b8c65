"""Convolutional VAE encoder and decoder, sized from the image shape (H and W divisible by 4)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from genlab.nets.layers import check_latent_dim, one_hot, quarter_size


class Encoder(nn.Module):
    """image (N, C, H, W) in [-1, 1] [+ one-hot label planes] -> (mu, logvar), each (N, latent_dim)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, base_channels: int = 32, num_classes: int = 0):
        super().__init__()
        channels, h4, w4 = quarter_size(image_shape)
        self.num_classes, c = num_classes, base_channels
        self.features = nn.Sequential(
            nn.Conv2d(channels + num_classes, c, 4, 2, 1),  # -> H/2
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(c, 2 * c, 4, 2, 1),  # -> H/4
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),
        )
        check_latent_dim(latent_dim)
        self.to_moments = nn.Linear(2 * c * h4 * w4, 2 * latent_dim)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        code = one_hot(labels, self.num_classes, images.shape[0], images.device)
        if code is not None:
            images = torch.cat([images, code[:, :, None, None].expand(-1, -1, *images.shape[2:])], dim=1)
        mu, logvar = self.to_moments(self.features(images)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z (N, latent_dim) [+ one-hot label] -> per-pixel parameters (N, C, H, W): Bernoulli logits or Gaussian means."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], base_channels: int = 32, num_classes: int = 0):
        super().__init__()
        channels, h4, w4 = quarter_size(image_shape)
        self.num_classes, c = num_classes, base_channels
        self.start_shape = (2 * c, h4, w4)
        check_latent_dim(latent_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim + num_classes, 2 * c * h4 * w4), nn.ReLU(True))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1),  # -> H/2
            nn.ReLU(True),
            nn.ConvTranspose2d(c, c, 4, 2, 1),  # -> H
            nn.ReLU(True),
            nn.Conv2d(c, channels, 3, 1, 1),
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        code = one_hot(labels, self.num_classes, z.shape[0], z.device)
        if code is not None:
            z = torch.cat([z, code], dim=1)
        return self.upsample(self.project(z).view(-1, *self.start_shape))
