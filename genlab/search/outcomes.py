"""How a trial can end besides completing, as exceptions light enough for the sweeper's process
(no torch): the pruning callback raises them inside a trial, the sweeper reads them from its jobs."""

from __future__ import annotations

import math

from genlab.errors import ConfigError, GenlabError


class TrialPruned(GenlabError):
    """The pruner stopped this trial; `genlab train` records it as `pruned` in summary.json."""

    def __init__(self, message: str, value: float = math.nan, metrics: dict[str, float] | None = None,
                 progress: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.value, self.metrics, self.progress = value, metrics or {}, progress or {}

    def __reduce__(self) -> tuple:  # crosses process boundaries with the parallel (joblib) launcher
        return (type(self), (str(self), self.value, self.metrics, self.progress))


class MetricNotLogged(ConfigError):
    """optimized_metric names a metric the run does not log: every trial would fail alike, so the search stops."""
