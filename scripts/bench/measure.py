"""Paired, interleaved measurements and their arithmetic.

Two ways of training are timed step by step, alternating (a Pair), so a machine whose speed
drifts within seconds moves both sides of their ratio alike. Each repeat gives one ratio; the
report shows their median and range.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from .clock import synchronized_time


@dataclass
class Pair:
    """Two ways of training timed step by step, interleaved: seconds each took over `batches` steps."""

    first_seconds: float
    second_seconds: float
    batches: int
    warmup_seconds: float = 0.0  # genlab runs: genlab's own time for its warm-up batches

    def speed_ratio(self) -> float:
        """Images/s of the first way over images/s of the second."""
        return self.second_seconds / self.first_seconds


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds one step took, its queued device work included."""
    start = synchronized_time(device)
    step()
    return synchronized_time(device) - start


def plain_against_loader(plain: Callable[[], None], loader: Callable[[], None], args: argparse.Namespace, device: torch.device) -> Pair:
    """The plain loop fed from the device against the same loop fed by a DataLoader, steps alternating."""
    for _ in range(args.warmup):
        plain()
        loader()
    seconds = [0.0, 0.0]
    for _ in range(args.batches):
        seconds[0] += timed(plain, device)
        seconds[1] += timed(loader, device)
    return Pair(*seconds, args.batches)


def repeat_ratios(runs: dict[str, list[Pair]]) -> dict[str, list[float]]:
    """Each reported ratio, once per repeat; a speed option's against genlab without it, both
    measured by their plain-loop yardstick."""
    ratios = {
        "genlab/plain": [pair.speed_ratio() for pair in runs["genlab"]],
        "plain/DataLoader": [pair.speed_ratio() for pair in runs["plain/DataLoader"]],
    }
    for run in runs:
        if run.startswith("genlab+"):
            ratios[run.partition("+")[2]] = [
                with_option.speed_ratio() / without.speed_ratio() for with_option, without in zip(runs[run], runs["genlab"])
            ]
    return ratios


def extra_step_milliseconds(pairs: list[Pair]) -> list[float]:
    """How much longer a genlab step took than the plain one beside it, per repeat."""
    return [1000 * (pair.first_seconds - pair.second_seconds) / pair.batches for pair in pairs]


def spread(values: list[float], digits: int = 2) -> str:
    """The median, and the range when there are several values: `1.02 (0.97-1.06)`."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
