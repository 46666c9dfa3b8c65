"""A GAN's math: the two players' losses on a real and a generated batch, for every GAN family.

GAN, DCGAN, CGAN, ACGAN, WGAN, WGAN-GP, LSGAN, SN-GAN and RpGAN differ only in `loss` (a name in
genlab.objectives.ADVERSARIAL_LOSSES), `n_critic`, the regularizers their YAML lists (WGAN's weight
clipping, WGAN-GP's gradient penalty, R1 and R2, ACGAN's class term; genlab/regularizers.py), what the
critic sees (`augment`: DiffAugment or ADA, genlab/augment.py) and the nets. One critic step per
batch, a generator step after every `n_critic`-th, as any loop takes them:

    gan = GAN(net={"generator": g, "discriminator": d}, loss="wasserstein", n_critic=5, regularizers=...)
    with torch.set_grad_enabled(gan.is_generator_turn(k)):  # critic step k: one fake batch serves both players
        real, fake = gan.augmented(real, gan.generate(len(real), labels))
    d_loss, logs = gan.critic_loss(real, fake, labels, step=k); ...; gan.after_critic_step()
    g_loss, logs = gan.generator_loss(real, fake, labels)   # on the generator's turn
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from genlab.augment import DiffAugment, check_augment
from genlab.errors import ConfigError, is_positive_integer, require
from genlab.families.base import Family, latent_vector, require_networks
from genlab.objectives import adversarial_loss
from genlab.regularizers import Regularizer

Reduce = Callable[[Tensor], Tensor]


class GAN(Family):
    """A generator G(z[, y]) and a critic D(x[, y]) in the game `loss` names, with its regularizers and augmentation."""

    roles = ("generator", "discriminator")

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        latent_dim: int = 100,
        loss: str = "nonsaturating",
        n_critic: int = 1,
        regularizers: Mapping[str, Regularizer | None] | None = None,
        augment: DiffAugment | None = None,
        num_classes: int = 0,
    ) -> None:
        super().__init__(latent_vector(latent_dim), num_classes)
        self.latent_dim = latent_dim
        require_networks(net, ("generator", "discriminator"), "a GAN", "model/net=dcgan or model/net=mlp")
        self.set_game(net, loss, n_critic, regularizers, augment)

    def set_game(
        self, net: Mapping[str, nn.Module], loss: str, n_critic: int,
        regularizers: Mapping[str, Regularizer | None] | None, augment: DiffAugment | None,
    ) -> None:
        """The players and the rules of the game, which the image-to-image games (pix2pix, CycleGAN) share."""
        require(is_positive_integer(n_critic), "model.n_critic", n_critic, "a positive integer")
        self.generator = net["generator"]
        self.discriminator = net["discriminator"]
        self.objective = adversarial_loss(loss)
        self.n_critic = n_critic
        self.regularizers = {name: r for name, r in (regularizers or {}).items() if r is not None}
        for name, regularizer in self.regularizers.items():
            if not isinstance(regularizer, Regularizer):
                raise ConfigError(f"model.regularizers.{name} is a {type(regularizer).__name__}, not a genlab Regularizer")
        # `model.augment`: what D sees of real and fake images, in both players' steps
        self.augment = check_augment(augment)

    def image_network(self) -> nn.Module:
        return self.generator

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        return (self.generator if role == "generator" else self.discriminator).parameters()

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.generator(noise, labels)

    # --- one batch of the game ----------------------------------------------------------

    def generate(self, n: int, labels: Tensor | None) -> Tensor:
        """n fresh fakes G(z[, labels]), from noise drawn on the family's device (the caller decides whether
        their graph to G is kept: only when the generator steps on them)."""
        return self.generator(self.sample_noise(n), labels)

    def augmented(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """What the critic sees of both batches: augmented alike when `model.augment` is set (both players judge
        the same augmented images), else the batches themselves."""
        if self.augment is None:
            return real, fake
        return self.augment(real), self.augment(fake)

    def is_generator_turn(self, critic_step: int) -> bool:
        """Whether critic step `critic_step` (counted from 1, across epochs) is followed by a generator step."""
        return critic_step % self.n_critic == 0

    def critic_loss(
        self, real: Tensor, fake: Tensor, labels: Tensor | None, step: int = 1, regularize: bool = True
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic's objective on a real and a fake batch, with the regularizers' terms at critic step `step`
        (lazy ones apply every few steps); `fake` is detached. Logs: d_loss, D's readout of real and fake,
        E[sign(D(x))] (ADA's overfitting heuristic r_t) and each regularizer's unweighted value."""
        fake = fake.detach()
        real_scores = self.discriminator(real, labels)
        fake_scores = self.discriminator(fake, labels)
        loss = self.objective.discriminator(real_scores, fake_scores)
        logs = {
            "d_loss": loss.detach(),
            "d_real": self.objective.readout(real_scores.detach()).mean(),
            "d_fake": self.objective.readout(fake_scores.detach()).mean(),
            "d_real_sign": real_scores.detach().sign().mean(),
        }
        if regularize:
            for name, regularizer in self.regularizers.items():
                term = regularizer.critic_term(self, real, fake, labels, step)
                if term is not None:
                    loss = loss + term.loss
                    logs[name] = term.logged
        return loss, logs

    def after_critic_step(self) -> None:
        """Constraints that act on the critic's weights once its optimizer stepped (WGAN's clipping)."""
        for regularizer in self.regularizers.values():
            regularizer.after_critic_step(self)

    def generator_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's objective on its fakes (whose graph it keeps), with the regularizers' generator terms;
        relativistic losses also score the real batch. Logs each term's unweighted value as g_<name>."""
        fake_scores = self.discriminator(fake, labels)
        real_scores = None
        if self.objective.generator_sees_real:  # relativistic losses pair each fake with a real
            with torch.no_grad():
                real_scores = self.discriminator(real, labels)
        loss = self.objective.generator_loss(fake_scores, real_scores)
        logs: dict[str, Tensor] = {}
        for name, regularizer in self.regularizers.items():
            term = regularizer.generator_term(self, fake, labels)
            if term is not None:
                loss = loss + term.loss
                logs[f"g_{name}"] = term.logged
        return loss, logs

    def observe(self, real_sign: Tensor, batch_size: int, step: int, reduce: Reduce | None = None) -> dict[str, Tensor]:
        """After critic step `step`: an adaptive augmentation sees E[sign(D(x_real))] (`reduce` sums over
        processes); returns what to log (`augment_p`)."""
        if self.augment is None:
            return {}
        self.augment.observe(real_sign, batch_size, step, reduce)
        return {"augment_p": torch.tensor(self.augment.p, device=real_sign.device)}

    def validation_terms(self, real: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """D's verdict on held-out real images: a D(x) that drifts from the training D(x) means D overfits."""
        _, logs = self.critic_loss(real, self.generate(len(real), labels), labels, regularize=False)
        return logs

    # --- state beyond the weights -------------------------------------------------------

    def training_state(self) -> dict[str, Any]:
        return {"augment": self.augment.state_dict()} if self.augment is not None else {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])
