"""Flow matching's probability path and time distribution (Liu et al. 2022; Lipman et al. 2022).

x_0 ~ N(0, I) is the noise, x_1 the data; the straight path x_t = (1 - t) x_0 + t x_1 has the
constant velocity x_1 - x_0, which the network learns to predict at (x_t, t). Samplers integrate
dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import ConfigError

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


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


def sample_times(n: int, distribution: str, device: torch.device | str, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """t in (0, 1): uniform, or logit-normal, sigmoid(N(mean, std^2)) (Esser et al. 2024, SD3), which
    spends more training on the middle of the path where the velocity is hardest to predict."""
    check_time_distribution(distribution)
    if distribution == "uniform":
        return torch.rand(n, device=device)
    return torch.sigmoid(mean + std * torch.randn(n, device=device))
