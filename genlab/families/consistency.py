"""Improved consistency training, iCT (Song & Dhariwal 2023): a one- or few-step generator trained from scratch.

Why iCT of the consistency family: it needs no pretrained diffusion model (ECT starts from one in EDM's
parameterisation, which genlab's DDPM and flow runs do not have) and no Jacobian-vector product (sCM's
continuous-time target needs one and TrigFlow's tangent normalisation to stay stable), so each step costs two
forward passes of the UNet and one backward, under any DDP, precision or compile setting; and each of its
pieces has a closed form to test against (genlab/diffusion/consistency.py).

Sampling takes 1, 2 or N steps, chosen at sampling time: sampler={steps: N} on the Karras grid, or
sampler={sigmas: [80, 0.8]} for the levels themselves. Conditional models take the class; consistency
models have no classifier-free guidance to mix (guidance would need a score, which f is not).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from genlab.diffusion.consistency import (
    boundary_scalings, discretisation_steps, karras_sigmas, level_probabilities, pseudo_huber, sample_consistency,
    sampling_sigmas,
)
from genlab.diffusion.samplers import check_steps
from genlab.errors import ConfigError, is_number, is_positive_integer, require
from genlab.families.base import Terms
from genlab.families.denoising import Denoising

# the net sees c_noise = NOISE_SCALE * ln(sigma): EDM's 0.25 ln(sigma), times 1000 as genlab's flows scale t, so its
# sinusoids span the range DDPM's 1000 steps give them
NOISE_SCALE = 250.0


class ConsistencyTraining(Denoising):
    """`sigma_min`, `sigma_max`, `sigma_data`, `rho`: EDM's path and grid (0.002, 80, 0.5, 7); `p_mean`, `p_std`: the
    log-normal over levels (-1.1, 2.0); `start_steps`, `end_steps`: the curriculum's s0 and s1 (10, 1280) over
    `curriculum_steps` training batches (K; null: the batches the run plans); `huber_c`: the pseudo-Huber c per sqrt(pixels) (0.00054)."""

    sampler_keys = ("steps", "sigmas")
    required_sampler_keys = ("steps",)

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        curriculum_steps: int | None = None,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        p_mean: float = -1.1,
        p_std: float = 2.0,
        start_steps: int = 10,
        end_steps: int = 1280,
        huber_c: float = 0.00054,
        num_classes: int = 0,
        label_dropout: float = 0.0,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        require(curriculum_steps is None or is_positive_integer(curriculum_steps), "model.curriculum_steps",
                curriculum_steps, "null (the training's planned batches) or a positive number of batches")
        require(is_number(sigma_min) and sigma_min > 0, "model.sigma_min", sigma_min, "a positive number, e.g. 0.002")
        require(is_number(sigma_max) and sigma_max > sigma_min, "model.sigma_max", sigma_max,
                f"a number above model.sigma_min={sigma_min}, e.g. 80")
        for key, value in (("sigma_data", sigma_data), ("rho", rho), ("p_std", p_std), ("huber_c", huber_c)):
            require(is_number(value) and value > 0, f"model.{key}", value, "a positive number")
        require(is_number(p_mean), "model.p_mean", p_mean, "a number, e.g. -1.1")
        require(is_positive_integer(start_steps) and start_steps >= 2, "model.start_steps", start_steps,
                "an integer >= 2, e.g. 10")
        require(is_positive_integer(end_steps) and end_steps >= start_steps, "model.end_steps", end_steps,
                f"an integer >= model.start_steps={start_steps}, e.g. 1280")
        super().__init__(net, image_shape, num_classes, label_dropout, sampler)
        self.curriculum_steps = None if curriculum_steps is None else int(curriculum_steps)
        self.start_steps, self.end_steps = int(start_steps), int(end_steps)
        self.sigma_min, self.sigma_max, self.sigma_data, self.rho = float(sigma_min), float(sigma_max), float(sigma_data), float(rho)
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.huber_c = float(huber_c) * math.sqrt(math.prod(image_shape))
        # training batches so far: where the curriculum is (saved with the weights, so a resumed run goes on from it)
        self.register_buffer("iterations", torch.zeros((), dtype=torch.long))
        # the same count as a Python int, read from the buffer once after a load: no GPU sync per training batch
        self._iterations: int | None = 0
        self.register_load_state_dict_post_hook(ConsistencyTraining._loaded)
        if "steps" in self.sampler_defaults:
            check_steps(self.sampler_defaults["steps"])

    def consistency_function(self, x: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """f(x, sigma) = c_skip x + c_out F(c_in x, c_noise): exactly x at sigma_min."""
        c_skip, c_out, c_in = (c.view(-1, 1, 1, 1).to(x.dtype) for c in
                               boundary_scalings(sigma.float(), self.sigma_min, self.sigma_data))
        return c_skip * x + c_out * self.denoiser(c_in * x, NOISE_SCALE * sigma.float().log(), labels)

    def prepare(self, planned_batches: Callable[[], float] | None = None) -> None:
        """K, where `model.curriculum_steps` leaves it to the run: the batches the trainer plans (its epochs or steps)."""
        if self.curriculum_steps is None and planned_batches is not None:
            planned = planned_batches()
            if math.isfinite(planned):
                self.curriculum_steps = int(planned)

    def discretisation(self) -> int:
        """N(k) of the curriculum at the current training batch."""
        if self.curriculum_steps is None:
            raise ConfigError("model.curriculum_steps is null and the run's length is no number of batches"
                              " (trainer.max_time alone?): set budget.generator_steps=N or model.curriculum_steps=N")
        return discretisation_steps(self.batches_trained, self.curriculum_steps, self.start_steps, self.end_steps)

    @property
    def batches_trained(self) -> int:
        """The training batches so far (the `iterations` buffer, counted on the host)."""
        if self._iterations is None:
            self._iterations = int(self.iterations)
        return self._iterations

    @staticmethod
    def _loaded(module: nn.Module, incompatible: Any) -> None:
        module._iterations = None  # type: ignore[assignment]

    def terms(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Terms:
        """lambda(sigma_i) d(f(x + sigma_(i+1) z, sigma_(i+1)), sg f(x + sigma_i z, sigma_i)), averaged over the batch."""
        # the levels and the draw of each image's pair on the CPU, where the draw is made: no GPU sync per batch
        sigmas = karras_sigmas(self.discretisation(), self.sigma_min, self.sigma_max, self.rho)
        probabilities = level_probabilities(sigmas, self.p_mean, self.p_std).float()
        index = torch.multinomial(probabilities, len(images), replacement=True, generator=generator)
        low, high = sigmas[index].float().to(images.device), sigmas[index + 1].float().to(images.device)
        noise = self.draw(tuple(images.shape), generator)
        noisier = images + high.view(-1, 1, 1, 1) * noise
        with torch.no_grad():
            target = self.consistency_function(self.earlier_point(images, noise, noisier, low, high, labels), low, labels)
        output = self.consistency_function(noisier, high, labels)
        distance = pseudo_huber(output, target, self.huber_c)
        return {"loss": (distance / (high - low)).mean(), "distance": distance.detach().mean(),
                "discretisation": torch.tensor(float(len(sigmas)), device=images.device)}

    def earlier_point(self, images: Tensor, noise: Tensor, noisier: Tensor, low: Tensor, high: Tensor,
                      labels: Tensor | None) -> Tensor:
        """The point at sigma_i on the trajectory through `noisier` (at sigma_(i+1)): consistency training's estimate,
        x + sigma_i z with the same x and z (a distilling family takes a teacher's ODE step instead)."""
        return images + low.view(-1, 1, 1, 1) * noise

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        return self.terms(images, labels, generator)["loss"]

    def loss(self, images: Tensor, labels: Tensor | None) -> Terms:
        terms = self.terms(images, self.dropped(labels))
        self._iterations = self.batches_trained + 1
        self.iterations += 1
        return terms

    def validation_terms(self, images: Tensor, labels: Tensor | None, batch_index: int) -> Terms:
        terms = self.terms(images, labels, torch.Generator().manual_seed(batch_index))
        return {"loss": terms["loss"].detach(), "distance": terms["distance"]}

    def resolve_sampler(self, **given: Any) -> dict[str, Any]:
        """The levels a call samples at: the given `sigmas`, else the Karras grid of the given `steps`, else
        `model.sampler`'s sigmas or steps, in that order."""
        given = {key: value for key, value in given.items() if value is not None}
        defaults = {} if given else self.sampler_defaults
        sigmas = given.get("sigmas", defaults.get("sigmas"))
        if sigmas is not None:
            values = self.checked_sigmas(sigmas, given.get("steps"))
            return {"steps": len(values), "sigmas": values}
        steps = given.get("steps", self.sampler_defaults.get("steps"))
        if steps is None:
            raise ConfigError("sampler.steps has no value: set model.sampler.steps or sampler={steps: ...}")
        check_steps(steps)
        return {"steps": steps, "sigmas": sampling_sigmas(steps, self.sigma_min, self.sigma_max, self.rho)}

    def checked_sigmas(self, sigmas: Sequence[Any], steps: Any) -> list[float]:
        values = list(sigmas)
        if not all(is_number(s) and self.sigma_min < s <= self.sigma_max for s in values) or \
                any(a <= b for a, b in zip(values, values[1:])):
            raise ConfigError(f"sampler.sigmas={values} must fall from at most model.sigma_max={self.sigma_max} and stay"
                              f" above model.sigma_min={self.sigma_min}, e.g. [{self.sigma_max:g}, 0.8]")
        if steps is not None and steps != len(values):
            raise ConfigError(f"sampler.steps={steps} and sampler.sigmas (of {len(values)} levels) disagree: give one")
        return [float(s) for s in values]

    def evaluations(self, options: Mapping[str, Any]) -> int:
        return len(options["sigmas"])

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        steps: int | None = None, sigmas: Sequence[float] | None = None,
    ) -> Tensor:
        """Images from z = `noise` in one consistency step at sigma_max, or one per level of `sigmas` (or of the
        Karras grid of `steps`), with fresh noise from `generator` between them."""
        options = self.resolve_sampler(steps=steps, sigmas=sigmas)
        f = lambda x, sigma: self.consistency_function(x, sigma, labels)  # noqa: E731
        draw = lambda: self.draw(tuple(noise.shape), generator)  # noqa: E731
        return sample_consistency(f, noise, options["sigmas"], self.sigma_min, draw, self._on_step).clamp(-1, 1)
