"""The loop of the families that minimise one loss (VAEs, DDPM, flow matching): a batch, its loss, one step.

Lightning's automatic optimization steps the one optimizer (and its schedule); this loop adds the
EMA's update after each step, the non-finite guard, gradient clipping (`optimizer.clip_grad_norm`)
and the logs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.families.base import OneLossFamily
from genlab.modules.base import TrainingModule


class OnePlayer(TrainingModule):
    family: OneLossFamily

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        terms = self.family.loss(batch[0], self.family.condition_of(batch))
        self.progress.generator_steps += 1  # one update of the family's whole network per batch
        if self.logs_this_step:
            self.log("train/loss", terms["loss"].detach(), prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in terms.items() if name != "loss"})
        # returning None makes Lightning skip this optimizer step
        return terms["loss"] if self.finite("train/loss", terms["loss"]) else None

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        terms = self.family.validation_terms(batch[0], self.family.condition_of(batch), batch_idx)
        self.log_dict({f"val/{name}": value for name, value in terms.items()}, sync_dist=True)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's step, then the EMA's update, inside the batch's step: a checkpoint that a callback writes at
        the batch's end (an interrupt, a timed or step checkpoint) then holds the average of the weights it holds,
        since a module's own on_train_batch_end runs after the callbacks' and a resumed run would miss that update."""
        super().optimizer_step(*args, **kwargs)
        self.update_ema()

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """trainer.gradient_clip_val when set, else optimizer.clip_grad_norm (Lightning unscales mixed-precision gradients first)."""
        if gradient_clip_val is None and self.clip_grad_norm:
            gradient_clip_val, gradient_clip_algorithm = self.clip_grad_norm, "norm"
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)
