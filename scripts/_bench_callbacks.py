"""Clocks that scripts/benchmark.py puts into genlab's Trainer.

A module of its own, light to import, because `genlab train` loads it by name through a Hydra
override (`+callbacks.first_step._target_=_bench_callbacks.FirstStepClock`, scripts/ on
PYTHONPATH): importing the benchmark itself would add its imports to the start-up it measures.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

# FirstStepClock's lines on stdout start with this, so the benchmark can find them among the logs
MARK = "genlab-benchmark"


def synchronized_time(device: torch.device) -> float:
    """time.perf_counter() once the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class SteadyStateClock(pl.Callback):
    """Times `batches` training batches after `warmup` untimed ones, then stops the fit.

    Only the time inside epochs counts: epoch ends write checkpoints and sample grids, real
    costs but not per-batch throughput, and a plain loop has none to compare them with.
    """

    def __init__(self, warmup: int, batches: int) -> None:
        self.warmup, self.batches = warmup, batches
        self.finished = 0  # training batches ended, warm-up included
        self.timed = 0
        self.seconds = 0.0
        self.warmup_seconds = 0.0  # from the first batch's start to the warm-up's end (compilation happens here)
        self._started: float | None = None
        self._first_started: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._first_started is None:
            self._first_started = synchronized_time(pl_module.device)
        if self._started is None and self.finished >= self.warmup and self.timed < self.batches:
            self._started = synchronized_time(pl_module.device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.finished += 1
        if self.finished == self.warmup:
            self.warmup_seconds = synchronized_time(pl_module.device) - self._first_started
        if self._started is None:
            return
        self.timed += 1
        done = self.timed == self.batches
        if done or batch_idx == trainer.num_training_batches - 1:
            self.seconds += synchronized_time(pl_module.device) - self._started
            self._started = None
        if done:
            trainer.should_stop = True


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
