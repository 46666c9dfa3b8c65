"""pix2pix's math (Isola et al. 2017): a conditional GAN whose condition is the input image, plus an L1 term.

G(x) makes the target from the input x (its only noise is dropout, kept on at test time); the PatchGAN
critic D(y, x) scores overlapping patches of (input, image) pairs. Objective (eq. 4):
    G* = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G),   lambda = 100,
with the non-saturating generator loss and D's objective halved (sec. 3.3: "we divide the objective by 2
while optimizing D, which slows down the rate at which D learns relative to G"). Trained by genlab's
two-player loop like every GAN: one critic step, then one generator step, per batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.errors import is_number, require
from genlab.families.base import Family, require_networks
from genlab.families.gan import GAN
from genlab.families.translation import Regress, Translation, build_networks, pixel_distance
from genlab.regularizers import Regularizer
from genlab.tasks.base import Task


class Pix2Pix(Translation, GAN):
    """`adversarial_weight` scales L_cGAN (0: `regress` exactly), `pixel_weight` is lambda, `loss` the game
    (genlab.objectives.ADVERSARIAL_LOSSES: the paper's nonsaturating, or least_squares, hinge, ...)."""

    def __init__(
        self,
        net: Mapping[str, Any],
        task: Task | None = None,
        loss: str = "nonsaturating",
        adversarial_weight: float = 1.0,
        pixel_loss: str = "l1",
        pixel_weight: float = 100.0,
        critic_scale: float = 0.5,
        regularizers: Mapping[str, Regularizer | None] | None = None,
        test_dropout: bool = True,
        seed: int = 0,
    ) -> None:
        self.use_task(task, "pix2pix")
        self.test_dropout = bool(test_dropout)
        for key, value in (("adversarial_weight", adversarial_weight), ("pixel_weight", pixel_weight),
                           ("critic_scale", critic_scale)):
            require(is_number(value) and value >= 0, f"model.{key}", value, "a number >= 0")
        self.distance = pixel_distance(pixel_loss)
        source, target = self.task.source_shape, self.task.target_shape
        # the generator first, from the same seed as regress's: the critic changes nothing of it
        nets = build_networks(net, {"generator": Regress.generator_sizes(self.task),
                                    "discriminator": {"in_channels": source[0] + target[0]}}, seed)
        Family.__init__(self, source)
        require_networks(nets, ("generator", "discriminator"), "pix2pix", "model/net=pix2pix")
        self.set_game(nets, loss, 1, regularizers, None)
        self.adversarial_weight, self.pixel_weight = float(adversarial_weight), float(pixel_weight)
        self.critic_scale = float(critic_scale)

    def generate(self, n: int, source: Tensor) -> Tensor:
        """G(x) for the batch's inputs (dropout on, as in training), the known pixels kept (inpainting)."""
        return self.kept(self.generator(source), source)

    def critic_loss(
        self, real: Tensor, fake: Tensor, source: Tensor, step: int = 1, regularize: bool = True
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """critic_scale (1/2, the paper's) x D's objective on (x, y) against (x, G(x)), with the regularizers' terms."""
        loss, logs = super().critic_loss(real, fake, source, step, regularize)
        return self.critic_scale * loss, logs

    def generator_loss(self, real: Tensor, fake: Tensor, source: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """adversarial_weight x L_cGAN(G) + pixel_weight x ||y - G(x)||_1; at weight 0 the critic is not consulted."""
        pixel = self.distance(fake, real)
        loss = self.pixel_weight * pixel
        logs = {"g_pixel": pixel.detach()}
        if self.adversarial_weight:
            adversarial, extra = super().generator_loss(real, fake, source)
            loss = loss + self.adversarial_weight * adversarial
            logs.update(g_adversarial=adversarial.detach(), **extra)
        return loss, logs

    def validation_terms(self, real: Tensor, source: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.generate(len(source), source)
            _, logs = super().critic_loss(real, fake, source, regularize=False)
            return {**logs, "pixel": self.distance(fake, real)}

    def image_network(self) -> nn.Module:
        return self.generator
