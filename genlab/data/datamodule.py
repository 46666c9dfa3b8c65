"""A LightningDataModule that keeps a whole data set as one uint8 tensor on the training device.

Image data sets for generative models are small (60k MNIST digits are 47 MB), so the
per-item `__getitem__` + collate path of a DataLoader is pure overhead: here a batch is
one `index_select` on the device and the scaling to [-1, 1] happens there too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

from genlab.data.sources import LabeledImages
from genlab.errors import ConfigError, is_integer, is_positive_integer, require
from genlab.tasks.base import Task


class ImageSource(Protocol):
    splits: tuple[str, ...]

    def load(self, split: str) -> LabeledImages: ...


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of a tanh generator."""
    return images.float().div_(127.5).sub_(1.0)


class EpochShuffle:
    """A per-epoch permutation seeded by (seed, epoch), so a resumed run sees the same order.

    Lightning calls `set_epoch` on a loader's `sampler` before every training epoch.
    """

    def __init__(self, size: int, seed: int, shuffle: bool) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)


class DeviceBatchLoader:
    """Iterates (images in [-1, 1], labels) batches sliced from tensors already on the device.

    Under DDP each rank takes every `world_size`-th index of the shared permutation, so the
    ranks see disjoint shards of equal length.

    With an image-to-image `task` a batch is (target, labels, input): the task degrades each image with draws
    seeded by its key, its index in the split (and in training the epoch: new masks and noise each epoch), so
    an image's pair does not depend on the batch it sits in, the number of processes or a resume.

    Resumable (Lightning's `state_dict`/`load_state_dict` protocol): a checkpoint written in the
    middle of an epoch records the epoch and how many batches of it were handed out, and the
    resumed run goes on with the next batch of the same permutation, so it trains on exactly the
    batches the uninterrupted run would have.
    """

    def __init__(
        self,
        data: LabeledImages,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        task: Task | None = None,
    ) -> None:
        self.data, self.batch_size, self.drop_last, self.task = data, batch_size, drop_last, task
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochShuffle(len(data), seed, shuffle)
        self.batch_sampler = None  # read by Lightning, which treats any loader like a DataLoader
        self.batches_handed_out = 0  # in the current pass
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches) from a checkpoint

    def _shard_size(self) -> int:
        return len(self.data) // self.world_size

    def __len__(self) -> int:
        full, rest = divmod(self._shard_size(), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self.batches_handed_out}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (state["epoch"], state["batches"])

    def read_batches(self, shard: Tensor, skip: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(positions in the split, uint8 images, labels) of each batch of `shard` after the first `skip`, on the device."""
        device = self.data.images.device
        shard = shard.to(device)
        for start in range(skip * self.batch_size, len(self) * self.batch_size, self.batch_size):
            index = shard[start : start + self.batch_size]
            yield index, self.data.images.index_select(0, index), self.data.labels.index_select(0, index)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # a generator: this runs at the first batch, after Lightning has set the sampler's epoch
        skip = 0
        if self._resume_at is not None:
            epoch, batches = self._resume_at
            self._resume_at = None
            skip = batches if epoch == self.sampler.epoch else 0  # a checkpoint from an epoch's end skips nothing
        self.batches_handed_out = skip
        shard = self.sampler.order()[self.rank :: self.world_size][: self._shard_size()]
        for index, images, labels in self.read_batches(shard, skip):
            self.batches_handed_out += 1
            images = to_signed_unit(images)
            if self.task is None:
                yield images, labels
            else:
                # the training split's keys change with the epoch (fresh degradations), held-out splits' never
                keys = index + ((self.sampler.epoch + 1) << 32 if self.sampler.shuffle else 0)
                pair = self.task.pair(images, keys, training=self.sampler.shuffle)
                yield pair.target, labels, pair.source


class ImageDataModule(pl.LightningDataModule):
    """Train/val/test splits of one data set, held in memory and batched on the device.

    `source` is a partial source class (`data.source`) built here with `data.root` and
    `data.download`, so those two keys sit at the top of every data config.

    The validation split is `val_size` images held out of the training split with a fixed
    seed, so every run of a comparison validates on the same images.

    `task` (the `task` config group, genlab/tasks/) turns each batch into an image-to-image pair.
    """

    def __init__(
        self,
        source: Callable[..., ImageSource],
        root: str | Path,
        image_shape: Sequence[int],
        num_classes: int,
        batch_size: int = 64,
        val_size: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        download: bool = False,
        name: str | None = None,
        task: Task | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        require(is_positive_integer(batch_size), "data.batch_size", batch_size, "a positive integer")
        require(is_integer(val_size) and val_size >= 0, "data.val_size", val_size, "an integer >= 0")
        self.source = source(root=root, download=download)
        self.name = name or type(self.source).__name__.lower()  # names caches and reports
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.batch_size, self.val_size, self.seed, self.drop_last = batch_size, val_size, seed, drop_last
        self.splits: dict[str, LabeledImages] = {}
        self._on_device: dict[tuple[str, str], LabeledImages] = {}

    def _check_shape(self, data: LabeledImages, split: str) -> None:
        found = tuple(data.image_shape)
        if found != self.image_shape:
            raise ConfigError(
                f"data.image_shape is {list(self.image_shape)} but the {split} images of "
                f"{type(self.source).__name__} are {list(found)}: fix data.image_shape"
            )

    def _check_labels(self, data: LabeledImages, split: str) -> None:
        """Labels beyond data.num_classes would index past a conditional family's class embedding mid-training."""
        if len(data) and int(data.labels.max()) >= self.num_classes:
            raise ConfigError(
                f"data.num_classes={self.num_classes} but the {split} labels of {type(self.source).__name__} go up to"
                f" {int(data.labels.max())}: set data.num_classes={int(data.labels.max()) + 1}"
            )

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self.splits:
            full = self.source.load("train")
            self._check_shape(full, "train")
            if not 0 <= self.val_size < len(full):
                raise ConfigError(f"data.val_size={self.val_size} must lie in [0, {len(full)}) for this data set")
            self._check_labels(full, "train")
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.seed))
            self.splits["val"] = full.subset(order[: self.val_size])
            self.splits["train"] = full.subset(order[self.val_size :])
        if stage == "test":
            self.split("test")

    def check_training_batches(self, world_size: int = 1) -> None:
        """Before Lightning starts (and its sanity check runs): each process's share of the train split holds a
        whole batch, since drop_last would otherwise leave an epoch of no batch at all."""
        share = len(self.split("train")) // world_size
        if self.drop_last and share < self.batch_size:
            raise ConfigError(f"data.batch_size={self.batch_size} is larger than the train split per process"
                              f" ({share} images): lower data.batch_size")

    def split(self, name: str) -> LabeledImages:
        """One split, loaded on first use: train (without the held-out images), val, or test."""
        if name in ("train", "val"):
            self.setup("fit")
        elif name not in self.splits:
            self.splits[name] = self.source.load(name)
            self._check_shape(self.splits[name], name)
            self._check_labels(self.splits[name], name)
        return self.splits[name]

    def _split_on_device(self, split: str) -> LabeledImages:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        key = (split, str(device))
        if key not in self._on_device:
            self._on_device[key] = self.splits[split].to(device)
        return self._on_device[key]

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DeviceBatchLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        data = self._split_on_device(split)
        if len(data) // world < self.batch_size and drop_last:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {split} split per process "
                f"({len(data) // world} images): lower data.batch_size"
            )
        return DeviceBatchLoader(data, self.batch_size, shuffle, self.seed, drop_last, rank, world, self.task)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # The loaders slice batches on the training device already; Lightning's generic move would
        # walk every batch with apply_to_collection to find nothing to move.
        if all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> DeviceBatchLoader:
        return self._loader("train", shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DeviceBatchLoader | list:
        return self._loader("val", shuffle=False, drop_last=False) if self.val_size else []

    def test_dataloader(self) -> DeviceBatchLoader:
        return self._loader("test", shuffle=False, drop_last=False)
