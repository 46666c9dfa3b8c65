"""SIGINT (Ctrl-C) or SIGTERM (a scheduler's pre-emption): finish the batch, save, stop cleanly.

Under DDP a cluster's scheduler signals every rank, not necessarily at the same batch: the ranks
agree after each batch whether any of them was signalled, so all stop after the same batch, write
one checkpoint together and exit. On SLURM, Lightning's own requeue (SIGUSR1, `#SBATCH
--signal=SIGUSR1@90`) saves and resubmits the job; README's "Multi-GPU and clusters" says how.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl

from genlab.errors import TrainingInterrupted
from genlab.run.shell import command_line, hydra_override


class SignalLatch:
    """Notes the first of `signals` in `received` for the owner to act on when it can; a second one
    raises KeyboardInterrupt at once. Shared by training (GracefulInterrupt) and the Optuna search loop."""

    def __init__(self, signals: tuple[str, ...] = ("SIGINT", "SIGTERM")) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    saving = False  # True while the checkpoint of the first signal is written

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and not self.saving:
            raise KeyboardInterrupt
        self.received = self.received or signum

    def _install(self) -> None:
        """Handlers only from the main thread (Python's rule); elsewhere the signals keep theirs."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.signals}

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


class GracefulInterrupt(SignalLatch, pl.Callback):
    """Turns the first SIGINT/SIGTERM into a checkpoint at the next batch boundary and a clean exit.

    A second signal while the first is pending falls back to an immediate KeyboardInterrupt.
    """

    def __init__(self, dirpath: str | Path, filename: str = "interrupted.ckpt", signals: tuple[str, ...] = ("SIGINT", "SIGTERM")) -> None:
        super().__init__(signals)
        self.dirpath, self.filename = Path(dirpath), filename
        self.child_timeout = 120.0  # seconds rank 0 waits for the ranks it launched to exit

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        signalled = self.received is not None
        if trainer.world_size > 1:  # one small all-reduce per batch: every rank stops after the same one
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if not signalled:
            return
        signum = self.received if self.received is not None else signal.SIGTERM
        path = self.dirpath / self.filename
        self.saving = True  # a second signal now waits for the write: the file is whole, or the earlier one stays
        try:
            trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes the file
        finally:
            self.saving = False
        if not trainer.is_global_zero:
            # rank 0 alone reports and sets the exit code; a non-zero exit here would make Lightning's
            # child-process observer kill rank 0 before it has finished
            raise SystemExit(0)
        for child in getattr(trainer.strategy.launcher, "procs", []):  # ranks this process launched
            child.wait(timeout=self.child_timeout)
        name = signal.Signals(signum).name
        resume = command_line(["genlab", "train", hydra_override("ckpt_path", path)])
        raise TrainingInterrupted(
            f"{name} received: stopped at step {trainer.global_step} (epoch {trainer.current_epoch}) and saved a"
            f" resumable checkpoint:\n  {path}\nresume with (the run's own settings are read from its folder):\n"
            f"  {resume}\n(add resume_in=same to go on in this run's folder, as one curve)",
            signum,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
