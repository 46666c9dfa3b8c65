"""MeanFlow's math (Geng et al. 2025, "Mean Flows for One-step Generative Modeling"), as functions of tensors.

In the paper's convention, t = 0 is data and t = 1 noise: z_t = (1 - t) x + t eps, with the
instantaneous velocity v = eps - x. The net learns the *average* velocity over [r, t],

    u(z_t, r, t) = 1 / (t - r) * integral_r^t v(z_s, s) ds,

so that one step z_r = z_t - (t - r) u(z_t, r, t) jumps from t to r (one step from noise: x = eps - u(eps, 0, 1)).
Differentiating (t - r) u = integral_r^t v in t gives the MeanFlow identity (eq. 6), whose right side is the
training target, taken with a stop-gradient (eq. 10):

    u_tgt = v - (t - r) (v d_z u + d_t u),

the total derivative d/dt u(z_t, r, t) being the Jacobian-vector product of u with the tangent (v, 0, 1) in (z, r, t).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# u(z, r, t) -> the average velocity over [r, t] at z; r and t are (B,) tensors
AverageVelocity = Callable[[Tensor, Tensor, Tensor], Tensor]


def broadcast(t: Tensor, like: Tensor) -> Tensor:
    """A (B,) time as (B, 1, 1, 1) for images like `like`."""
    return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def noisy(images: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """z_t = (1 - t) x + t eps: data at t = 0, noise at t = 1."""
    t = broadcast(t, images)
    return (1 - t) * images + t * noise


def time_pairs(first: Tensor, second: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """(r, t) from two draws of the time distribution: t the larger, r the smaller where `keep` is true and
    r = t elsewhere (the paper's "ratio of r != t", Table 1a: 25% best; r = t is plain flow matching)."""
    t, r = torch.maximum(first, second), torch.minimum(first, second)
    return torch.where(keep, r, t), t


def average_velocity_target(
    u_of: Callable[[Tensor], AverageVelocity], z: Tensor, r: Tensor, t: Tensor, velocity: Tensor,
) -> Tensor:
    """u_tgt = v - (t - r) du/dt with du/dt = JVP of u at (z, r, t) along (v, 0, 1) (eq. 8-10), without a graph;
    `u_of(rows)` is u on the batch's rows `rows` (a boolean mask: a conditional net takes those rows' labels).

    The JVP is taken only where r != t: where r = t the term it multiplies is zero, and three in four
    training pairs have r = t, so this costs a quarter of a forward-mode pass, not a whole one.
    """
    target = velocity.detach().clone()
    spans = (t - r) != 0
    if bool(spans.any()):
        z_, r_, t_, v_ = z[spans], r[spans], t[spans], velocity[spans]
        with torch.no_grad():
            _, derivative = torch.func.jvp(u_of(spans), (z_, r_, t_), (v_, torch.zeros_like(r_), torch.ones_like(t_)))
        target[spans] = v_ - broadcast(t_ - r_, v_) * derivative
    return target


def guided_velocity(
    velocity: Tensor, unconditional: Tensor, conditional: Tensor | None, scale: float, mix: float, guided: Tensor,
) -> Tensor:
    """Training-time classifier-free guidance (MeanFlow section 4.2 and eq. 21 of its appendix):
    v~ = omega v + kappa u(z_t, t, t | c) + (1 - omega - kappa) u(z_t, t, t | none) on the rows `guided` (those
    whose label was kept), v elsewhere; omega = `scale`, kappa = `mix`. One-step samples then carry the guidance."""
    mixed = scale * velocity + (1 - scale - mix) * unconditional
    if conditional is not None and mix:
        mixed = mixed + mix * conditional
    return torch.where(broadcast(guided.float(), velocity) > 0, mixed, velocity)


def adaptive_weighted_loss(prediction: Tensor, target: Tensor, power: float, c: float) -> tuple[Tensor, Tensor]:
    """MeanFlow's adaptive loss weighting (eq. 22, after Geng et al. 2024): per image, sg(w) ||Delta||^2 with
    w = 1 / (||Delta||^2 + c)^p, Delta = prediction - target (p = 0: the squared L2 loss; p = 0.5: a
    pseudo-Huber loss; p = 1, the paper's choice, a robust log-like loss). Returns (the weighted mean over the batch,
    the unweighted mean squared error per pixel, to log)."""
    error = (prediction.float() - target.float()).flatten(1).pow(2).sum(dim=1)
    weight = (error.detach() + c).pow(-power)
    return (weight * error).mean(), error.detach().mean() / prediction[0].numel()


def sample_average_velocity(
    u: AverageVelocity, noise: Tensor, steps: int, on_step: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """z_r = z_t - (t - r) u(z_t, r, t) on `steps` equal intervals from t = 1 (noise) to 0: one network
    evaluation per step, and exact for any steps when u is the true average velocity (Algorithm 2)."""
    times = torch.linspace(1, 0, steps + 1, device=noise.device, dtype=torch.float64)
    z = noise
    for start, end in zip(times[:-1], times[1:]):
        t = torch.full((len(z),), float(start), device=z.device)
        r = torch.full((len(z),), float(end), device=z.device)
        z = z - float(start - end) * u(z, r, t)
        if on_step is not None:
            on_step(z)
    return z
