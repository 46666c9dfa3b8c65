"""A denoising objective genlab does not ship, added the way a new family is added: this file and one YAML
(tests/configs/model/edm.yaml), no edit anywhere in genlab/. tests/test_new_family.py trains, samples and
evaluates it through genlab's own commands.

EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"), Table 1:
x = y + sigma n, D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)) with
c_skip = sigma_d^2 / (sigma^2 + sigma_d^2), c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2),
c_in = 1 / sqrt(sigma^2 + sigma_d^2), c_noise = ln(sigma) / 4; training draws ln sigma ~ N(P_mean, P_std^2)
and minimises lambda(sigma) ||D(y + sigma n; sigma) - y||^2 with lambda = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2;
sampling (Algorithm 1) integrates dx/dsigma = (x - D(x; sigma)) / sigma from sigma_max to 0 on the
sigmas sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, by Euler or Heun.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.samplers import check_method, check_steps
from genlab.families.denoising import Denoising

METHODS = ("euler", "heun")
# the UNet's sinusoidal time embedding was made for times of 0-1000; c_noise spans about -1.6 to 1.1
TIME_SCALE = 250.0


class EDM(Denoising):
    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        sigma_data: float = 0.5,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(net, image_shape, num_classes, label_dropout, sampler)
        self.sigma_data, self.p_mean, self.p_std = sigma_data, p_mean, p_std
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho

    def predict(self, x: Tensor, sigma: Tensor, labels: Tensor | None) -> Tensor:
        """D(x; sigma), the preconditioned denoiser."""
        sigma = sigma.float().reshape(-1, *[1] * (x.dim() - 1)).expand(len(x), *[1] * (x.dim() - 1))
        total = sigma**2 + self.sigma_data**2
        c_skip, c_out, c_in = self.sigma_data**2 / total, sigma * self.sigma_data / total.sqrt(), 1 / total.sqrt()
        c_noise = sigma.flatten().log() / 4
        return c_skip * x + c_out * self.denoiser(c_in * x, c_noise * TIME_SCALE, labels)

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        sigma = (self.p_mean + self.p_std * self.draw((len(images),), generator)).exp()
        noise = self.draw(tuple(images.shape), generator)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        error = (self.predict(images + sigma.view(-1, 1, 1, 1) * noise, sigma, labels) - images) ** 2
        return (weight.view(-1, 1, 1, 1) * error).mean()

    def sigmas(self, steps: int) -> Tensor:
        """sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then sigma_N = 0 (float64)."""
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
        low, high = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return torch.cat([(high + ramp * (low - high)) ** self.rho, torch.zeros(1, dtype=torch.float64)])

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None, guidance: float | None = None,
    ) -> Tensor:
        """Algorithm 1 from x_0 = sigma_max * noise: Euler, or Heun's correction on every step but the last."""
        options = self.resolve_sampler(method=method, steps=steps, guidance=guidance)
        check_method(options["method"], METHODS)
        check_steps(options["steps"])
        denoise = self.guided_predict(labels, options.get("guidance"))
        sigmas = self.sigmas(options["steps"])
        x = noise * float(sigmas[0])
        for now, after in zip(sigmas[:-1], sigmas[1:]):
            slope = (x - denoise(x, now.float().to(x.device))) / float(now)
            proposal = x + float(after - now) * slope
            if options["method"] == "heun" and after > 0:
                corrected = (proposal - denoise(proposal, after.float().to(x.device))) / float(after)
                proposal = x + float(after - now) * 0.5 * (slope + corrected)
            x = proposal
            if self._on_step is not None:
                self._on_step(x)
        return x.clamp(-1, 1)
