"""What a NaN or infinite loss does (`on_nonfinite`): stop training before that step touches the weights, or skip it.

Under DDP every rank decides together: a step is taken only where every rank's loss is finite. A rank that
skipped a backward alone would leave the others waiting in its gradient all-reduce (or pairing theirs with its
next one), and one that stopped alone would leave them waiting for ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genlab.errors import DivergenceError, require

if TYPE_CHECKING:
    import pytorch_lightning as pl

POLICIES = ("stop", "skip")


def finite_everywhere(loss: Tensor, trainer: pl.Trainer | None) -> bool:
    """Whether `loss` is finite on this process and, under DDP, on every other (one all-reduce of a flag)."""
    finite = bool(torch.isfinite(loss).all())
    if trainer is None or trainer.world_size < 2:
        return finite
    return bool(trainer.strategy.reduce_boolean_decision(finite, all=True))


class NonFiniteGuard:
    """`stop` raises a DivergenceError that names the step, the epoch and the checkpoints kept; `skip` lets the
    loop leave that optimizer step out."""

    def __init__(self, policy: str = "stop") -> None:
        require(policy in POLICIES, "on_nonfinite", policy, " or ".join(POLICIES))
        self.policy = policy

    def allows(self, name: str, loss: Tensor, trainer: pl.Trainer | None) -> bool:
        """True to take the step; False to skip it; raises to stop (the same answer on every DDP rank)."""
        if finite_everywhere(loss, trainer):
            return True
        if self.policy == "skip":
            return False
        where, step, epoch = "", "?", "?"
        if trainer is not None:
            step, epoch = trainer.global_step, trainer.current_epoch
            if trainer.checkpoint_callback is not None:
                where = f" Checkpoints written before it are intact in {trainer.checkpoint_callback.dirpath}."
        became = f"became {loss.item()}" if not torch.isfinite(loss).all() else "became non-finite on another DDP process"
        raise DivergenceError(
            f"{name} {became} at step {step} (epoch {epoch}): training diverged and was stopped"
            f" before that step changed the weights.{where} Try a lower optimizer.lr, or on_nonfinite=skip"
            " to skip such steps."
        )
