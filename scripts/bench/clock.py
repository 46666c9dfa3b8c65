"""Clocks that scripts/benchmark.py puts into genlab's Trainer.

A module of its own, light to import, because `genlab train` loads it by name through a Hydra
override (`+callbacks.first_step._target_=bench.clock.FirstStepClock`, scripts/ on PYTHONPATH):
importing the benchmark itself would add its imports to the start-up it measures. bench/__init__.py
imports nothing, so the package adds only this module.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytorch_lightning as pl
import torch

# FirstStepClock's lines on stdout start with this, so the benchmark can find them among the logs
MARK = "genlab-benchmark"


def synchronized_time(device: torch.device) -> float:
    """time.perf_counter() once the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class InterleavedClock(pl.Callback):
    """Times genlab's training batches with a reference step (the plain loop's) after each one.

    Every timed batch is paired with the reference step taken right after it, so a machine that
    slows down or speeds up (by 15% from one second to the next on a shared host) moves both
    sides of the ratio alike. A batch's time runs from its start to the next batch's start, all
    of Lightning's per-batch work included, less the reference step in between. The `warmup`
    first batches are not timed, nor a batch whose interval crosses an epoch's end (checkpoints
    and sample grids are written there, work a plain loop has no counterpart for). The fit stops
    once `batches` are timed.
    """

    def __init__(self, warmup: int, batches: int, reference: Callable[[], None]) -> None:
        self.warmup, self.batches, self.reference = warmup, batches, reference
        self.timed = 0
        self.genlab_seconds = 0.0
        self.reference_seconds = 0.0
        self.warmup_seconds = 0.0  # genlab's own time for the warm-up batches (torch.compile compiles there)
        self._started = 0  # batches started so far
        self._first_start: float | None = None
        self._last_start = 0.0
        self._last_reference = 0.0
        self._references_so_far = 0.0
        self._time_last = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        now = synchronized_time(pl_module.device)
        if self._first_start is None:
            self._first_start = now
        if self._time_last and batch_idx > 0:  # batch_idx 0: the last interval held an epoch's end
            self.genlab_seconds += now - self._last_start - self._last_reference
            self.reference_seconds += self._last_reference
            self.timed += 1
            trainer.should_stop = self.timed == self.batches
        if self._started == self.warmup:
            self.warmup_seconds = now - self._first_start - self._references_so_far
        self._time_last = self._started >= self.warmup and self.timed < self.batches
        self._started += 1
        self._last_start = now

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        start = synchronized_time(pl_module.device)
        self.reference()
        self._last_reference = synchronized_time(pl_module.device) - start
        self._references_so_far += self._last_reference


class FirstStepClock(pl.Callback):
    """Prints the wall-clock time (time.time(), comparable across processes) when the first training batch starts and ends."""

    def __init__(self) -> None:
        self.printed = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self.printed:
            print(f"{MARK} first_batch_start {time.time():.6f}", flush=True)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.printed:
            synchronized_time(pl_module.device)
            print(f"{MARK} first_batch_end {time.time():.6f}", flush=True)
            self.printed = True
