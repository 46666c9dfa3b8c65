"""An exponential moving average (EMA) of the network that makes images (Karras et al. 2018, 2019).

The averaged weights, ema_k = decay * ema_(k-1) + (1 - decay) * w_k after generator step k,
give smoother, better samples than the last iterate of a GAN's oscillating game. Configured by
`model.ema` (off while it or its decay is null):

    model:
      ema: {decay: 0.999, warmup: 100}     # on the command line: model.ema.decay=0.999

Built on torch's `AveragedModel` (a copy of the network whose parameters it averages, with an
update count in its state_dict), so the average is saved, restored and moved with the module.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from genlab.errors import ConfigError, is_integer, is_number, require


class ExponentialMovingAverage(nn.Module):
    """The average of `network`'s weights over its updates; its buffers (BatchNorm statistics) are copied.

    `warmup`: the first `warmup` updates copy the weights instead of averaging them, so that the
    random initial weights do not linger in the average for ~1/(1 - decay) steps (ema-pytorch's
    `update_after_step`).
    """

    def __init__(self, network: nn.Module, decay: float = 0.999, warmup: int = 0) -> None:
        super().__init__()
        require(is_number(decay) and 0 <= decay < 1, "model.ema.decay", decay, "a number in [0, 1), e.g. 0.999")
        require(is_integer(warmup) and warmup >= 0, "model.ema.warmup", warmup, "a whole number of generator steps >= 0")
        self.decay = float(decay)
        self.warmup = int(warmup)
        # a copy made before speed.compile wraps the network, and never called: sampling swaps its
        # weights into the (possibly compiled) network itself, so nothing is compiled twice
        self.averaged = AveragedModel(network, multi_avg_fn=self._average, use_buffers=False)
        self.averaged.requires_grad_(False)  # no optimizer and no DDP gradient reduction touch it
        self.averaged.update_parameters(network)  # ema_0 = w_0 (AveragedModel's first update copies)

    @property
    def updates(self) -> int:
        """How many updates the average has had since w_0."""
        return int(self.averaged.n_averaged.item()) - 1

    @torch.no_grad()
    def _average(self, averaged: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        # n_averaged - 1 updates came before this one (read, a device sync, only while a warm-up is set)
        decay = 0.0 if self.warmup and int(n_averaged.item()) <= self.warmup else self.decay
        torch._foreach_lerp_(averaged, current, 1 - decay)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Average in `network`'s current weights: call after each of its optimizer steps (on every DDP rank alike)."""
        self.averaged.update_parameters(network)

    @contextlib.contextmanager
    def swapped_into(self, network: nn.Module) -> Iterator[None]:
        """Run `network` with the averaged weights inside the block, its own weights restored after."""
        pairs = list(zip(_tensors(network), _tensors(self.averaged.module), strict=True))
        _swap(pairs)
        try:
            yield
        finally:
            _swap(pairs)


def _tensors(network: nn.Module) -> list[Tensor]:
    return [*network.parameters(), *network.buffers()]


@torch.no_grad()
def _swap(pairs: list[tuple[Tensor, Tensor]]) -> None:
    for a, b in pairs:
        held = a.detach().clone()
        a.detach().copy_(b)
        b.detach().copy_(held)


def build_ema(network: nn.Module, options: Mapping[str, Any] | None) -> ExponentialMovingAverage | None:
    """The `model.ema` node as an average of `network`, or None when it (or its decay) is null."""
    if options is None or (isinstance(options, Mapping) and options.get("decay") is None):
        return None
    if not isinstance(options, Mapping):
        raise ConfigError(f"model.ema must be null or a mapping like {{decay: 0.999, warmup: 100}}, got {options!r}")
    unknown = sorted(set(options) - {"decay", "warmup"})
    if unknown:
        raise ConfigError(f"model.ema.{unknown[0]} is not an EMA option; the options are: decay, warmup")
    return ExponentialMovingAverage(network, **options)
