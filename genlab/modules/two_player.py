"""The loop of a two-player game (every GAN family): a critic step on every batch, a generator step after
every `n_critic`-th, one fake batch for both players (as the DCGAN reference code).

Manual optimization, Lightning's GAN recipe: `toggle_optimizer` keeps each player's step from making
gradients for the other. The math (losses, regularizers, augmentation) is the family's
(genlab/families/gan.py); this loop adds the order of the steps, their schedules, the EMA of the
generator, the non-finite guard, gradient clipping (`optimizer.clip_grad_norm`) and the logs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.families.gan import GAN
from genlab.modules.base import TrainingModule


class TwoPlayer(TrainingModule):
    family: GAN

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        self.last_g_loss: Tensor | None = None

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        gan = self.family
        real, labels = batch[0], gan.condition_of(batch)  # class labels, or an image-to-image family's input
        opt_g, opt_d = self.optimizers()
        # counted across epochs (and checkpoints), so every n_critic-th critic step is followed by
        # a generator step even when an epoch's batch count is not a multiple of n_critic
        self.progress.critic_steps += 1
        step = self.progress.critic_steps
        generator_turn = gan.is_generator_turn(step)
        # one fake batch serves both players; it keeps its graph to the generator only on its turn
        with torch.set_grad_enabled(generator_turn):
            real, fake = gan.augmented(real, gan.generate(len(real), labels))

        self.toggle_optimizer(opt_d)
        d_loss, logs = gan.critic_loss(real, fake, labels, step)
        if self.finite("train/d_loss", d_loss):
            self.take_step(opt_d, d_loss, index=1)
            gan.after_critic_step()
        self.untoggle_optimizer(opt_d)
        logs.update(gan.observe(logs["d_real_sign"], len(real), step, self.reduce_sum if self._trainer else None))

        if generator_turn:
            self.toggle_optimizer(opt_g)
            g_loss, generator_logs = gan.generator_loss(real, fake, labels)
            logs.update(generator_logs)
            if self.finite("train/g_loss", g_loss):
                self.take_step(opt_g, g_loss, index=0)
                self.update_ema()
            self.untoggle_optimizer(opt_g)
            self.progress.generator_steps += 1
            self.last_g_loss = g_loss.detach()

        if self.logs_this_step:
            losses = {"d_loss": logs.pop("d_loss")}
            if self.last_g_loss is not None:  # the latest generator step's: it need not fall on a logging step
                losses["g_loss"] = self.last_g_loss
            self.log_dict({f"train/{name}": value for name, value in losses.items()}, prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in logs.items()})

    def take_step(self, optimizer: Any, loss: Tensor, index: int) -> None:
        """Backward, clip (optimizer.clip_grad_norm), step optimizer `index` and, if it counts updates, its schedule."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.clip_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        if self.scheduler_interval == "step" and self.manual_schedulers():
            self.manual_schedulers()[index].step()

    def reduce_sum(self, values: Tensor) -> Tensor:
        """The sum over every DDP process (ADA's r_t: every rank takes the same step)."""
        return self.trainer.strategy.reduce(values, reduce_op="sum")

    def manual_schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        return schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []

    def on_train_epoch_end(self) -> None:
        # manual optimization steps the epoch schedules here, once per epoch (the per-update ones in take_step)
        if self.scheduler_interval == "epoch":
            for scheduler in self.manual_schedulers():
                scheduler.step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logs = self.family.validation_terms(batch[0], self.family.condition_of(batch))
        self.log_dict({f"val/{name}": value for name, value in logs.items()}, sync_dist=True)
