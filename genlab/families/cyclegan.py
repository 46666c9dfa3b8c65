"""CycleGAN's math (Zhu et al. 2017): two translators G: A -> B and F: B -> A learnt from unpaired images.

Critics D_B (on B's images) and D_A (on A's) play least squares GAN at the paper's scale (its code's
MSELoss: the generator's term E[(D(G(a)) - 1)^2], the critic's halved), each against a pool of its 50 latest
fakes (Shrivastava et al. 2017; kept in checkpoints). The generators add cycle consistency and identity:
    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)
        + lambda_id lambda (||G(b) - b||_1 + ||F(a) - a||_1),    lambda = 10, lambda_id = 0.5.
A batch's condition is (input a, target b): the two domains' images; the loop never pairs them (an unpaired
task's training batches hold no true pairs: genlab/tasks/base.py).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError, is_integer, is_number, require
from genlab.families.base import Family, require_networks
from genlab.families.gan import GAN
from genlab.families.translation import Translation, build_networks
from genlab.tasks.base import Task

ROLES = ("generator", "reverse_generator", "discriminator", "reverse_discriminator")
Images = tuple[Tensor, Tensor]  # (in B: G(a) or b, in A: F(b) or a)


class ImagePool:
    """The latest `size` fakes a critic saw: a query returns each new fake, or with probability 1/2 once the pool
    is full a stored one it replaces (the reference code's ImagePool; torch's random stream, so a resume replays it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                index = int(torch.randint(0, self.size, ()))
                out.append(self.images[index].to(image.device))
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> Tensor | None:
        return torch.stack(self.images).cpu() if self.images else None

    def load(self, images: Tensor | None) -> None:
        self.images = list(images) if images is not None else []


class CycleGAN(Translation, GAN):
    """`cycle_weight` lambda (10), `identity_weight` lambda_id (0.5; 0 where input and target differ in channels),
    `pool_size` the critics' image pools (50), `loss` the game (least_squares_mse: the paper's)."""

    paired_only = False

    def __init__(
        self,
        net: Mapping[str, Any],
        task: Task | None = None,
        loss: str = "least_squares_mse",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        test_dropout: bool = False,
        seed: int = 0,
    ) -> None:
        self.use_task(task, "cyclegan")
        self.test_dropout = bool(test_dropout)
        for key, value in (("cycle_weight", cycle_weight), ("identity_weight", identity_weight)):
            require(is_number(value) and value >= 0, f"model.{key}", value, "a number >= 0")
        require(is_integer(pool_size) and pool_size >= 0, "model.pool_size", pool_size, "an integer >= 0")
        a, b = self.task.source_shape[0], self.task.target_shape[0]
        if identity_weight and a != b:
            raise ConfigError(f"model.identity_weight={identity_weight}: the identity terms feed B's images to G: A -> B,"
                              f" but task={self.task.name}'s inputs have {a} channel(s) and its targets {b}:"
                              " set model.identity_weight=0")
        nets = build_networks(net, {
            "generator": {"in_channels": a, "out_channels": b}, "reverse_generator": {"in_channels": b, "out_channels": a},
            "discriminator": {"in_channels": b}, "reverse_discriminator": {"in_channels": a}}, seed)
        Family.__init__(self, self.task.source_shape)
        require_networks(nets, ROLES, "cyclegan", "model/net=cyclegan")
        self.set_game(nets, loss, 1, None, None)
        self.reverse_generator, self.reverse_discriminator = nets["reverse_generator"], nets["reverse_discriminator"]
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.pools = (ImagePool(pool_size), ImagePool(pool_size))  # fakes in B (for D_B), in A (for D_A)

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        if role == "generator":
            return itertools.chain(self.generator.parameters(), self.reverse_generator.parameters())
        return itertools.chain(self.discriminator.parameters(), self.reverse_discriminator.parameters())

    def condition_of(self, batch: tuple[Tensor, ...]) -> Images:
        """(a, b): the batch's images of domain A (the task's inputs) and B (its targets)."""
        return super().condition_of(batch), batch[0]

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """G(a): `noise` is the task's input here (Translation.translate)."""
        with self.dropout_at_test(self.generator, generator):
            return self.generator(noise)

    def reverse(self, target: Tensor) -> Tensor:
        """F(b): B's images back to A."""
        return self.reverse_generator(target)

    def generate(self, n: int, domains: Images) -> Images:
        """(G(a), F(b)): each domain's images translated into the other."""
        a, b = domains
        return self.generator(a), self.reverse_generator(b)

    def critic_terms(self, domains: Images, fakes: Images, pooled: bool) -> tuple[Tensor, dict[str, Tensor]]:
        (a, b), (fake_b, fake_a) = domains, (fake.detach() for fake in fakes)
        if pooled:
            fake_b, fake_a = self.pools[0].query(fake_b), self.pools[1].query(fake_a)
        real_b, real_a = self.discriminator(b), self.reverse_discriminator(a)
        scores_b, scores_a = self.discriminator(fake_b), self.reverse_discriminator(fake_a)
        loss = self.objective.discriminator(real_b, scores_b) + self.objective.discriminator(real_a, scores_a)
        readout = self.objective.readout
        return loss, {
            "d_loss": loss.detach(), "d_real": readout(real_b.detach()).mean(), "d_fake": readout(scores_b.detach()).mean(),
            "d_reverse_real": readout(real_a.detach()).mean(), "d_reverse_fake": readout(scores_a.detach()).mean(),
            "d_real_sign": real_b.detach().sign().mean(),
        }

    def critic_loss(
        self, real: Tensor, fake: Images, domains: Images, step: int = 1, regularize: bool = True
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """D_B's and D_A's objectives (each LSGAN's, halved) against pooled fakes."""
        return self.critic_terms(domains, fake, pooled=True)

    def generator_loss(self, real: Tensor, fake: Images, domains: Images) -> tuple[Tensor, dict[str, Tensor]]:
        (a, b), (fake_b, fake_a) = domains, fake
        adversarial = self.objective.generator_loss(self.discriminator(fake_b)) + \
            self.objective.generator_loss(self.reverse_discriminator(fake_a))
        cycle = F.l1_loss(self.reverse_generator(fake_b), a) + F.l1_loss(self.generator(fake_a), b)
        loss = adversarial + self.cycle_weight * cycle
        logs = {"g_adversarial": adversarial.detach(), "g_cycle": cycle.detach()}
        if self.identity_weight:
            identity = F.l1_loss(self.generator(b), b) + F.l1_loss(self.reverse_generator(a), a)
            loss = loss + self.cycle_weight * self.identity_weight * identity
            logs["g_identity"] = identity.detach()
        return loss, logs

    def validation_terms(self, real: Tensor, domains: Images) -> dict[str, Tensor]:
        with torch.no_grad():
            a, b = domains
            fakes = self.generate(len(a), domains)
            _, logs = self.critic_terms(domains, fakes, pooled=False)
            logs["cycle"] = F.l1_loss(self.reverse_generator(fakes[0]), a) + F.l1_loss(self.generator(fakes[1]), b)
            return logs

    def training_state(self) -> dict[str, Any]:
        return {"pools": [pool.state() for pool in self.pools]}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        for pool, images in zip(self.pools, state.get("pools", (None, None))):
            pool.load(images)
