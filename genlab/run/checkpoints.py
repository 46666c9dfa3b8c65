"""Checkpoints that survive crashes and cannot run code: atomic writes, tensor-only loading.

A checkpoint is written to a temporary file beside its target and renamed over it, so a crash
mid-write leaves the previous file intact. Loading uses `torch.load(weights_only=True)`, which
unpickles only tensors and plain containers: a file crafted to run code on load is refused.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from genlab.errors import GenlabError
from genlab.run.atomic import atomic_write


class UnsafeCheckpointError(GenlabError):
    """A checkpoint holds Python objects beyond tensors and plain containers."""


class CheckpointReadError(GenlabError):
    """A checkpoint is missing, truncated or not a checkpoint at all."""


# torch.save writes a zip archive (b"PK\x03\x04"); older torch and plain pickles start with PROTO (0x80)
CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with tensors and plain containers only, with errors that name the file.

    Whatever goes wrong while reading (torch's tensors-only unpickler fails on a text file with a
    bare `KeyError: 101`) becomes one CheckpointReadError or UnsafeCheckpointError naming the file.
    """
    path = Path(path).expanduser()
    check_looks_like_a_checkpoint(path)
    try:
        with warnings.catch_warnings():
            # a pickle of another protocol is refused below, with a clearer message than this warning
            warnings.filterwarnings("ignore", message=r"Detected pickle protocol \d+ in the checkpoint")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = reason_of(error)
        if "weights_only" in str(error):  # torch's tensors-only loader refused what it found
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it is not a tensors-only checkpoint ({reason}), and unpickling it in full"
                " could run arbitrary code. Only load checkpoints genlab wrote, or that you trust and have converted."
            ) from error
        raise CheckpointReadError(f"{path} is truncated or not a checkpoint ({reason})") from error
    except Exception as error:
        raise CheckpointReadError(f"{path} is truncated or not a checkpoint ({reason_of(error)})") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointReadError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint (a dict)")
    return checkpoint


def check_looks_like_a_checkpoint(path: Path) -> None:
    """Refuse a missing file, a folder, an empty file or one that does not begin as torch.save begins,
    before torch's unpickler reads it and fails with an error that does not say what is wrong."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointReadError(f"checkpoint {path} {what}: check ckpt_path")
    with open(path, "rb") as stream:
        head = stream.read(12)
    if not head:
        raise CheckpointReadError(f"checkpoint {path} is empty (0 bytes): it is not a checkpoint")
    if not head.startswith(CHECKPOINT_STARTS):
        raise CheckpointReadError(
            f"{path} is not a checkpoint: it begins with {head!r}, where torch.save writes a zip archive (or a pickle)"
        )


def reason_of(error: BaseException) -> str:
    """A library error in one short line: its telling line, cut at the first full stop.

    torch's tensors-only loader opens with a paragraph about its defaults and ends with a link to
    its docs; the reason (`Unsupported operand 149`, `... unsupported GLOBAL posix.system ...`) lies
    in between. A bare KeyError or EOFError keeps its type name, which says more than `101`.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Check the documentation")] or lines
    if not lines:
        return type(error).__name__
    line = lines[-1].split(". ")[0].rstrip(".")
    return line if isinstance(error, pickle.UnpicklingError) else f"{type(error).__name__}: {line}"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through `atomic_write`: a crash mid-save leaves the previous checkpoint whole."""
    atomic_write(path, lambda stream: torch.save(obj, stream))


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic saves and tensor-only loads (trainer.plugins)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location or "cpu")
