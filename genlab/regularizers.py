"""Penalties, constraints and auxiliary terms a model's YAML lists under `model.regularizers`,
each an object with hooks into the players' steps, so that a new one touches no training loop:

    model:
      regularizers:
        gradient_penalty:
          _target_: genlab.regularizers.GradientPenalty
          weight: 10.0

`critic_term` adds a weighted term to the critic's loss (and names what to log);
`after_critic_step` acts on the weights once the critic's optimizer has stepped;
`generator_term` adds a weighted term to the generator's loss (ACGAN's class term).
Each hook gets the GAN family (genlab/families/gan.py), so a regularizer works the same under
genlab's loop and under a hand-written one.
Formulas live in genlab/objectives.py; these objects decide where and how often they apply.
A null entry (`model.regularizers.gradient_penalty=null`) turns one off.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, NamedTuple, Protocol, Sequence

from torch import Tensor, nn

from genlab.errors import ConfigError, is_non_negative_number, is_positive_integer, is_positive_number, require
from genlab.nets.speed import eager
from genlab.objectives import auxiliary_class_loss, clip_weights_, gradient_penalty, zero_centered_gradient_penalty


class GANFamily(Protocol):
    """What the hooks read of a GAN (genlab.families.gan.GAN): its critic, whose class head ACGAN's term uses."""

    discriminator: Any


class Term(NamedTuple):
    """A weighted loss term and the unweighted value to log under `train/<name>`."""

    loss: Tensor
    logged: Tensor


class Regularizer:
    """Does nothing until a subclass overrides a hook."""

    # whether its critic term differentiates the critic twice (a gradient penalty): SyncBatchNorm cannot
    differentiates_twice = False

    def critic_term(self, gan: GANFamily, real: Tensor, fake: Tensor, labels: Tensor | None, step: int) -> Term | None:
        """A term added to the critic's training loss at critic step `step` (from 1; `fake` is detached), or None."""
        return None

    def after_critic_step(self, gan: GANFamily) -> None:
        """Runs after each critic optimizer step."""

    def generator_term(self, gan: GANFamily, fake: Tensor, labels: Tensor | None) -> Term | None:
        """A term added to the generator's training loss on this batch (`fake` keeps its graph), or None."""
        return None


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): `weight` * E[(||grad f(x_hat)||_2 - 1)^2] on random interpolates."""

    differentiates_twice = True

    def __init__(self, weight: float = 10.0) -> None:
        require(is_non_negative_number(weight), "model.regularizers.gradient_penalty.weight", weight, "a number >= 0")
        self.weight = weight

    def critic_term(self, gan: GANFamily, real: Tensor, fake: Tensor, labels: Tensor | None, step: int) -> Term:
        # the penalty differentiates the critic twice, which compiled graphs cannot: run it eagerly
        penalty = gradient_penalty(partial(eager(gan.discriminator), labels=labels), real, fake)
        return Term(self.weight * penalty, penalty.detach())


class ZeroCenteredPenalty(Regularizer):
    """gamma/2 E[||grad_x D(x)||^2] on real (R1) or generated (R2) images, optionally lazy.

    StyleGAN2's lazy regularization (Karras et al. 2020, sec. 3.1): with `interval` k > 1 the
    penalty is computed on every k-th critic step only (the step the loop passes, counted from 1) and
    multiplied by k, so that its average weight stays gamma/2 while it costs 1/k as much.
    """

    name = "zero_centered"
    on = "real"
    differentiates_twice = True

    def __init__(self, gamma: float = 10.0, interval: int = 1) -> None:
        key = f"model.regularizers.{self.name}"
        require(is_non_negative_number(gamma), f"{key}.gamma", gamma, "a number >= 0")
        require(is_positive_integer(interval), f"{key}.interval", interval, "a positive integer (1: every critic step)")
        self.gamma = gamma
        self.interval = interval

    def applies_at(self, critic_step: int) -> bool:
        return critic_step % self.interval == 0

    def critic_term(self, gan: GANFamily, real: Tensor, fake: Tensor, labels: Tensor | None, step: int) -> Term | None:
        if not self.applies_at(step):
            return None
        images = real if self.on == "real" else fake
        # differentiated twice, which compiled graphs cannot: run the critic eagerly
        squared_norm = zero_centered_gradient_penalty(partial(eager(gan.discriminator), labels=labels), images)
        return Term(self.interval * 0.5 * self.gamma * squared_norm, squared_norm.detach())


class R1Penalty(ZeroCenteredPenalty):
    """R1 (Mescheder et al. 2018): flattens D on the data; logs E||grad D(x_real)||^2."""

    name = "r1"
    on = "real"


class R2Penalty(ZeroCenteredPenalty):
    """R2 (Mescheder et al. 2018): flattens D on the generator's images; R3GAN pairs it with R1."""

    name = "r2"
    on = "fake"


