"""Speed options: how the networks run, never what they compute.

`speed.compile` runs every network through `torch.compile`; `speed.channels_last` stores the
convolution weights in NHWC order, the layout that oneDNN and cuDNN's tensor-core kernels prefer:
a convolution with NHWC weights runs in NHWC and hands NHWC maps on, and it converts its input
batch itself (converting the batches beforehand measured no faster). Mixed precision
(`trainer.precision`) and cuDNN autotuning (`trainer.benchmark`) are Lightning's own Trainer
arguments. docs/benchmarks.md has what each one measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError, require


@dataclass(frozen=True)
class SpeedOptions:
    """The `speed` config node: what `configs/train.yaml` documents, checked by name and type."""

    compile: bool = False
    # keyword arguments of torch.compile: mode, backend, dynamic, fullgraph, options
    compile_options: Mapping[str, Any] = field(default_factory=dict)
    channels_last: bool = False

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> SpeedOptions:
        options = {name: value for name, value in (options or {}).items() if value is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"speed.{unknown[0]} is not a speed option; the options are: {', '.join(sorted(known))}")
        for name in ("compile", "channels_last"):
            require(isinstance(options.get(name, False), bool), f"speed.{name}", options.get(name), "true or false")
        if not isinstance(options.get("compile_options", {}), Mapping):
            raise ConfigError("speed.compile_options must be a mapping of torch.compile arguments, e.g. {mode: max-autotune}")
        return cls(**options)


def apply_speed_options(networks: Iterable[nn.Module], options: SpeedOptions) -> None:
    """Convert the networks in place; their state_dict keys stay as they are, so checkpoints load either way."""
    for network in networks:
        if options.channels_last:
            network.to(memory_format=torch.channels_last)
        if options.compile:
            network.compile(**options.compile_options)


def eager(network: nn.Module) -> Callable[..., Tensor]:
    """The network's forward without torch.compile.

    For passes that are differentiated twice (WGAN-GP's gradient penalty): compiled graphs do
    not support double backward (pytorch/pytorch#91469).
    """
    return network.forward if getattr(network, "_compiled_call_impl", None) is not None else network
