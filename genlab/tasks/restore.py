"""Restoration tasks: the target is the clean image itself, the input a damaged copy of it.

inpaint (a hole to fill: a centre box, random boxes or free-form strokes; the mask is part of the input),
superres (x2 or x4 down-sampled, given back at full size by bicubic upsampling, as SR3 conditions on it)
and denoise (additive Gaussian noise of a stated sigma).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import ConfigError, is_number, require
from genlab.tasks.base import Pair, Task

MASKS = ("center", "boxes", "strokes")


class Inpaint(Task):
    """Fill a hole. The input is the image with the hole set to `fill` (mid-grey), and the mask (-1 known, 1 hole)
    as one more channel, as in Palette (Saharia et al. 2022) and LaMa's input.

    `mask`: center (a box of half the side, centred: the same hole for every image), boxes (one to three boxes
    of a quarter to half the side) or strokes (free-form brush strokes, after DeepFill v2's, Yu et al. 2019).
    """

    name = "inpaint"
    baseline_name = "masked image"

    def __init__(self, image_shape: Sequence[int], mask: str = "center", fill: float = 0.0, seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        require(mask in MASKS, "task.mask", mask, " or ".join(MASKS))
        require(is_number(fill) and -1 <= fill <= 1, "task.fill", fill, "a number in [-1, 1]")
        self.mask, self.fill = mask, float(fill)

    @property
    def source_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.image_shape
        return (channels + 1, height, width)

    def holes(self, keys: Tensor, device: torch.device) -> Tensor:
        """(N, 1, H, W): 1 in each image's hole, 0 where its pixels are known."""
        _, height, width = self.image_shape
        if self.mask == "center":
            hole = torch.zeros(1, height, width)
            hole[:, height // 4: height // 4 + height // 2, width // 4: width // 4 + width // 2] = 1
            return hole.expand(len(keys), -1, -1, -1).to(device)
        draw = self.boxes if self.mask == "boxes" else self.strokes
        return self.per_image(keys, draw, device)

    def boxes(self, generator: torch.Generator) -> Tensor:
        _, height, width = self.image_shape
        hole = torch.zeros(1, height, width)
        for _ in range(int(torch.randint(1, 4, (), generator=generator))):
            h, w = (int(torch.randint(size // 4, size // 2 + 1, (), generator=generator)) for size in (height, width))
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            hole[:, top: top + h, left: left + w] = 1
        return hole

    def strokes(self, generator: torch.Generator) -> Tensor:
        """One to four strokes, each two to five segments of random direction and length, drawn with a round brush."""
        _, height, width = self.image_shape
        size = min(height, width)
        rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                    indexing="ij")
        centres, radii = [], []
        draws = iter(torch.rand(64, generator=generator).tolist())  # at most 4 strokes x (3 + 5 x 2) numbers
        uniform = lambda low, high: low + (high - low) * next(draws)  # noqa: E731
        for _ in range(int(torch.randint(1, 5, (), generator=generator))):
            point = torch.tensor([uniform(0, height - 1), uniform(0, width - 1)])
            radius = uniform(1.0, max(1.5, size / 12))
            angle = uniform(0, 2 * math.pi)
            for _ in range(int(uniform(2, 6))):
                angle += uniform(-math.pi / 2, math.pi / 2)
                length = uniform(size / 8, size / 3)
                end = torch.tensor([min(max(float(point[0]) + length * math.sin(angle), 0.0), height - 1.0),
                                    min(max(float(point[1]) + length * math.cos(angle), 0.0), width - 1.0)])
                t = torch.linspace(0, 1, int(length) + 2)[:, None]
                centres.append(point + t * (end - point))  # the brush's centre every pixel or less along the segment
                radii.append(torch.full((len(t),), radius))
                point = end
        centre, radius = torch.cat(centres), torch.cat(radii)
        distance = (rows[None] - centre[:, 0, None, None]) ** 2 + (cols[None] - centre[:, 1, None, None]) ** 2
        hole = (distance <= radius[:, None, None] ** 2).any(0)
        return hole.float()[None]

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        hole = self.holes(keys, images.device)
        masked = images * (1 - hole) + self.fill * hole
        return Pair(torch.cat([masked, 2 * hole - 1], dim=1), images)

    def visible(self, source: Tensor) -> Tensor:
        return source[:, :-1]

    def known(self, source: Tensor) -> tuple[Tensor, Tensor]:
        return source[:, :-1], (source[:, -1:] > 0).to(source.dtype)

    def __repr__(self) -> str:
        return f"Inpaint(mask={self.mask}, fill={self.fill}, seed={self.seed})"


class SuperResolution(Task):
    """Restore detail: the image down-sampled by `factor` (bicubic with antialiasing), then brought back to full
    size by bicubic upsampling, which is both the input (as SR3 conditions on it) and the baseline."""

    name = "superres"
    baseline_name = "bicubic upsample"

    def __init__(self, image_shape: Sequence[int], factor: int = 4, seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        require(factor in (2, 4, 8), "task.factor", factor, "2, 4 or 8")
        _, height, width = self.image_shape
        if height % factor or width % factor:
            raise ConfigError(f"task.factor={factor} does not divide the image size {height}x{width}: choose 2 or 4")
        self.factor = factor

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        _, height, width = self.image_shape
        small = F.interpolate(images, size=(height // self.factor, width // self.factor), mode="bicubic",
                              antialias=True, align_corners=False)
        return Pair(F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp(-1, 1), images)

    def __repr__(self) -> str:
        return f"SuperResolution(factor={self.factor})"


class Denoise(Task):
    """Remove additive Gaussian noise: input = image + sigma * eps, with sigma on the [-1, 1] scale (sigma 0.5 is
    0.25 of the [0, 1] range, 64 of 255), not clipped; the baseline is the noisy image clipped to [-1, 1]."""

    name = "denoise"
    baseline_name = "noisy image"

    def __init__(self, image_shape: Sequence[int], sigma: float = 0.5, seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        require(is_number(sigma) and sigma > 0, "task.sigma", sigma, "a positive number (on the [-1, 1] scale)")
        self.sigma = float(sigma)

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        noise = self.per_image(keys, lambda g: torch.randn(self.image_shape, generator=g), images.device)
        return Pair(images + self.sigma * noise.to(images.dtype), images)

    def baseline(self, source: Tensor) -> Tensor:
        return source.clamp(-1, 1)

    def __repr__(self) -> str:
        return f"Denoise(sigma={self.sigma}, seed={self.seed})"