class WeightClipping(Regularizer):
    """WGAN (Arjovsky et al. 2017): every critic weight clamped to [-clip_value, clip_value] after each critic step."""

    def __init__(self, clip_value: float = 0.01) -> None:
        require(is_positive_number(clip_value), "model.regularizers.weight_clipping.clip_value", clip_value,
                "a positive number")
        self.clip_value = clip_value

    def after_critic_step(self, gan: GANFamily) -> None:
        clip_weights_(gan.discriminator, self.clip_value)


class AuxiliaryClassifier(Regularizer):
    """ACGAN (Odena et al. 2017): both players also minimise `weight` * the cross-entropy of the
    discriminator's class head (`classify`) on the images' labels.

    The critic learns the classes on real images and, with `on_fake` (the paper's L_C), on the
    generated ones too; the generator learns to make images that it classifies as asked. Logged
    as train/auxiliary_classifier (the critic's term) and train/g_auxiliary_classifier.
    """

    def __init__(self, weight: float = 1.0, on_fake: bool = True) -> None:
        require(is_non_negative_number(weight), "model.regularizers.auxiliary_classifier.weight", weight, "a number >= 0")
        require(isinstance(on_fake, bool), "model.regularizers.auxiliary_classifier.on_fake", on_fake, "true or false")
        self.weight = weight
        self.on_fake = on_fake

    def _labels(self, labels: Tensor | None) -> Tensor:
        if labels is None:
            raise ConfigError("model.regularizers.auxiliary_classifier needs a conditional model (model.num_classes > 0)")
        return labels

    def _logits(self, gan: GANFamily, images: Tensor) -> Tensor:
        classify = getattr(gan.discriminator, "classify", None)
        if classify is None:  # e.g. model/net=mlp, whose discriminator has no class head
            raise ConfigError("model.regularizers.auxiliary_classifier needs a discriminator with a class head:"
                              " model/net=dcgan_auxiliary (model.net.discriminator.conditioning=auxiliary)")
        return classify(images)

    def critic_term(self, gan: GANFamily, real: Tensor, fake: Tensor, labels: Tensor | None, step: int) -> Term:
        labels = self._labels(labels)
        loss = auxiliary_class_loss(self._logits(gan, real), labels)
        if self.on_fake:
            loss = loss + auxiliary_class_loss(self._logits(gan, fake), labels)
        return Term(self.weight * loss, loss.detach())

    def generator_term(self, gan: GANFamily, fake: Tensor, labels: Tensor | None) -> Term:
        loss = auxiliary_class_loss(self._logits(gan, fake), self._labels(labels))
        return Term(self.weight * loss, loss.detach())



def check_sync_batchnorm(family: Any, trainer: Mapping[str, Any] | None) -> None:
    """Refuse a gradient penalty (WGAN-GP's, R1, R2) on a batch-norm critic that DDP would synchronise
    (trainer.sync_batchnorm=true, as trainer=ddp sets): SyncBatchNorm's backward cannot be differentiated again, and
    the run would crash at its first penalised step on the GPUs. Checked when the model is built, before training."""
    if not trainer or not trainer.get("sync_batchnorm") or processes(trainer) == 1:
        return
    critic = getattr(family, "discriminator", None)
    if critic is None or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules()):
        return
    for name, regularizer in getattr(family, "regularizers", {}).items():
        if regularizer.differentiates_twice:
            raise ConfigError(f"model.regularizers.{name} differentiates the critic twice, which its synchronised batch"
                              " norm (trainer.sync_batchnorm=true) cannot: add trainer.sync_batchnorm=false, or give"
                              " the critic no batch norm (model.net.discriminator.norm=layer)")


def processes(trainer: Mapping[str, Any]) -> int | None:
    """How many training processes `trainer` starts (None where Lightning counts them: devices=auto or -1)."""
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes") or 1
    if isinstance(devices, int) and devices > 0:
        return devices * nodes
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices) * nodes
    return None
