"""A split left on disk: batches read from the memory-mapped cache by worker processes, for data sets that do
not fit the device (or `data.in_memory=false`).

The order is the in-memory loader's (the same shuffle of the same split, the same DDP shard, the same resume
point): only where a batch's bytes come from differs, so both paths give bit-identical batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from genlab.data.datamodule import DeviceBatchLoader
from genlab.data.sources import LabeledImages


@dataclass
class MappedImages:
    """The split's `rows` of the uint8 array in the .npy file at `path`, with their `labels`; nothing is read until a
    batch asks for it. `subset` and `to` behave as LabeledImages' do (`to` reads the rows into memory)."""

    path: Path
    rows: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(np.load(self.path, mmap_mode="r").shape[1:])

    @property
    def images(self) -> Tensor:
        """Every image of the split, read into memory (what code written for LabeledImages reads)."""
        return self.read()

    def digest(self) -> str:
        """Names these images without reading them: the cache folder (named by its content and preprocessing) and
        the rows and labels of the split."""
        import hashlib

        digest = hashlib.sha256(str(self.path.resolve().parent).encode())
        digest.update(self.rows.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()

    def subset(self, index: Tensor) -> "MappedImages":
        return MappedImages(self.path, self.rows[index], self.labels[index])

    def read(self, index: Tensor | np.ndarray | None = None) -> Tensor:
        """The uint8 images of these positions of the split (all of it for None), read from disk."""
        rows = self.rows.numpy() if index is None else self.rows.numpy()[np.asarray(index)]
        return torch.from_numpy(read_rows(np.load(self.path, mmap_mode="r"), rows))

    def to(self, device: torch.device | str) -> LabeledImages:
        return LabeledImages(self.read().to(device), self.labels.to(device))


def read_rows(array: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """array[rows], reading the file in ascending order (what a disk and the page cache are quick at), `chunk`
    rows at a time: a whole split read at once would pass through a second copy of itself."""
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
    for start in range(0, len(rows), chunk):
        part = order[start:start + chunk]
        out[part] = array[rows[part]]
    return out


class BatchReads(Dataset):
    """Item i: the uint8 images and labels of batch i (`batches[i]`: positions in the split). The file is mapped
    for each batch and unmapped after it: a worker holds one batch, not every page of the file it ever read
    (which would count as its own memory until the kernel reclaimed it)."""

    def __init__(self, data: MappedImages, batches: list[np.ndarray]) -> None:
        self.path, self.rows, self.labels, self.batches = data.path, data.rows.numpy(), data.labels, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        index = self.batches[i]
        mapped = np.load(self.path, mmap_mode="r")
        try:
            images = read_rows(mapped, self.rows[index])
        finally:
            mapped._mmap.close()  # np.memmap keeps its map until collected: unmap now
        return torch.from_numpy(images), self.labels[torch.from_numpy(index)]


class StreamingBatchLoader(DeviceBatchLoader):
    """DeviceBatchLoader over a MappedImages split: `workers` processes read the next batches while the device
    trains on this one (pinned, copied without blocking, on a GPU)."""

    def __init__(self, data: MappedImages, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, task=None, device: torch.device | str = "cpu",
                 workers: int = 2) -> None:
        super().__init__(data, batch_size, shuffle, seed, drop_last, rank, world_size, task)  # type: ignore[arg-type]
        self.device, self.workers = torch.device(device), workers

    def read_batches(self, shard: Tensor, skip: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        starts = range(skip * self.batch_size, len(self) * self.batch_size, self.batch_size)
        batches = [shard[start:start + self.batch_size].numpy() for start in starts]
        loader = DataLoader(BatchReads(self.data, batches), batch_size=None, shuffle=False, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None)
        for index, (images, labels) in zip(batches, loader):
            yield (torch.from_numpy(index).to(self.device), images.to(self.device, non_blocking=True),
                   labels.to(self.device, non_blocking=True))
