"""`data=folder`: a folder of the user's images as a data set with train and test splits, like MNIST's."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from genlab.data.datamodule import ImageDataModule
from genlab.data.folder.cache import DecodedFolder, Preprocessing, decoded
from genlab.data.folder.decode import RESIZE_POLICIES
from genlab.data.folder.scan import list_folder
from genlab.data.sources import LabeledImages
from genlab.data.streaming import MappedImages, StreamingBatchLoader
from genlab.errors import ConfigError, is_integer, is_positive_integer, require
from genlab.tasks.base import Task

log = logging.getLogger("genlab")
# the seed of the train/test split: fixed, so that every run (whatever its data.seed) tests on the same images
SPLIT_SEED = 0


class ImageFolderSource:
    """The images under `root` (scan.py's layouts), decoded once (cache.py). A fixed, seeded `test_fraction` of
    them is the test split, the rest the train split (from which ImageDataModule holds out data.val_size)."""

    splits = ("train", "test")

    def __init__(self, root: str | Path, cache_dir: str | Path, image_size: int, channels: int, resize: str,
                 skip_bad: bool, min_per_class: int, test_fraction: float, download: bool = False) -> None:
        self.root, self.cache_dir = Path(str(root)).expanduser(), cache_dir
        self.preprocessing = Preprocessing(image_size, channels, resize, skip_bad)
        self.min_per_class, self.test_fraction = min_per_class, test_fraction
        self._decoded: DecodedFolder | None = None

    @property
    def name(self) -> str:
        return f"folder-{self.root.resolve().name}-{self.preprocessing.size}px"

    def decoded(self) -> DecodedFolder:
        if self._decoded is None:
            self._decoded = decoded(self.cache_dir, list_folder(self.root, self.min_per_class), self.preprocessing)
        return self._decoded

    def split_index(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(self.splits)}")
        count = len(self.decoded().labels)
        order = np.random.default_rng(SPLIT_SEED).permutation(count)
        n_test = int(round(count * self.test_fraction))
        return np.sort(order[:n_test] if split == "test" else order[n_test:])

    def load(self, split: str) -> MappedImages | LabeledImages:
        """The train split left on disk (the data module reads it into memory or streams it); the test split read."""
        folder, index = self.decoded(), self.split_index(split)
        mapped = MappedImages(folder.path / "images.npy", torch.from_numpy(index.astype(np.int64)),
                              torch.from_numpy(folder.labels[index].copy()))
        return mapped if split == "train" else mapped.to("cpu")

    def facts(self) -> dict[str, Any]:
        """What the run's summary records about the folder: its classes in label order, what was left out, where
        the decoded copy lies."""
        index = self.decoded().index
        return {"root": index["root"], "classes": index["classes"], "images_per_class": index["images_per_class"],
                "skipped_files": len(index["skipped"]), "cache": str(self.decoded().path),
                "preprocessing": index["preprocessing"]}


class FolderDataModule(ImageDataModule):
    """ImageDataModule over ImageFolderSource: `image_size`, `channels`, `resize`, `skip_bad`, `min_per_class` and
    `test_fraction` say how the folder becomes a data set; `image_shape` and `num_classes` (which the models read)
    must agree with them (configs/data/folder.yaml derives both)."""

    def __init__(
        self,
        root: str | Path,
        cache_dir: str | Path,
        image_size: int = 64,
        channels: int = 3,
        resize: str = "center_crop",
        skip_bad: bool = False,
        min_per_class: int = 1,
        test_fraction: float = 0.1,
        in_memory: bool | str = "auto",
        workers: int = 2,
        image_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        batch_size: int = 64,
        val_size: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        download: bool = False,
        name: str | None = None,
        task: Task | None = None,
    ) -> None:
        require(root is not None and str(root) not in ("", "???"), "data.root", root, "the folder of your images")
        require(is_positive_integer(image_size) and image_size >= 8, "data.image_size", image_size, "an integer >= 8")
        require(channels in (1, 3) and is_integer(channels), "data.channels", channels, "1 (grey) or 3 (RGB)")
        require(resize in RESIZE_POLICIES, "data.resize", resize, " or ".join(RESIZE_POLICIES))
        require(isinstance(skip_bad, bool), "data.skip_bad", skip_bad, "true or false")
        require(is_positive_integer(min_per_class), "data.min_per_class", min_per_class, "a positive integer")
        require(isinstance(test_fraction, (int, float)) and not isinstance(test_fraction, bool)
                and 0 <= test_fraction < 1, "data.test_fraction", test_fraction, "a share in [0, 1)")
        require(in_memory in (True, False, "auto"), "data.in_memory", in_memory, "auto, true or false")
        require(is_integer(workers) and workers >= 0, "data.workers", workers, "an integer >= 0 (0: read in this process)")
        self.in_memory, self.workers = in_memory, workers
        self.path_taken: str | None = None
        shape = (channels, image_size, image_size)
        if image_shape is not None and tuple(image_shape) != shape:
            raise ConfigError(f"data.image_shape={list(image_shape)} disagrees with data.channels={channels} and"
                              f" data.image_size={image_size}: leave data.image_shape as configs/data/folder.yaml sets it")
        source = partial(ImageFolderSource, cache_dir=cache_dir, image_size=image_size, channels=channels,
                         resize=resize, skip_bad=skip_bad, min_per_class=min_per_class, test_fraction=test_fraction)
        super().__init__(source, root, shape, num_classes or 1, batch_size, val_size, seed, drop_last, download,
                         name, task)
        if name is None:
            self.name = self.source.name

    def setup(self, stage: str | None = None) -> None:
        index = self.source.decoded().index
        found = len(index["classes"])
        if "train" not in self.splits:
            names = ", ".join(f"{i}={name}" for i, name in enumerate(index["classes"][:10]))
            log.info("data=folder: %d images of %s, %d class%s (%s%s), from %s", len(index["files"]), index["root"],
                     found, "" if found == 1 else "es", names, ", ..." if found > 10 else "", self.source.decoded().path)
        if found != self.num_classes:
            raise ConfigError(f"data.num_classes={self.num_classes} but data.root={self.source.root} holds {found}"
                              f" classes: leave data.num_classes as configs/data/folder.yaml sets it, or set it to {found}")
        super().setup(stage)
        if isinstance(self.splits.get("val"), MappedImages):  # small, and read by every validation
            self.splits["val"] = self.splits["val"].to("cpu")

    def streams(self, device: torch.device) -> bool:
        """Whether the train split is streamed from disk on `device`: `in_memory=false`, or `auto` and the decoded
        train split would take more than half of the device's free memory. Logged with the reason once."""
        train = self.split("train")
        size = len(train) * int(np.prod(self.image_shape))
        free = free_memory(device)
        stream = self.in_memory is False or (self.in_memory == "auto" and size > free / 2)
        why = ("data.in_memory=false" if self.in_memory is False else "data.in_memory=true" if self.in_memory is True
               else f"{size / 2**30:.2f} GiB of images {'exceeds' if stream else 'is within'} half of the"
                    f" {free / 2**30:.1f} GiB free on {device}")
        taken = f"streamed from {train.path} by {self.workers} worker processes" if stream else f"held in {device} memory"
        if self.path_taken != taken:
            log.info("data=folder: the train split is %s (%s)", taken, why)
            self.path_taken = taken
        return stream

    def _loader(self, split: str, shuffle: bool, drop_last: bool):
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if split != "train" or not self.streams(device):
            return super()._loader(split, shuffle, drop_last)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        return StreamingBatchLoader(self.split("train"), self.batch_size, shuffle, self.seed, drop_last, rank, world,
                                    self.task, device, self.workers)

    def facts(self) -> dict[str, Any]:
        return {**self.source.facts(), "train_split": self.path_taken}


def free_memory(device: torch.device) -> int:
    """Bytes free for data on `device`: the GPU's free memory, or the machine's available memory (which the
    kernel would otherwise use for the page cache), or less where this process's control group allows less."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        with open("/proc/meminfo") as info:
            available = next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        pass
    allowed = cgroup_room()
    return available if allowed is None else min(available, allowed)


def cgroup_room(membership: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes this process's memory control group has left (limit less usage), or None without a limit: a run
    confined by a container or a cgroup must stream a data set its limit cannot hold, whatever the machine has."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            folder, limit_file, usage_file = root / path.lstrip("/"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # cgroup v1
            folder = root / "memory" / path.lstrip("/")
            limit_file, usage_file = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        try:
            limit, usage = (folder / limit_file).read_text().strip(), int((folder / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2**60:
            return max(0, int(limit) - usage)
    return None
