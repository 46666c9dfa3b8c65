"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020), and
ADA's adaptive probability (Karras et al. 2020).

On small data sets a discriminator memorises the real images and stops teaching the generator.
Augmenting real *and* generated images, in both players' steps, with transforms that gradients
pass through keeps it from memorising without leaking the augmentations into the samples.
A model's YAML chooses one under `model.augment` (null: off), e.g. `model/augment=diffaugment`:

    model:
      augment:
        _target_: genlab.augment.DiffAugment
        policy: color,translation,cutout
        probability: 1.0

The ops follow the authors' DiffAugment_pytorch.py on images in [-1, 1]: brightness + U(-0.5, 0.5),
saturation x U(0, 2), contrast x U(0.5, 1.5), an integer translation of up to 1/8 of the side
with zero padding, and a zeroed square of half the side. Each op acts on each image alone, so the
batch order, and with it every class label, is kept.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from genlab.errors import ConfigError, is_number, is_positive_integer, is_positive_number, require

# sums a tensor over every training process (DDP); None: one process
Reduce = Callable[[Tensor], Tensor]


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One draw per image, broadcastable over its pixels."""
    return low + (high - low) * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: Tensor) -> Tensor:
    return x + _uniform(x, -0.5, 0.5)


def saturation(x: Tensor) -> Tensor:
    # the identity on one-channel images: each pixel is its own channel mean
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _uniform(x, 0.0, 2.0) + mean


def contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by whole pixels, up to `ratio` of its side each way; what enters is zero."""
    n, _, height, width = x.shape
    reach_y, reach_x = int(height * ratio), int(width * ratio)
    shift_y = torch.randint(-reach_y, reach_y + 1, (n, 1, 1), device=x.device)
    shift_x = torch.randint(-reach_x, reach_x + 1, (n, 1, 1), device=x.device)
    padded = torch.nn.functional.pad(x, [reach_x, reach_x, reach_y, reach_y]).permute(0, 2, 3, 1)  # N, H', W', C
    rows = torch.arange(height, device=x.device).view(1, -1, 1) + reach_y + shift_y  # N, H, 1
    cols = torch.arange(width, device=x.device).view(1, 1, -1) + reach_x + shift_x  # N, 1, W
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of `ratio` of the side, centred anywhere in the image (cut off at its edges)."""
    n, _, height, width = x.shape
    size_y, size_x = int(height * ratio), int(width * ratio)
    top = torch.randint(0, height + (1 - size_y % 2), (n, 1, 1), device=x.device) - size_y // 2
    left = torch.randint(0, width + (1 - size_x % 2), (n, 1, 1), device=x.device) - size_x // 2
    rows = torch.arange(height, device=x.device).view(1, -1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # N, H, W
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS: dict[str, list[Callable[[Tensor], Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}


def parse_policy(policy: str, key: str = "model.augment.policy") -> list[str]:
    names = [name.strip() for name in str(policy).split(",") if name.strip()]
    for name in names:
        if name not in OPS:
            raise ConfigError(f"{key}={policy!r}: {name!r} is not an augmentation; choose from {', '.join(OPS)},"
                              " comma-separated, e.g. color,translation,cutout")
    return names


class DiffAugment:
    """DiffAugment's policy, each op applied to each image with probability `probability` (1: always, as in the paper)."""

    def __init__(self, policy: str = "color,translation,cutout", probability: float = 1.0) -> None:
        require(is_number(probability) and 0 <= probability <= 1, "model.augment.probability", probability,
                "a number in [0, 1]")
        self.policy = parse_policy(policy)
        self.p = float(probability)

    def __call__(self, images: Tensor) -> Tensor:
        """The augmented batch, same shape and order; gradients flow back to `images`."""
        if self.p <= 0:
            return images
        for name in self.policy:
            for op in OPS[name]:
                if self.p >= 1:
                    images = op(images)
                else:
                    chosen = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < self.p
                    images = torch.where(chosen, op(images), images)
        return images

    def observe(self, real_sign: Tensor, batch_size: int, step: int, reduce: Reduce | None = None) -> None:
        """After critic step `step` (from 1): E[sign(D(x_real))] on its batch. A fixed probability ignores it."""

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])


class AdaptiveDiffAugment(DiffAugment):
    """ADA's controller (Karras et al. 2020, sec. 3) on DiffAugment's ops.

    r_t = E[sign(D(x_real))] over the last `interval` critic steps measures how sure D is of the
    real images: above `target` it starts to memorise them. Every `interval` critic steps
    p <- p + sign(r_t - target) * images / (speed_kimg * 1000), kept in [0, 1], with `images` the real
    images of those steps (batch * interval), so that p could cross [0, 1] in `speed_kimg` thousand images.
    Defaults as the paper: target 0.6, interval 4, speed 500 kimg, p starting at 0.
    """

    def __init__(
        self,
        policy: str = "color,translation,cutout",
        target: float = 0.6,
        interval: int = 4,
        speed_kimg: float = 500.0,
        probability: float = 0.0,
    ) -> None:
        super().__init__(policy, probability)
        require(is_number(target) and 0 <= target <= 1, "model.augment.target", target, "a number in [0, 1]")
        require(is_positive_integer(interval), "model.augment.interval", interval, "a positive number of critic steps")
        require(is_positive_number(speed_kimg), "model.augment.speed_kimg", speed_kimg,
                "a positive number of thousands of images")
        self.target = target
        self.interval = interval
        self.speed_kimg = speed_kimg
        self._signs = 0.0  # sum of sign(D(x_real)) over the interval's real images; a tensor once observed
        self._images = 0

    def observe(self, real_sign: Tensor, batch_size: int, step: int, reduce: Reduce | None = None) -> None:
        self._signs = self._signs + real_sign.detach().float() * batch_size
        self._images += batch_size
        if step % self.interval:
            return
        # both on the sign's device: a CPU count beside a CUDA sum would not stack
        device = real_sign.device
        totals = torch.stack([torch.as_tensor(self._signs, dtype=torch.float32, device=device),
                              torch.tensor(float(self._images), device=device)])
        if reduce is not None:  # every DDP rank takes the same step: r_t over all processes
            totals = reduce(totals)
        signs, images = totals.tolist()
        self.adjust(signs / images, images)
        self._signs, self._images = 0.0, 0

    def adjust(self, r_t: float, images: float) -> None:
        """ADA's step: p moves by images / (speed_kimg * 1000) towards keeping r_t at the target."""
        step = images / (self.speed_kimg * 1000)
        direction = (r_t > self.target) - (r_t < self.target)
        self.p = min(1.0, max(0.0, self.p + direction * step))


def check_augment(augment: Any) -> DiffAugment | None:
    if augment is not None and not isinstance(augment, DiffAugment):
        raise ConfigError(f"model.augment is a {type(augment).__name__}; it must be null or a genlab.augment.DiffAugment"
                          " (model/augment=diffaugment or model/augment=ada)")
    return augment
