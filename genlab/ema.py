"""An exponential moving average (EMA) of the network that makes images (Karras et al. 2018, 2019).

The averaged weights, ema_k = decay * ema_(k-1) + (1 - decay) * w_k after generator step k,
give smoother, better samples than the last iterate of a GAN's oscillating game. Configured by
`model.ema` (off while it or its decay is null):

    model:
      ema: {decay: 0.999, rampup: 0.05}     # on the command line: model.ema.decay=0.999

Two things make an average work on a short budget as well as on a long one:
- `rampup` (StyleGAN2's `ema_rampup`): the average's half-life is at most `rampup` times the
  updates so far, so after 300 updates it spans at most 15 of them, not the ~700 of decay 0.999.
  Without it, a short run's average is mostly its early, bad generator.
- `standing_statistics` (Brock et al. 2019, BigGAN): batch norm's running statistics belong to
  the weights that produced them. The averaged weights get their own, measured by running them
  in training mode on fresh noise before they make images (once per change of the average).

Built on torch's `AveragedModel` (a copy of the network whose parameters it averages, with an
update count in its state_dict), so the average is saved, restored and moved with the module.
"""

from __future__ import annotations

import contextlib
from types import MethodType
from typing import Any, Callable, Iterator, Mapping, Protocol

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from genlab.errors import ConfigError, is_integer, is_number, is_positive_integer, require

OPTIONS = ("decay", "warmup", "rampup", "standing_statistics", "standing_batch_size")


class Sampling(Protocol):
    """What `applied_to` reads of a family (genlab/families/base.py)."""

    training: bool

    def image_network(self) -> nn.Module: ...

    def standing_batches(self) -> Callable[[int], object]: ...

    def train(self, mode: bool = True) -> Any: ...


class ExponentialMovingAverage(nn.Module):
    """The average of `network`'s weights over its updates; its buffers (BatchNorm statistics) are copied.

    `warmup`: the first `warmup` updates copy the weights instead of averaging them, so that the
    random initial weights do not linger in the average for ~1/(1 - decay) steps (ema-pytorch's
    `update_after_step`).
    `rampup`: update t uses decay min(decay, 0.5 ** (1 / (rampup * t))), a half-life of at most
    rampup * t updates (StyleGAN2's ramp, counted in updates rather than images); null: none.
    `standing_statistics`: how many batches of fresh noise measure the averaged weights' batch
    norm statistics (0: keep the copied ones, which belong to the raw weights).
    """

    def __init__(
        self,
        network: nn.Module,
        decay: float = 0.999,
        warmup: int = 0,
        rampup: float | None = None,
        standing_statistics: int = 0,
        standing_batch_size: int = 64,
    ) -> None:
        super().__init__()
        require(is_number(decay) and 0 <= decay < 1, "model.ema.decay", decay, "a number in [0, 1), e.g. 0.999")
        require(is_integer(warmup) and warmup >= 0, "model.ema.warmup", warmup, "a whole number of generator steps >= 0")
        require(rampup is None or (is_number(rampup) and rampup > 0), "model.ema.rampup", rampup,
                "null or a positive number, e.g. 0.05 (half-life at most 5% of the updates so far)")
        require(is_integer(standing_statistics) and standing_statistics >= 0, "model.ema.standing_statistics",
                standing_statistics, "a whole number of noise batches >= 0 (0: copy the raw weights' statistics)")
        require(is_positive_integer(standing_batch_size), "model.ema.standing_batch_size", standing_batch_size,
                "a positive number of images, e.g. ${data.batch_size}")
        self.decay = float(decay)
        self.warmup = int(warmup)
        self.standing_batch_size = int(standing_batch_size)
        self.rampup = None if rampup is None else float(rampup)
        self.standing_statistics = int(standing_statistics)
        self._statistics_of_update: int | None = None  # which average the standing statistics were measured for
        # a copy made before speed.compile wraps the network, and never called: sampling swaps its
        # weights into the (possibly compiled) network itself, so nothing is compiled twice
        self.averaged = AveragedModel(network, use_buffers=False)
        self.averaged.requires_grad_(False)  # no optimizer and no DDP gradient reduction touch it
        self.averaged.update_parameters(network)  # ema_0 = w_0 (AveragedModel's first update copies)
        # the updates as a Python int, read from the saved count once after a load: AveragedModel's own
        # update reads its count on the host (two GPU syncs per generator step), and the ramp would read it a third time
        self._updates: int | None = 0
        self.register_load_state_dict_post_hook(ExponentialMovingAverage._loaded)

    @staticmethod
    def _loaded(module: nn.Module, incompatible: Any) -> None:
        assert isinstance(module, ExponentialMovingAverage)
        module._updates = None

    @property
    def updates(self) -> int:
        """How many updates the average has had since w_0."""
        if self._updates is None:
            self._updates = int(self.averaged.n_averaged.item()) - 1
        return self._updates

    def decay_at(self, update: int) -> float:
        """The decay that update number `update` (1, 2, ...) uses."""
        if update <= self.warmup:
            return 0.0
        if self.rampup is None:
            return self.decay
        return min(self.decay, 0.5 ** (1 / (self.rampup * update)))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Average in `network`'s current weights and copy its buffers: call after each of its optimizer steps (on
        every DDP rank alike). No device sync: the update's number is counted here, on the host."""
        update = self.updates + 1
        averaged = list(self.averaged.module.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in network.parameters()], 1 - self.decay_at(update))
        for mine, theirs in zip(self.averaged.module.buffers(), network.buffers(), strict=True):
            mine.copy_(theirs)
        self.averaged.n_averaged.add_(1)
        self._updates = update

    @contextlib.contextmanager
    def swapped_into(self, network: nn.Module, make_batch: Callable[[int], object] | None = None) -> Iterator[None]:
        """Run `network` with the averaged weights inside the block, its own weights restored after.

        `make_batch(n)` runs `network` once on n images' fresh noise: given, and `standing_statistics` set, the
        averaged weights' batch norm statistics are measured with it (when the average changed since).
        """
        pairs = list(zip(_tensors(network), _tensors(self.averaged.module), strict=True))
        _swap(pairs)
        try:
            if make_batch is not None and self.standing_statistics and self._statistics_of_update != self.updates:
                measure_batch_norm_statistics(network, lambda: make_batch(self.standing_batch_size), self.standing_statistics)
                self._statistics_of_update = self.updates
            yield
        finally:
            _swap(pairs)


    @contextlib.contextmanager
    def applied_to(self, family: Sampling) -> Iterator[None]:
        """Inside the block `family` samples with the averaged weights, in eval mode (its standing batch norm
        statistics measured first, when set); its own weights and mode are restored after."""
        was_training = family.training
        family.train(False)
        try:
            with self.swapped_into(family.image_network(), family.standing_batches()):
                yield
        finally:
            family.train(was_training)


