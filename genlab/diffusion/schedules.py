"""DDPM's forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) on diffusers' beta schedules.

The betas come from diffusers' `DDPMScheduler` (the field's reference implementation), so that the
samplers (genlab/diffusion/samplers.py), built from the same settings, invert exactly the process
the network was trained on:

- `linear` (Ho et al. 2020): beta_t from 1e-4 to 0.02, evenly spaced over T steps;
- `cosine` (Nichol & Dhariwal 2021): abar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi/2)^2,
  s = 0.008, with beta_t = 1 - abar(t+1)/abar(t) capped at 0.999 (diffusers' `squaredcos_cap_v2`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError, is_positive_integer, require

# genlab's schedule names -> diffusers' beta_schedule names
BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction"}


def scheduler_settings(schedule: str, timesteps: int, prediction: str) -> dict[str, Any]:
    """The diffusers scheduler arguments shared by training and every sampler; checked by key."""
    if schedule not in BETA_SCHEDULES:
        raise ConfigError(f"model.schedule={schedule!r} is not known; choose one of: {', '.join(BETA_SCHEDULES)}")
    if prediction not in PREDICTIONS:
        raise ConfigError(f"model.prediction={prediction!r} is not known; choose one of: {', '.join(PREDICTIONS)}")
    require(is_positive_integer(timesteps) and timesteps >= 2, "model.timesteps", timesteps, "an integer >= 2, e.g. 1000")
    return {
        "num_train_timesteps": timesteps,
        "beta_schedule": BETA_SCHEDULES[schedule],
        "prediction_type": PREDICTIONS[prediction],
    }


class NoiseSchedule:
    """abar_t for t = 0..T-1, and what training needs of it: x_t and the network's target."""

    def __init__(self, schedule: str = "linear", timesteps: int = 1000, prediction: str = "epsilon") -> None:
        from diffusers import DDPMScheduler

        self.settings = scheduler_settings(schedule, timesteps, prediction)
        self.prediction = prediction
        self.timesteps = timesteps
        reference = DDPMScheduler(**self.settings)
        self.betas: Tensor = reference.betas.clone()
        self.alphas_cumprod: Tensor = reference.alphas_cumprod.clone()

    def _abar(self, t: Tensor, like: Tensor) -> Tensor:
        """abar_t per sample, shaped to broadcast against `like` (B, C, H, W)."""
        abar = self.alphas_cumprod.to(like.device)[t].to(like.dtype)
        return abar.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: a draw from q(x_t | x_0) (Ho et al. 2020, eq. 4)."""
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def velocity(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, section 4)."""
        abar = self._abar(t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network learns to predict from x_t: eps, or v under v-prediction."""
        return noise if self.prediction == "epsilon" else self.velocity(x0, noise, t)

    def sample_timesteps(self, n: int, device: torch.device | str) -> Tensor:
        """t ~ Uniform{0, ..., T-1} (Ho et al. 2020, Algorithm 1)."""
        return torch.randint(0, self.timesteps, (n,), device=device)
