"""Checkpoints that survive crashes and cannot run code: atomic writes, tensor-only loading.

A checkpoint is written to a temporary file beside its target and renamed over it, so a crash
mid-write leaves the previous file intact. Loading uses `torch.load(weights_only=True)`, which
unpickles only tensors and plain containers: a file crafted to run code on load is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from genlab.errors import GenlabError


class UnsafeCheckpointError(GenlabError):
    """A checkpoint holds Python objects beyond tensors and plain containers."""


class CheckpointReadError(GenlabError):
    """A checkpoint is missing, truncated or not a checkpoint at all."""


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with tensors and plain containers only, with errors that name the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointReadError(f"checkpoint {path} does not exist: check ckpt_path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it holds Python objects beyond tensors and plain containers, and"
                " unpickling them could run arbitrary code. Only load checkpoints genlab wrote, or that you trust"
                f" and have converted. ({str(error).splitlines()[0]})"
            ) from error
        raise CheckpointReadError(f"{path} is not a readable checkpoint ({error})") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointReadError(f"{path} is truncated or not a checkpoint ({error})") from error


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic saves and tensor-only loads (trainer.plugins)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location or "cpu")
