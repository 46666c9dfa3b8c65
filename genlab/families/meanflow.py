"""MeanFlow (Geng et al. 2025): a one-step generator trained from scratch, by regressing the average velocity.

The UNet (with `durations: true`) sees (z_t, t, t - r) and predicts u(z_t, r, t), the mean velocity over
[r, t]; its target comes from the MeanFlow identity through a Jacobian-vector product
(genlab/diffusion/meanflow.py). Sampling takes 1, 2 or N steps, chosen at sampling time: sampler={steps: N}.
Conditional models train classifier-free guidance in (omega, kappa): their one-step samples are guided.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.meanflow import (
    adaptive_weighted_loss, average_velocity_target, guided_velocity, noisy, sample_average_velocity, time_pairs,
)
from genlab.diffusion.samplers import check_steps
from genlab.errors import ConfigError, is_non_negative_number, is_number, require
from genlab.families.base import Terms
from genlab.families.denoising import Denoising
from genlab.nets.speed import eager

# the net sees t * TIME_SCALE and (t - r) * TIME_SCALE, so its sinusoids span the range DDPM's 1000 steps give them
TIME_SCALE = 1000.0


class MeanFlow(Denoising):
    """`time_mean`, `time_std` and `start_mean`, `start_std`: the logit-normals t and r are drawn from (then t the
    larger of the two); `unequal_share`: the share of pairs with r != t; `adaptive_power`, `adaptive_c`: the loss
    weighting's p and c; `guidance` (omega) and `guidance_mix` (kappa): training-time guidance of conditional
    models (omega = 1, kappa = 0: none). The defaults are the paper's (lognorm(-0.4, 1.0) for both, 25% r != t,
    p = 1); the authors' pixel-space CIFAR-10 recipe (py-meanflow's v1 sampler: t ~ lognorm(-0.6, 1.6),
    r ~ lognorm(-4, 1.6), 75% r != t, p = 0.75) measured worse on mnist_mini at a CPU budget (docs/few_step.md)."""

    sampler_keys = ("steps",)
    required_sampler_keys = ("steps",)

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        time_mean: float = -0.4,
        time_std: float = 1.0,
        start_mean: float = -0.4,
        start_std: float = 1.0,
        unequal_share: float = 0.25,
        adaptive_power: float = 1.0,
        adaptive_c: float = 1e-3,
        guidance: float = 1.0,
        guidance_mix: float = 0.0,
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        for key, mean, std in (("time", time_mean, time_std), ("start", start_mean, start_std)):
            require(is_number(mean), f"model.{key}_mean", mean, "a number")
            require(is_number(std) and std > 0, f"model.{key}_std", std, "a positive number")
        require(is_number(unequal_share) and 0 <= unequal_share <= 1, "model.unequal_share", unequal_share,
                "a share in [0, 1], e.g. 0.25")
        require(is_non_negative_number(adaptive_power), "model.adaptive_power", adaptive_power, "a number >= 0, e.g. 1.0")
        require(is_number(adaptive_c) and adaptive_c > 0, "model.adaptive_c", adaptive_c, "a positive number, e.g. 1e-3")
        require(is_number(guidance) and guidance >= 1, "model.guidance", guidance, "a number >= 1 (1: no guidance)")
        require(is_number(guidance_mix) and 0 <= guidance_mix < 1, "model.guidance_mix", guidance_mix,
                "a number in [0, 1) (0: the paper's plain omega guidance)")
        if getattr(net.get("denoiser"), "duration_mlp", "absent") is None:
            raise ConfigError("model.net.denoiser.durations=false: MeanFlow's net takes t and t - r; set it to true"
                              " (model=meanflow does)")
        super().__init__(net, image_shape, num_classes, label_dropout, sampler)
        if (guidance != 1 or guidance_mix) and not self.conditional:
            raise ConfigError(f"model.guidance={guidance} guides a conditional model: set model.num_classes (model=cmeanflow)"
                              " or leave model.guidance=1")
        self.time_mean, self.time_std, self.unequal_share = float(time_mean), float(time_std), float(unequal_share)
        self.start_mean, self.start_std = float(start_mean), float(start_std)
        self.adaptive_power, self.adaptive_c = float(adaptive_power), float(adaptive_c)
        self.guidance, self.guidance_mix = float(guidance), float(guidance_mix)
        if "steps" in self.sampler_defaults:
            check_steps(self.sampler_defaults["steps"])

    def average_velocity(self, z: Tensor, r: Tensor, t: Tensor, labels: Tensor | None,
                         net: Callable[..., Tensor] | None = None) -> Tensor:
        """u(z, r, t): the net (`net`: another way of calling it) at time t and duration t - r."""
        return (net or self.denoiser)(z, t * TIME_SCALE, labels, (t - r) * TIME_SCALE)

    def sample_time_pairs(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(r, t): one draw from each logit-normal, t the larger, and r = t on a share 1 - `unequal_share`."""
        first, second = (torch.sigmoid(mean + std * self.draw((n,), generator))
                         for mean, std in ((self.time_mean, self.time_std), (self.start_mean, self.start_std)))
        return time_pairs(first, second, self.draw((n,), generator, kind="uniform") < self.unequal_share)

    def velocity_for_target(self, z: Tensor, t: Tensor, velocity: Tensor, labels: Tensor | None) -> Tensor:
        """v, or its guided mix where the model trains guidance in (a row with the "no class" label keeps v)."""
        if labels is None or (self.guidance == 1 and not self.guidance_mix):
            return velocity
        with torch.no_grad():
            unconditional = self.average_velocity(z, t, t, torch.full_like(labels, self.null_label))
            conditional = self.average_velocity(z, t, t, labels) if self.guidance_mix else None
        return guided_velocity(velocity, unconditional, conditional, self.guidance, self.guidance_mix,
                               labels != self.null_label)

    def terms(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Terms:
        """The loss at fresh draws of eps and (r, t) (from `generator` when given)."""
        noise = self.draw(tuple(images.shape), generator)
        r, t = self.sample_time_pairs(len(images), generator)
        return self.terms_at(images, noise, r, t, labels)

    def terms_at(self, images: Tensor, noise: Tensor, r: Tensor, t: Tensor, labels: Tensor | None) -> Terms:
        """The adaptive-weighted || u(z_t, r, t) - sg(u_tgt) ||^2 (Algorithm 1) per image, averaged over the batch,
        and the plain squared error per pixel."""
        z = noisy(images, noise, t)
        velocity = self.velocity_for_target(z, t, noise - images, labels)
        # the JVP goes through the net's eager forward: torch.func.jvp of a compiled module called from eager code is
        # unsupported (pytorch/pytorch#128711) and would make torch.compile fall back to eager for every call
        forward = eager(self.denoiser)
        target = average_velocity_target(
            lambda rows: lambda z_, r_, t_: self.average_velocity(z_, r_, t_, None if labels is None else labels[rows],
                                                                  forward),
            z, r, t, velocity)
        loss, squared_error = adaptive_weighted_loss(self.average_velocity(z, r, t, labels), target,
                                                     self.adaptive_power, self.adaptive_c)
        return {"loss": loss, "mse": squared_error}

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        return self.terms(images, labels, generator)["loss"]

    def loss(self, images: Tensor, labels: Tensor | None) -> Terms:
        return self.terms(images, self.dropped(labels))

    def validation_terms(self, images: Tensor, labels: Tensor | None, batch_index: int) -> Terms:
        return {name: value.detach() for name, value in
                self.terms(images, labels, torch.Generator().manual_seed(batch_index)).items()}

    def evaluations(self, options: Mapping[str, Any]) -> int:
        return int(options["steps"])  # guidance is trained in: one evaluation a step

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """Images from z_1 = `noise` in `steps` average-velocity jumps (1: x = eps - u(eps, 0, 1)); deterministic."""
        options = self.resolve_sampler(steps=steps)
        check_steps(options["steps"])
        u = lambda z, r, t: self.average_velocity(z, r, t, labels)  # noqa: E731
        return sample_average_velocity(u, noise, options["steps"], self._on_step).clamp(-1, 1)

