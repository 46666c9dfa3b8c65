"""The declared schema of `genlab export`'s config (configs/export.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.schema.rules import boolean, choice, device, integer, mapping, nullable, text
from genlab.schema.train import POSITIVE, Paths
from genlab.schema.walk import Schema, key, node


@dataclass
class Export(Schema):
    """The run to export, where to, and what the folder holds beside the weights."""

    task_name: str = key(text())
    ckpt_path: str = key(text())
    trust_run: bool = key(boolean())
    out: str = key(text())
    format: str = key(choice("safetensors", "onnx"))
    # the sample grid: 0 images writes none
    n: int = key(integer(0))
    nrow: int = key(POSITIVE)
    seed: int = key(integer())
    sampler: dict = key(nullable(mapping()))
    licence: str = key(nullable(text()))
    device: str = key(device())
    paths: Paths = node(Paths)
