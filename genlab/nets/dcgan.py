"""The DCGAN generator and discriminator (Radford et al. 2016), sized from the image shape.

Both work for any H and W divisible by 4 (1x28x28 MNIST, 3x32x32 CIFAR-10): the generator
starts from an (H/4, W/4) map and doubles it twice; the discriminator halves it twice.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


from genlab.nets.layers import maybe_spectral, norm_layer, one_hot, quarter_size


class Generator(nn.Module):
    """z (N, latent_dim) [+ one-hot label] -> image (N, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], base_channels: int = 64, num_classes: int = 0):
        super().__init__()
        channels, h4, w4 = quarter_size(image_shape)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        c = base_channels
        self.net = nn.Sequential(
            # (N, latent + classes, 1, 1) -> (N, 4c, H/4, W/4)
            nn.ConvTranspose2d(latent_dim + num_classes, 4 * c, (h4, w4), bias=False),
            nn.BatchNorm2d(4 * c),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1, bias=False),  # -> H/2
            nn.BatchNorm2d(2 * c),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # -> H
            nn.BatchNorm2d(c),
            nn.ReLU(True),
            nn.Conv2d(c, channels, 3, 1, 1),
            nn.Tanh(),
        )
        self.apply(dcgan_init_)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        code = one_hot(labels, self.num_classes, z.shape[0], z.device)
        if code is not None:
            z = torch.cat([z, code], dim=1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image (N, C, H, W) [+ one-hot label planes] -> one raw score per image (N,).

    `norm` picks what follows hidden convolutions: `batch` (DCGAN), `layer` or `none`
    (WGAN-GP critics must not batch-normalise), or `spectral` (SN-GAN).
    """

    def __init__(self, image_shape: Sequence[int], base_channels: int = 64, num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        channels, h4, w4 = quarter_size(image_shape)
        self.num_classes = num_classes
        c = base_channels

        def conv(c_in: int, c_out: int, *args: int) -> nn.Module:
            return maybe_spectral(nn.Conv2d(c_in, c_out, *args), norm)

        self.net = nn.Sequential(
            conv(channels + num_classes, c, 4, 2, 1),  # -> H/2; no norm on the first layer (DCGAN)
            nn.LeakyReLU(0.2, True),
            conv(c, 2 * c, 4, 2, 1),  # -> H/4
            norm_layer(norm, 2 * c),
            nn.LeakyReLU(0.2, True),
            conv(2 * c, 4 * c, 3, 1, 1),
            norm_layer(norm, 4 * c),
            nn.LeakyReLU(0.2, True),
            conv(4 * c, 1, (h4, w4)),  # -> (N, 1, 1, 1), linear output
        )
        self.apply(dcgan_init_)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        code = one_hot(labels, self.num_classes, images.shape[0], images.device)
        if code is not None:
            planes = code[:, :, None, None].expand(-1, -1, *images.shape[2:])
            images = torch.cat([images, planes], dim=1)
        return self.net(images).flatten()


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "weight_orig", None)
        if weight is None and hasattr(module, "parametrizations"):
            weight = module.parametrizations.weight.original
        nn.init.normal_(weight if weight is not None else module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
