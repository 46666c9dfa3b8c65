"""The DCGAN generator and discriminator (Radford et al. 2016), sized from the image shape.

Up to 32 px, any H and W divisible by 4 (1x28x28 MNIST, 3x32x32 CIFAR-10): the generator starts from an
(H/4, W/4) map and doubles it twice; the discriminator halves it twice. Above (64, 128, 256 px) they are
DCGAN's 64x64 nets carried on: the generator projects z to a 4x4 map of 2^(n-1) * base_channels and doubles
it n times with one transposed convolution each, halving the channels (the last one to the image, tanh); the
discriminator mirrors it, down to 4x4, then one 4x4 convolution scores (layers.conv_layout).

Conditional versions (num_classes > 0) take the label by `conditioning`: `concat` (a one-hot
code beside the noise, one-hot planes beside the image: Mirza & Osindero 2014), or the stronger
`cbn` for the generator (class-conditional batch norm) and `projection` for the discriminator
(Miyato & Koyama 2018); see genlab/nets/layers.py. An `auxiliary` discriminator (ACGAN, Odena et
al. 2017) does not read the label: it scores real vs fake and, through `classify`, predicts the
class (the `auxiliary_classifier` term of genlab/regularizers.py trains both players on it).
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import torch
from torch import Tensor, nn


from genlab.errors import ConfigError
from genlab.nets.layers import (
    ConditionalBatchNorm2d,
    Projection,
    check_choice,
    check_latent_dim,
    class_labels,
    conv_layout,
    maybe_spectral,
    norm_layer,
    one_hot,
)

GENERATOR_CONDITIONINGS = ("concat", "cbn")
DISCRIMINATOR_CONDITIONINGS = ("concat", "projection", "auxiliary")


class Generator(nn.Module):
    """z (N, latent_dim) [+ label: one-hot beside z, or per-class batch-norm affines] -> image (N, C, H, W) in [-1, 1]."""

    def __init__(
        self, latent_dim: int, image_shape: Sequence[int], base_channels: int = 64, num_classes: int = 0,
        conditioning: str = "concat",
    ):
        super().__init__()
        check_choice("model.net.generator.conditioning", conditioning, GENERATOR_CONDITIONINGS)
        layout = conv_layout(image_shape)
        check_latent_dim(latent_dim)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.concat = conditioning == "concat"
        code_width = num_classes if self.concat else 0
        c = base_channels

        def norm(width: int) -> nn.Module:
            return nn.BatchNorm2d(width) if self.concat or not num_classes else ConditionalBatchNorm2d(width, num_classes)

        if layout.paper:
            n = layout.doublings
            layers: list[nn.Module] = [  # (N, latent [+ classes], 1, 1) -> (N, 2^(n-1) c, 4, 4)
                nn.ConvTranspose2d(latent_dim + code_width, 2 ** (n - 1) * c, 4, bias=False), norm(2 ** (n - 1) * c),
                nn.ReLU(True)]
            for level in range(n - 1, 0, -1):  # each doubles the map and halves the channels
                layers += [nn.ConvTranspose2d(2 ** level * c, 2 ** (level - 1) * c, 4, 2, 1, bias=False),
                           norm(2 ** (level - 1) * c), nn.ReLU(True)]
            layers += [nn.ConvTranspose2d(c, layout.channels, 4, 2, 1, bias=False), nn.Tanh()]  # -> H
            self.net = nn.Sequential(*layers)
        else:
            self.net = nn.Sequential(
                # (N, latent [+ classes], 1, 1) -> (N, 4c, H/4, W/4)
                nn.ConvTranspose2d(latent_dim + code_width, 4 * c, (layout.height, layout.width), bias=False),
                norm(4 * c),
                nn.ReLU(True),
                nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1, bias=False),  # -> H/2
                norm(2 * c),
                nn.ReLU(True),
                nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # -> H
                norm(c),
                nn.ReLU(True),
                nn.Conv2d(c, layout.channels, 3, 1, 1),
                nn.Tanh(),
            )
        self.apply(dcgan_init_)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.concat:
            code = one_hot(labels, self.num_classes, z.shape[0], z.device)
            return self.net((z if code is None else torch.cat([z, code], dim=1))[:, :, None, None])
        labels = class_labels(labels, self.num_classes, z.shape[0], z.device)
        x = z[:, :, None, None]
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """image (N, C, H, W) [+ label: one-hot planes, or a projection] -> one raw score per image (N,).

    `norm` picks what follows hidden convolutions: `batch` (DCGAN), `layer` or `none`
    (WGAN-GP critics must not batch-normalise), or `spectral` (SN-GAN). With `projection`
    the score is psi(phi(x)) + <embed(y), phi(x)>, phi(x) the last hidden layer's map. With
    `auxiliary` the score ignores the label and `classify` gives class logits from phi(x).
    """

    def __init__(
        self, image_shape: Sequence[int], base_channels: int = 64, num_classes: int = 0, norm: str = "batch",
        conditioning: str = "concat",
    ):
        super().__init__()
        check_choice("model.net.discriminator.conditioning", conditioning, DISCRIMINATOR_CONDITIONINGS)
        layout = conv_layout(image_shape)
        self.num_classes = num_classes
        planes = num_classes if conditioning == "concat" else 0
        c = base_channels

        def conv(c_in: int, c_out: int, *args: int) -> nn.Module:
            return maybe_spectral(nn.Conv2d(c_in, c_out, *args), norm)

        if layout.paper:
            n = layout.doublings
            layers: list[nn.Module] = [conv(layout.channels + planes, c, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # -> H/2
            for level in range(1, n):  # each halves the map and doubles the channels, down to 4x4
                layers += [conv(2 ** (level - 1) * c, 2 ** level * c, 4, 2, 1), norm_layer(norm, 2 ** level * c),
                           nn.LeakyReLU(0.2, True)]
            phi_channels = 2 ** (n - 1) * c
            self.net = nn.Sequential(*layers, conv(phi_channels, 1, 4))  # psi: -> (N, 1, 1, 1)
        else:
            phi_channels = 4 * c
            self.net = nn.Sequential(
                conv(layout.channels + planes, c, 4, 2, 1),  # -> H/2; no norm on the first layer (DCGAN)
                nn.LeakyReLU(0.2, True),
                conv(c, 2 * c, 4, 2, 1),  # -> H/4
                norm_layer(norm, 2 * c),
                nn.LeakyReLU(0.2, True),
                conv(2 * c, 4 * c, 3, 1, 1),
                norm_layer(norm, 4 * c),
                nn.LeakyReLU(0.2, True),
                conv(4 * c, 1, (layout.height, layout.width)),  # psi: -> (N, 1, 1, 1), linear output
            )
        phi_size = phi_channels * layout.height * layout.width
        # <embed(y), phi(x)> over phi(x) = the (N, phi_channels, h, w) map that psi reads
        conditional = num_classes and conditioning == "projection"
        self.projection = Projection(num_classes, phi_size, norm) if conditional else None
        # ACGAN's class head: logits of p(y | x) from the same phi(x)
        auxiliary = num_classes and conditioning == "auxiliary"
        self.classifier = maybe_spectral(nn.Linear(phi_size, num_classes), norm) if auxiliary else None
        # ACGAN scores and classifies the same batches: phi(x) of the last two inputs, reused while the input,
        # the weights (and in eval mode the batch norm statistics), mode and grad mode are those that computed it
        # (holding the input keeps its id unique; their version counters tell an in-place change)
        self._recent_features: list[tuple[Tensor, tuple[Any, ...], Tensor]] = []
        self.apply(dcgan_init_)

    def classify(self, images: Tensor) -> Tensor:
        """Class logits (N, num_classes) of an `auxiliary` discriminator (ACGAN)."""
        if self.classifier is None:
            raise ConfigError(
                "the auxiliary classifier needs model.net.discriminator.conditioning=auxiliary (and num_classes > 0)"
            )
        return self.classifier(self._features(images).flatten(1))

    def _features(self, images: Tensor) -> Tensor:
        """phi(x); for an auxiliary discriminator, computed once per batch for the score and the class head."""
        if self.classifier is None or images.is_inference():
            # inference tensors (Lightning's validation, torch.inference_mode) track no version: no cache there,
            # where no graph is shared between the two heads anyway
            return self.net[:-1](images)
        # batch norm reads its running statistics (buffers) in eval mode only
        tensors = self.parameters() if self.training else itertools.chain(self.parameters(), self.buffers())
        state = (torch.is_grad_enabled(), self.training, images._version, tuple(t._version for t in tensors))
        for seen, seen_state, features in self._recent_features:
            if seen is images and seen_state == state:
                return features
        features = self.net[:-1](images)
        self._recent_features = [*self._recent_features[-1:], (images, state, features)]
        return features

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.projection is not None:
            labels = class_labels(labels, self.num_classes, images.shape[0], images.device)
            features = self.net[:-1](images)  # phi(x)
            return self.net[-1](features).flatten() + self.projection(features, labels)
        if self.classifier is not None:  # ACGAN: the score says real or fake only
            return self.net[-1](self._features(images)).flatten()
        code = one_hot(labels, self.num_classes, images.shape[0], images.device)
        if code is not None:
            planes = code[:, :, None, None].expand(-1, -1, *images.shape[2:])
            images = torch.cat([images, planes], dim=1)
        return self.net(images).flatten()


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02) (per class for CBN)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = getattr(module, "weight_orig", None)
        if weight is None and hasattr(module, "parametrizations"):
            weight = module.parametrizations.weight.original
        nn.init.normal_(weight if weight is not None else module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, ConditionalBatchNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
