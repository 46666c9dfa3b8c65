"""Flow matching's probability path and time distribution (Liu et al. 2022; Lipman et al. 2022).

x_0 ~ N(0, I) is the noise, x_1 the data; the straight path x_t = (1 - t) x_0 + t x_1 has the
constant velocity x_1 - x_0, which the network learns to predict at (x_t, t). Samplers integrate
dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.errors import ConfigError

TIME_DISTRIBUTIONS = ("uniform", "logit_normal", "u_shaped")


def linear_path(x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) x_0 + t x_1, with t (B,) broadcast over the image dimensions."""
    t = t.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - t) * x0 + t * x1


def path_velocity(x0: Tensor, x1: Tensor) -> Tensor:
    """d x_t / dt of the linear path: x_1 - x_0, the regression target."""
    return x1 - x0


def check_time_distribution(name: str) -> None:
    if name not in TIME_DISTRIBUTIONS:
        raise ConfigError(f"model.time_distribution={name!r} is not known; choose one of: {', '.join(TIME_DISTRIBUTIONS)}")


def u_shaped_times(uniform: Tensor, coin: Tensor, concentration: float) -> Tensor:
    """t in [0, 1] with the density a (e^{at} + e^{a(1 - t)}) / (2 (e^a - 1)), a = `concentration` (Lee et al. 2024,
    "Improving the Training of Rectified Flows": a = 4), from U(0, 1) draws `uniform` and `coin`: more training at
    the ends of the path than in its middle, where a 2-rectified flow's one Euler step reads the velocity (t = 0)
    and where its loss is largest. The exponential half C e^{as} by its inverse CDF, s = log(1 + u (e^a - 1)) / a,
    then 1 - s where the coin is below 1/2."""
    s = (uniform * math.expm1(concentration)).log1p() / concentration
    return torch.where(coin < 0.5, 1 - s, s)
