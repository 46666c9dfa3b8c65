"""Flow matching's math (Liu et al. 2022; Lipman et al. 2022): regress the straight path's velocity.

x_0 ~ N(0, I), x_1 a training image, t ~ U(0, 1) (or logit-normal), x_t = (1 - t) x_0 + t x_1;
the net learns v(x_t, t) ~ x_1 - x_0, and sampling integrates dx/dt = v from noise at t = 0 to an
image at t = 1 (Euler or Heun, genlab/diffusion/samplers.py).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.losses import flow_matching_loss
from genlab.diffusion.paths import check_time_distribution, linear_path, u_shaped_times
from genlab.diffusion.samplers import FLOW_SAMPLERS, check_method, sample_flow
from genlab.errors import is_number, require
from genlab.families.denoising import Denoising

# the net sees t * TIME_SCALE, so that its sinusoidal time embedding spans the range it has for DDPM's 1000 steps
TIME_SCALE = 1000.0


class FlowMatching(Denoising):
    """Rectified flow / conditional flow matching with the linear path; conditional with num_classes > 0.

    `time_distribution`: uniform, logit_normal with `time_mean`, `time_std` (Esser et al. 2024), or u_shaped with
    `time_concentration` (Lee et al. 2024).
    """

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        time_distribution: str = "uniform",
        time_mean: float = 0.0,
        time_std: float = 1.0,
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
        time_concentration: float = 4.0,
    ) -> None:
        check_time_distribution(time_distribution)
        require(is_number(time_concentration) and time_concentration > 0, "model.time_concentration",
                time_concentration, "a positive number, e.g. 4")
        require(is_number(time_std) and time_std > 0, "model.time_std", time_std, "a positive number")
        require(is_number(time_mean), "model.time_mean", time_mean, "a number")
        super().__init__(net, image_shape, num_classes, label_dropout, sampler)
        self.time_distribution, self.time_mean, self.time_std = time_distribution, float(time_mean), float(time_std)
        self.time_concentration = float(time_concentration)
        if "method" in self.sampler_defaults:
            check_method(self.sampler_defaults["method"], FLOW_SAMPLERS)

    def sample_times(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """t in [0, 1] from `model.time_distribution`."""
        if self.time_distribution == "uniform":
            return self.draw((n,), generator, kind="uniform")
        if self.time_distribution == "u_shaped":
            draws = self.draw((2, n), generator, kind="uniform")
            return u_shaped_times(draws[0], draws[1], self.time_concentration)
        return torch.sigmoid(self.time_mean + self.time_std * self.draw((n,), generator))

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """E || v(x_t, t) - (x_1 - x_0) ||^2 on the linear path (Lipman et al. 2022, eq. 23)."""
        noise = self.draw(tuple(images.shape), generator)
        t = self.sample_times(len(images), generator)
        return flow_matching_loss(self.predict(linear_path(noise, images, t), t, labels), noise, images,
                                  self.loss_mask(labels))

    def predict(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        return self.denoiser(x, t.float() * TIME_SCALE, labels)

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None, guidance: float | None = None,
    ) -> Tensor:
        """Images from x_0 = `noise` by integrating the learned velocity with `method` (euler, heun) in
        `steps` steps; `guidance` the classifier-free guidance scale of conditional models (1: none).
        The ODE is deterministic: `generator` draws nothing here."""
        options = self.resolve_sampler(method=method, steps=steps, guidance=guidance)
        predict = self.guided_predict(labels, options.get("guidance"))
        return sample_flow(predict, noise, options["method"], options["steps"], self._on_step).clamp(-1, 1)
