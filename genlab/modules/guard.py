"""What a NaN or infinite loss does (`on_nonfinite`): stop training before that step touches the weights, or skip it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genlab.errors import DivergenceError, require

if TYPE_CHECKING:
    import pytorch_lightning as pl

POLICIES = ("stop", "skip")


class NonFiniteGuard:
    """`stop` raises a DivergenceError that names the step, the epoch and the checkpoints kept; `skip` lets the
    loop leave that optimizer step out."""

    def __init__(self, policy: str = "stop") -> None:
        require(policy in POLICIES, "on_nonfinite", policy, " or ".join(POLICIES))
        self.policy = policy

    def allows(self, name: str, loss: Tensor, trainer: pl.Trainer | None) -> bool:
        """True to take the step; False to skip it; raises to stop."""
        if torch.isfinite(loss).all():
            return True
        if self.policy == "skip":
            return False
        where, step, epoch = "", "?", "?"
        if trainer is not None:
            step, epoch = trainer.global_step, trainer.current_epoch
            if trainer.checkpoint_callback is not None:
                where = f" Checkpoints written before it are intact in {trainer.checkpoint_callback.dirpath}."
        raise DivergenceError(
            f"{name} became {loss.item()} at step {step} (epoch {epoch}): training diverged and was stopped"
            f" before that step changed the weights.{where} Try a lower optimizer.lr, or on_nonfinite=skip"
            " to skip such steps."
        )
