"""The training losses of the two families, as pure functions of tensors (formulas in the docstrings)."""

from __future__ import annotations

from torch import Tensor


def denoising_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """DDPM's simple loss, E || target - net(x_t, t) ||^2, averaged over pixels (Ho et al. 2020, eq. 14):
    target = eps (eps-prediction) or v = sqrt(abar) eps - sqrt(1 - abar) x_0 (v-prediction)."""
    return (prediction.float() - target.float()).pow(2).mean()


def flow_matching_loss(prediction: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
    """Conditional flow matching, E || v(x_t, t) - (x_1 - x_0) ||^2, averaged over pixels (Lipman et al. 2022, eq. 23)."""
    return (prediction.float() - (x1 - x0).float()).pow(2).mean()
