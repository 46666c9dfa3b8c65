"""Consistency models' math (Song et al. 2023; improved consistency training, iCT: Song & Dhariwal 2023).

Data x plus noise sigma z, sigma in [sigma_min, sigma_max] (EDM's variance-exploding path, Karras et al. 2022).
The consistency function maps any point of an ODE trajectory to its start, f(x_sigma, sigma) = x, by the
parameterisation f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)), whose c_skip = 1
and c_out = 0 at sigma_min make f(x, sigma_min) = x exactly (the boundary condition).

Consistency training needs no teacher: for adjacent levels sigma_i < sigma_(i+1) of a discretisation, the same
x and z give two points of (nearly) one trajectory, and the loss
    lambda(sigma_i) d(f_theta(x + sigma_(i+1) z, sigma_(i+1)), f_sg(theta)(x + sigma_i z, sigma_i))
pulls them to one output. iCT's choices: no EMA teacher (theta^- = sg(theta)), lambda = 1 / (sigma_(i+1) - sigma_i),
the pseudo-Huber distance d, levels drawn from a discretised log-normal, and N doubling over training.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float, device: torch.device | str = "cpu") -> Tensor:
    """The n levels sigma_i = (sigma_min^(1/rho) + (i-1)/(n-1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho, ascending."""
    ramp = torch.linspace(0, 1, n, device=device, dtype=torch.float64)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (low + ramp * (high - low)) ** rho


def discretisation_steps(iteration: int, total: int, start: int, end: int) -> int:
    """iCT's exponential curriculum N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2 floor(s1 / s0) + 1))."""
    stage = max(1, math.floor(total / (math.log2(math.floor(end / start)) + 1)))
    return min(start * 2 ** (iteration // stage), end) + 1


def level_probabilities(sigmas: Tensor, mean: float, std: float) -> Tensor:
    """p(i) of the pair (sigma_i, sigma_(i+1)) ~ erf((ln sigma_(i+1) - P_mean) / (sqrt2 P_std)) - erf((ln sigma_i - P_mean) /
    (sqrt2 P_std)): a log-normal over the noise levels, discretised (iCT section 3.5)."""
    cdf = torch.erf((sigmas.log() - mean) / (math.sqrt(2) * std))
    mass = cdf[1:] - cdf[:-1]
    return mass / mass.sum()


def pseudo_huber(a: Tensor, b: Tensor, c: float) -> Tensor:
    """sqrt(||a - b||^2 + c^2) - c per image (iCT eq. 4): like L2 far away, like squared L2 near, never a hard edge."""
    return ((a.float() - b.float()).flatten(1).pow(2).sum(dim=1) + c * c).sqrt() - c


def boundary_scalings(sigma: Tensor, sigma_min: float, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) of the consistency parameterisation (Song et al. 2023, appendix C), for (B,) sigmas."""
    c_skip = sigma_data ** 2 / ((sigma - sigma_min) ** 2 + sigma_data ** 2)
    c_out = sigma_data * (sigma - sigma_min) / (sigma ** 2 + sigma_data ** 2).sqrt()
    c_in = 1 / (sigma ** 2 + sigma_data ** 2).sqrt()
    return c_skip, c_out, c_in


def sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """The levels multistep sampling visits, from sigma_max down: `steps` of the Karras grid of steps + 1 levels
    (the last, sigma_min, is where f returns its input)."""
    return karras_sigmas(steps + 1, sigma_min, sigma_max, rho).flip(0)[:-1].tolist()


def sample_consistency(
    f: Callable[[Tensor, Tensor], Tensor], noise: Tensor, sigmas: list[float], sigma_min: float,
    draw: Callable[[], Tensor], on_step: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = f(sigma_0 z, sigma_0), then at each
    later level sigma, x = f(x + sqrt(sigma^2 - sigma_min^2) z', sigma) with fresh noise z' from `draw()`."""
    x = noise * sigmas[0]
    for index, sigma in enumerate(sigmas):
        if index:
            x = x + math.sqrt(sigma ** 2 - sigma_min ** 2) * draw()
        x = f(x, x.new_full(x.shape[:1], sigma))  # x.shape, not len(x): a traced graph keeps its batch size free
        if on_step is not None:
            on_step(x)
    return x
