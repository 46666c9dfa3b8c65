"""What every image-to-image task offers: a clean batch in, an (input, target) pair out, on the batch's device.

A task's randomness (a mask, the noise, a colouring) is drawn image by image from a generator seeded by the
task's `seed` and the image's key (genlab/data/datamodule.py: the image's index in its split, and for the
training split the epoch), never from the batch: an image is degraded alike whatever batch it sits in, on any
number of processes, and a resumed run draws what the uninterrupted one drew. Every family and checkpoint is
scored on the same evaluation inputs: the first n images of a split, keyed 0..n-1, with the evaluation's seed.
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from genlab.errors import ConfigError, is_integer, require

BT601_WEIGHTS = (0.299, 0.587, 0.114)
# mixes a task's seed and an image's key into one generator seed (the golden ratio's 64-bit constant)
_MIX = 0x9E3779B97F4A7C15


def luma(images: Tensor) -> Tensor:
    """ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (N, 1, H, W) of images in [-1, 1]: the colour tasks' grey input,
    and what a grey-trained classifier is shown of a colour output. One-channel images are returned unchanged."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"luma needs (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor(BT601_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


class Pair(NamedTuple):
    """One batch of a task: `source` what the family is given, `target` what it should make (both in [-1, 1])."""

    source: Tensor
    target: Tensor


class Task:
    """Base of the tasks. A subclass states the shapes it maps between and `degrade`, what it does to a clean batch.

    `image_shape` is the data set's (`data.image_shape`); `seed` seeds every draw with the image's key.
    """

    # paired tasks give each input its true target in training; an unpaired one (CycleGAN's) does not
    paired = True
    # what genlab's reports call the do-nothing output beside each model (the masked image, the bicubic upsample, ...)
    baseline_name = "input"

    def __init__(self, image_shape: Sequence[int], seed: int = 0) -> None:
        require(len(image_shape) == 3 and all(is_integer(s) and s > 0 for s in image_shape), "data.image_shape",
                list(image_shape), "three positive integers [channels, height, width]")
        require(is_integer(seed), "task.seed", seed, "an integer")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed = int(seed)

    # its option in configs/task/, which messages name
    name = "task"

    # --- what a task defines ------------------------------------------------------------

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """The shape of one input (channels first)."""
        return self.image_shape

    @property
    def target_shape(self) -> tuple[int, int, int]:
        """The shape of one target: the data's, unless the task recolours it."""
        return self.image_shape

    def degrade(self, images: Tensor, keys: Tensor) -> Pair:
        """The (input, target) pair of clean images in [-1, 1], each image's draws seeded by its key."""
        raise NotImplementedError

    def baseline(self, source: Tensor) -> Tensor:
        """The do-nothing answer from the input alone, of the target's shape: what a model must beat."""
        return self.visible(source).expand(-1, self.target_shape[0], -1, -1)

    def visible(self, source: Tensor) -> Tensor:
        """The input as a picture (a mask channel left out), for grids."""
        return source

    def known(self, source: Tensor) -> tuple[Tensor, Tensor] | None:
        """(known pixels, hole mask: 1 where the target is unknown) for tasks that keep part of the image; else None."""
        return None

    # --- shared ---------------------------------------------------------------------------

    def pair(self, images: Tensor, keys: Tensor, training: bool = False) -> Pair:
        """`degrade`'s pair; in training, an unpaired task's targets come from other images of the batch."""
        pair = self.degrade(images, keys)
        if training and not self.paired and len(images) > 1:
            return Pair(pair.source, pair.target.roll(1, dims=0))
        return pair

    def seeded(self, seed: int) -> "Task":
        """This task with its draws seeded by `seed` (an evaluation's, whatever the run's seed was)."""
        judged = copy.copy(self)
        judged.seed = int(seed)
        return judged

    def fixed_pair(self, images: Tensor, seed: int) -> Pair:
        """The evaluation inputs of a split's first images (keys 0, 1, ...) under `seed`, whatever the run's seed:
        every family and checkpoint judged with one seed is judged on the same inputs."""
        return self.seeded(seed).degrade(images, torch.arange(len(images), device=images.device))

    def per_image(self, keys: Tensor, draw: Callable[[torch.Generator], Tensor], device: torch.device) -> Tensor:
        """draw(generator) for each image, from a CPU generator seeded by (task.seed, key), stacked on `device`."""
        drawn = [draw(torch.Generator().manual_seed((self.seed * _MIX + int(key)) % 2**63)) for key in keys.tolist()]
        return torch.stack(drawn).to(device)

    def check_channels(self, wanted: int, why: str, fix: str) -> None:
        if self.image_shape[0] != wanted:
            raise ConfigError(f"task={self.name} {why}, but data.image_shape has {self.image_shape[0]} channel(s): {fix}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_shape={list(self.image_shape)}, seed={self.seed})"
