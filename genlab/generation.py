"""Images from any trained family, the same way for the training callbacks and the commands:
fixed grids, batches for the metrics, walks between two noise draws. All of it goes through
`TrainingModule.sample` (the family's `sample`, with the run's EMA swapped in), so a new family
(one-pass or many-step) works here unchanged.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from torch import Tensor

from genlab.modules.base import TrainingModule


def grid_labels(num_classes: int, n_per_class: int) -> Tensor:
    """Row k of a grid shows class k: [0]*n, [1]*n, ..."""
    return torch.arange(num_classes).repeat_interleave(n_per_class)


def sample_grid(
    model: TrainingModule, n: int, nrow: int, generator: torch.Generator, options: Mapping[str, Any] | None = None
) -> tuple[Tensor, int]:
    """`n` samples and the grid's row length; conditional models get one row of n // classes per class.

    `options` here and below are the family's sampler options (a mapping: their names may be any)."""
    options, family = options or {}, model.family
    if family.conditional:
        per_class = max(1, n // family.num_classes)
        return model.sample(labels=grid_labels(family.num_classes, per_class), n=per_class * family.num_classes,
                            generator=generator, **options), per_class
    return model.sample(n, generator=generator, **options), nrow


def sample_batches(
    model: TrainingModule, n: int, batch_size: int, seed: int, options: Mapping[str, Any] | None = None
) -> Iterator[Tensor]:
    """`n` images in batches, the same noise (and cycling class labels) every call with the same seed."""
    options, family = options or {}, model.family
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        labels = torch.arange(start, start + size) % family.num_classes if family.conditional else None
        yield model.sample(size, labels=labels, generator=generator, **options)


def translate_batches(
    model: TrainingModule, sources: Tensor, batch_size: int, seed: int, options: Mapping[str, Any] | None = None
) -> Iterator[Tensor]:
    """An image-to-image family's outputs for `sources` (a task's inputs), in batches, its draws (a sampler's noise,
    test-time dropout) from one generator seeded by `seed`: the same outputs every call."""
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(sources), batch_size):
        yield model.sample(noise=sources[start:start + batch_size], generator=generator, **(options or {}))


def as_picture(images: Tensor, channels: int) -> Tensor:
    """Images shown with `channels` channels (a grey input beside colour outputs is repeated into RGB)."""
    return images.expand(-1, channels, -1, -1) if images.shape[1] < channels else images


def translation_rows(
    model: TrainingModule, source: Tensor, target: Tensor, outputs_per_input: int, generator: torch.Generator,
    options: Mapping[str, Any] | None = None,
) -> tuple[Tensor, int]:
    """One row per input: the input (as a picture), `outputs_per_input` outputs drawn for it, its target; and the
    row length. A stochastic family's outputs differ along a row."""
    task = model.family.task
    channels = max(task.target_shape[0], task.visible(source[:1]).shape[1])
    drawn = [model.sample(noise=source, generator=generator, **(options or {})).cpu() for _ in range(outputs_per_input)]
    columns = [task.visible(source).cpu(), *drawn, target.cpu()]
    rows = torch.stack([as_picture(column, channels) for column in columns], dim=1)
    return rows.flatten(0, 1), len(columns)


def interpolate(start: Tensor, end: Tensor, t: Tensor, spherical: bool) -> Tensor:
    """Points between two noise batches (n, ...) at fractions t (steps,): (n, steps, ...).

    Straight lines, or great circles (slerp, Shoemake 1985) that keep the norm of Gaussian
    noise, for families whose sampler expects noise of that norm."""
    shape = (1, len(t)) + (1,) * (start.dim() - 1)
    t = t.view(shape)
    a, b = start[:, None], end[:, None]
    if not spherical:
        return (1 - t) * a + t * b
    flat_a, flat_b = start.flatten(1), end.flatten(1)
    cosine = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1))
    omega = torch.arccos(cosine.clamp(-1 + 1e-7, 1 - 1e-7)).view((-1, 1) + (1,) * (start.dim() - 1))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolation_strip(
    model: TrainingModule, rows: int, steps: int, generator: torch.Generator, options: Mapping[str, Any] | None = None
) -> Tensor:
    """rows x steps images walking from one noise draw to another (row k of class k for conditional models).

    A smooth walk means the model learned a continuous mapping, not a lookup of training images.
    """
    options, family = options or {}, model.family
    start, end = family.sample_noise(rows, generator), family.sample_noise(rows, generator)
    t = torch.linspace(0, 1, steps, device=start.device)
    noise = interpolate(start, end, t, spherical=family.interpolation == "spherical").flatten(0, 1)
    labels = torch.arange(rows).repeat_interleave(steps) % family.num_classes if family.conditional else None
    return model.sample(noise=noise, labels=labels, generator=generator, **options)


def png_bytes(images: Tensor, nrow: int) -> bytes:
    """A grid of images in [-1, 1] as PNG bytes, encoded before its file exists (`genlab sample`, `genlab export`)."""
    import io

    from torchvision.utils import save_image

    buffer = io.BytesIO()
    save_image(images, buffer, format="png", nrow=nrow, normalize=True, value_range=(-1, 1))
    return buffer.getvalue()
