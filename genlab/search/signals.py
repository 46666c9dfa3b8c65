"""What keeps the search loop honest about its trials while they run: a signal between trials stops
it after the running batch (StopOnSignal), and a heartbeat per running trial lets the next command
on the study know a trial whose process died (Heartbeat)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import optuna

from genlab.callbacks.interrupt import SignalLatch

log = logging.getLogger("genlab")


class StopOnSignal(SignalLatch):
    """SIGINT/SIGTERM between trials: finish what runs, ask for no more (a second signal stops at once).

    During training genlab's GracefulInterrupt takes the signal instead and checkpoints the trial.
    """

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        log.warning("%s received: no new trials; the running ones finish", signal.Signals(signum).name)

    def __enter__(self) -> "StopOnSignal":
        self._install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()


class Heartbeat:
    """Records a heartbeat for each running trial (database storages), so that a trial whose process
    died is known as stale after the storage's grace period and run again by the next command on the
    study. A journal storage has no heartbeats: there a dead trial stays RUNNING (docs/search.md)."""

    def __init__(self, storage: Any, interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.interval) and isinstance(self.storage, optuna.storages.RDBStorage)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in list(self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as error:  # the storage is away for a moment: the next beat tries again
                    log.warning("heartbeat of trial id %d not recorded: %s", trial_id, error)

    def __enter__(self) -> "Heartbeat":
        if self.enabled:
            self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()

    def add(self, trial_id: int) -> None:
        if self.enabled:
            self.storage.record_heartbeat(trial_id)
            self.trial_ids.add(trial_id)
