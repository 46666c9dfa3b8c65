"""Translation tasks: the target is the image in another form than the input.

colorize (grey to colour, on colour data), colorize_digits (grey digits to digits drawn in random colours: a
colour task that grey data such as MNIST can measure), edges (a Sobel edge map to the image) and restyle (one
colour style to another, unpaired in training: CycleGAN's setting, with the true pairs kept for evaluation).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import is_number, require
from genlab.tasks.base import Pair, Task, luma

SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """RGB in [0, 1] (..., 3) of HSV colours in [0, 1]: f(n) = V - V S max(0, min(k, 4 - k, 1)), k = (n + 6H) mod 6."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * hue[..., None]) % 6
    return value[..., None] - value[..., None] * saturation[..., None] * torch.minimum(k, 4 - k).clamp(0, 1)


def paint(images: Tensor, foreground: Tensor, background: Tensor) -> Tensor:
    """Grey images in [-1, 1] drawn in colour: background where the image is black, foreground where it is white
    (colours (N, 3) or (3,) in [0, 1]); the result in [-1, 1]."""
    ink = (luma(images) + 1) / 2
    foreground, background = (c.to(images).reshape(-1, 3, 1, 1) for c in (foreground, background))
    return 2 * (background + ink * (foreground - background)) - 1


def as_channels(images: Tensor, channels: int) -> Tensor:
    return images if images.shape[1] == channels else images.expand(-1, channels, -1, -1)


class Colorize(Task):
    """Colour images from their luma (ITU-R BT.601) alone: needs colour data (CIFAR-10)."""

    name = "colorize"
    baseline_name = "grey image"

    def __init__(self, image_shape: Sequence[int], seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        self.check_channels(3, "makes colour images from grey ones",
                            "use data=cifar10, or task=colorize_digits, which colours grey digits")

    @property
    def source_shape(self) -> tuple[int, int, int]:
        return (1, *self.image_shape[1:])

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        return Pair(luma(images), images)


class ColorizeDigits(Task):
    """Grey data drawn in colours, then coloured back from its luma: each image gets a random foreground hue
    (full saturation and value) and background hue (saturation 0.5-1, value 0.2-0.5), so a pixel loss, which
    predicts the mean colour given the grey level, turns out washed-out, where a sharp model picks colours."""

    name = "colorize_digits"
    baseline_name = "grey image"

    def __init__(self, image_shape: Sequence[int], seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        self.check_channels(1, "colours grey images", "use task=colorize for colour data")

    @property
    def source_shape(self) -> tuple[int, int, int]:
        return (1, *self.image_shape[1:])

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return (3, *self.image_shape[1:])

    @staticmethod
    def colours(generator: torch.Generator) -> Tensor:
        """(2, 3): a random foreground and background colour."""
        u = torch.rand(4, generator=generator)
        foreground = hsv_to_rgb(u[0], torch.tensor(1.0), torch.tensor(1.0))
        background = hsv_to_rgb(u[1], 0.5 + 0.5 * u[2], 0.2 + 0.3 * u[3])
        return torch.stack([foreground, background])

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        colours = self.per_image(keys, self.colours, images.device)
        target = paint(images, colours[:, 0], colours[:, 1])
        return Pair(luma(target), target)


class Edges(Task):
    """An image from its edge map: the Sobel gradient magnitude of its luma, scaled to [0, 1] by its largest
    possible value (4 sqrt 2 on a [0, 1] image), as one channel in [-1, 1] (pix2pix's edges2* tasks used HED)."""

    name = "edges"
    baseline_name = "edge map"

    @property
    def source_shape(self) -> tuple[int, int, int]:
        return (1, *self.image_shape[1:])

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        grey = (luma(images) + 1) / 2
        kernels = torch.stack([SOBEL, SOBEL.T])[:, None].to(images)
        gradient = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
        magnitude = gradient.pow(2).sum(1, keepdim=True).sqrt() / (4 * math.sqrt(2))
        return Pair(2 * magnitude.clamp(0, 1) - 1, images)


class Restyle(Task):
    """One colour style to another: each image's luma drawn with style A's foreground and background colours is
    the input, with style B's the target. Unpaired: in training each input's target is another image's, so only
    the two domains are learnt (CycleGAN's setting); evaluation keeps the true pairs. Styles are RGB in [0, 1]."""

    name = "restyle"
    paired = False
    baseline_name = "input unchanged"

    def __init__(self, image_shape: Sequence[int], style_a: dict | None = None, style_b: dict | None = None,
                 seed: int = 0) -> None:
        super().__init__(image_shape, seed)
        self.style_a = self._style(style_a or {"foreground": [1.0, 0.85, 0.1], "background": [0.05, 0.1, 0.4]}, "style_a")
        self.style_b = self._style(style_b or {"foreground": [0.55, 0.0, 0.1], "background": [0.75, 0.95, 1.0]}, "style_b")

    @staticmethod
    def _style(style: dict, key: str) -> tuple[Tensor, Tensor]:
        colours = []
        for part in ("foreground", "background"):
            colour = dict(style).get(part)
            colour = list(colour) if isinstance(colour, Sequence) and not isinstance(colour, str) else colour
            require(isinstance(colour, list) and len(colour) == 3 and all(is_number(c) and 0 <= c <= 1 for c in colour),
                    f"task.{key}.{part}", colour, "three numbers in [0, 1] (red, green, blue)")
            colours.append(torch.tensor([float(c) for c in colour]))
        return colours[0], colours[1]

    @property
    def source_shape(self) -> tuple[int, int, int]:
        return (3, *self.image_shape[1:])

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return (3, *self.image_shape[1:])

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        return Pair(paint(images, *self.style_a), paint(images, *self.style_b))
