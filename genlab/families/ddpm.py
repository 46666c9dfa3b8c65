"""DDPM's math (Ho et al. 2020): the forward process, the simple loss on eps or v, and diffusers' samplers.

x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps; the net predicts eps (or v = sqrt(abar_t) eps -
sqrt(1 - abar_t) x_0, Salimans & Ho 2022) from (x_t, t); loss = || target - net(x_t, t) ||^2.
Samplers (ddpm, ddim, dpm++) are diffusers' schedulers built from the very schedule it trained on.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.losses import denoising_loss
from genlab.diffusion.samplers import DIFFUSION_SAMPLERS, check_method, sample_diffusion
from genlab.diffusion.schedules import NoiseSchedule
from genlab.families.denoising import Denoising


class DDPM(Denoising):
    """`schedule`: linear or cosine betas over `timesteps` (genlab/diffusion/schedules.py); `prediction`: epsilon or v."""

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        schedule: str = "linear",
        timesteps: int = 1000,
        prediction: str = "epsilon",
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        noise_schedule = NoiseSchedule(schedule, timesteps, prediction)  # checks the keys before the net is kept
        super().__init__(net, image_shape, num_classes, label_dropout, sampler)
        self.schedule = noise_schedule
        if "method" in self.sampler_defaults:
            check_method(self.sampler_defaults["method"], DIFFUSION_SAMPLERS)

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """E || target - net(x_t, t) ||^2 with t ~ U{0, ..., T-1}, eps ~ N(0, I) (Algorithm 1)."""
        noise = self.draw(tuple(images.shape), generator)
        if generator is None:
            t = self.schedule.sample_timesteps(len(images), images.device)
        else:
            t = torch.randint(0, self.schedule.timesteps, (len(images),), generator=generator).to(images.device)
        noisy = self.schedule.q_sample(images, noise, t)
        return denoising_loss(self.predict(noisy, t, labels), self.schedule.target(images, noise, t), self.loss_mask(labels))

    def predict(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        return self.denoiser(x, t.float(), labels)

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None, eta: float | None = None, guidance: float | None = None,
    ) -> Tensor:
        """Images from x_T = `noise` by `method` (ddpm, ddim, dpm++) in `steps` steps; `eta` for DDIM,
        `guidance` the classifier-free guidance scale of conditional models (1: none)."""
        options = self.resolve_sampler(method=method, steps=steps, eta=eta, guidance=guidance)
        predict = self.guided_predict(labels, options.get("guidance"))
        x = sample_diffusion(predict, noise, self.schedule.settings, options["method"], options["steps"],
                             options.get("eta", 0.0), generator, self._on_step)
        return x.clamp(-1, 1)