@torch.no_grad()
def measure_batch_norm_statistics(network: nn.Module, make_batch: Callable[[], object], batches: int) -> None:
    """Replace `network`'s batch norm running statistics by their plain mean over `batches` calls of `make_batch`."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    states = [(m, m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an exponential one
        m.train()
    try:
        with local_batch_norm(norms):
            for _ in range(batches):
                make_batch()
    finally:
        for m, momentum, training in states:
            m.momentum = momentum
            m.train(training)


@contextlib.contextmanager
def local_batch_norm(norms: list[nn.Module]) -> Iterator[None]:
    """Inside the block, SyncBatchNorm layers (trainer.sync_batchnorm under DDP) normalise with this process's batch
    alone, as plain batch norm does. Standing statistics are measured on noise that every rank draws alike, by
    whichever rank samples: rank 0 alone for the sample grid, where SyncBatchNorm would wait for ever for the
    others' batches."""
    synced = [m for m in norms if isinstance(m, nn.SyncBatchNorm)]
    for m in synced:
        m.forward = MethodType(nn.modules.batchnorm._BatchNorm.forward, m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in synced:
            del m.forward


def _tensors(network: nn.Module) -> list[Tensor]:
    return [*network.parameters(), *network.buffers()]


@torch.no_grad()
def _swap(pairs: list[tuple[Tensor, Tensor]]) -> None:
    for a, b in pairs:
        held = a.detach().clone()
        a.detach().copy_(b)
        b.detach().copy_(held)


def build_ema(network: nn.Module, options: Mapping[str, Any] | None) -> ExponentialMovingAverage | None:
    """The `model.ema` node as an average of `network`, or None when it (or its decay) is null. Its `posthoc` node
    is EDM2's post-hoc averages' (genlab/posthoc_ema.py), built apart."""
    if options is None or (isinstance(options, Mapping) and options.get("decay") is None):
        return None
    if not isinstance(options, Mapping):
        raise ConfigError(f"model.ema must be null or a mapping like {{decay: 0.999, warmup: 100}}, got {options!r}")
    options = {name: value for name, value in options.items() if name != "posthoc"}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model.ema.{unknown[0]} is not an EMA option; the options are: {', '.join(OPTIONS)}")
    return ExponentialMovingAverage(network, **options)
