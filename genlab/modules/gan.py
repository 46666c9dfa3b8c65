"""One two-player training loop for every GAN family; the family is a loss name plus options.

GAN, DCGAN, CGAN, WGAN, WGAN-GP, LSGAN, SN-GAN and RpGAN differ only in `loss`, `n_critic`, the
regularizers their YAML lists (WGAN's weight clipping, WGAN-GP's gradient penalty, R1 and R2; see
genlab/regularizers.py) and the nets. Any of them may average its generator (`model.ema`,
genlab/ema.py) and augment what the critic sees (`model.augment`, genlab/augment.py).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.augment import DiffAugment, check_augment
from genlab.errors import ConfigError, is_positive_integer, require
from genlab.modules.base import GenerativeModule, latent_vector
from genlab.objectives import adversarial_loss
from genlab.regularizers import Regularizer


class AdversarialModule(GenerativeModule):
    """Alternates critic and generator steps (manual optimization, Lightning's GAN recipe).

    Every batch takes one critic step; every `n_critic`-th critic step is followed by a
    generator step against the updated critic. `regularizers` (name -> object) add terms to the
    critic's loss and act after its steps.
    """

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        optimizer: Mapping[str, Any],
        latent_dim: int = 100,
        loss: str = "nonsaturating",
        n_critic: int = 1,
        regularizers: Mapping[str, Regularizer | None] | None = None,
        ema: Mapping[str, Any] | None = None,
        augment: DiffAugment | None = None,
        num_classes: int = 0,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, latent_vector(latent_dim), num_classes, on_nonfinite, speed)
        require(is_positive_integer(n_critic), "model.n_critic", n_critic, "a positive integer")
        if "generator" not in net or "discriminator" not in net:
            raise ConfigError(
                f"a GAN needs model.net.generator and model.net.discriminator, got {sorted(net)}:"
                " use model/net=dcgan or model/net=mlp"
            )
        self.automatic_optimization = False
        self.latent_dim = latent_dim
        self.generator = net["generator"]
        self.discriminator = net["discriminator"]
        self.objective = adversarial_loss(loss)
        self.n_critic = n_critic
        self.regularizers = {name: r for name, r in (regularizers or {}).items() if r is not None}
        for name, regularizer in self.regularizers.items():
            if not isinstance(regularizer, Regularizer):
                raise ConfigError(f"model.regularizers.{name} is a {type(regularizer).__name__}, not a genlab Regularizer")
        # counted across epochs (and checkpoints), so every n_critic-th critic step is followed by
        # a generator step even when an epoch's batch count is not a multiple of n_critic
        self.critic_steps = 0
        self.last_g_loss: Tensor | None = None
        # `model.augment`: what D sees of real and fake images, in both players' steps (genlab/augment.py)
        self.augment = check_augment(augment)
        self.attach_ema(ema)  # `model.ema`: an average of the generator, which samples then use
        self.save_hyperparameters(ignore=["net", "optimizer", "speed", "regularizers", "augment"])

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.generator(noise, labels)

    def configure_optimizers(self) -> Any:
        optimizers = [
            self._make_optimizer("generator", self.generator.parameters()),
            self._make_optimizer("discriminator", self.discriminator.parameters()),
        ]
        schedulers = self._schedulers_for(optimizers)
        return (optimizers, schedulers) if schedulers else optimizers

    def _labels(self, labels: Tensor) -> Tensor | None:
        return labels if self.conditional else None

    def critic_loss(
        self, real: Tensor, fake: Tensor, labels: Tensor | None, regularize: bool = True
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The discriminator's objective on a real and a fake batch, regularizer terms included; `fake` is detached."""
        fake = fake.detach()
        real_scores = self.discriminator(real, labels)
        fake_scores = self.discriminator(fake, labels)
        loss = self.objective.discriminator(real_scores, fake_scores)
        logs = {
            "d_loss": loss.detach(),
            "d_real": self.objective.readout(real_scores.detach()).mean(),
            "d_fake": self.objective.readout(fake_scores.detach()).mean(),
            # ADA's overfitting heuristic r_t: near 1 when D is sure of every real image
            "d_real_sign": real_scores.detach().sign().mean(),
        }
        if regularize:
            for name, regularizer in self.regularizers.items():
                term = regularizer.critic_term(self, real, fake, labels)
                if term is not None:
                    loss = loss + term.loss
                    logs[name] = term.logged
        return loss, logs

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, labels = batch[0], self._labels(batch[1])
        opt_g, opt_d = self.optimizers()
        self.critic_steps += 1
        generator_turn = self.critic_steps % self.n_critic == 0
        # One fake batch serves both players (as in the DCGAN reference code); it keeps its
        # graph to the generator only when the generator steps on this batch.
        with torch.set_grad_enabled(generator_turn):
            fake = self.generator(self.sample_noise(real.shape[0]), labels)
            if self.augment is not None:  # both players judge the same augmented batches
                real, fake = self.augment(real), self.augment(fake)

        self.toggle_optimizer(opt_d)
        d_loss, logs = self.critic_loss(real, fake, labels)
        if self.loss_is_finite("train/d_loss", d_loss):
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.step_schedule(1)
            for regularizer in self.regularizers.values():
                regularizer.after_critic_step(self)
        self.untoggle_optimizer(opt_d)
        if self.augment is not None:
            self.augment.observe(self, logs["d_real_sign"], real.shape[0])
            logs["augment_p"] = self.augment.p

        if generator_turn:
            self.toggle_optimizer(opt_g)
            fake_scores = self.discriminator(fake, labels)
            real_scores = None
            if self.objective.generator_sees_real:  # relativistic losses pair each fake with a real
                with torch.no_grad():
                    real_scores = self.discriminator(real, labels)
            g_loss = self.objective.generator_loss(fake_scores, real_scores)
            for name, regularizer in self.regularizers.items():
                term = regularizer.generator_term(self, fake, labels)
                if term is not None:
                    g_loss = g_loss + term.loss
                    logs[f"g_{name}"] = term.logged
            if self.loss_is_finite("train/g_loss", g_loss):
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                opt_g.step()
                self.step_schedule(0)
                self.update_ema()
            self.untoggle_optimizer(opt_g)
            self.generator_steps += 1
            self.last_g_loss = g_loss.detach()

        if self.logs_this_step:
            losses = {"d_loss": logs.pop("d_loss")}
            if self.last_g_loss is not None:  # the latest generator step's: it need not fall on a logging step
                losses["g_loss"] = self.last_g_loss
            self.log_dict({f"train/{name}": value for name, value in losses.items()}, prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in logs.items()})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["critic_steps"] = self.critic_steps
        if self.augment is not None:
            checkpoint["augment"] = self.augment.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.critic_steps = checkpoint.get("critic_steps", 0)
        if self.augment is not None and "augment" in checkpoint:
            self.augment.load_state_dict(checkpoint["augment"])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """D's verdict on held-out real images: a D(x) that drifts from the training D(x) means D overfits."""
        real, labels = batch[0], self._labels(batch[1])
        fake = self.generator(self.sample_noise(real.shape[0]), labels)
        _, logs = self.critic_loss(real, fake, labels, regularize=False)
        self.log_dict({f"val/{name}": value for name, value in logs.items()}, sync_dist=True)
