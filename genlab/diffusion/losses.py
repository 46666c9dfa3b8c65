"""The training losses of the two families, as pure functions of tensors (formulas in the docstrings)."""

from __future__ import annotations

from torch import Tensor

from genlab.diffusion.consistency import pseudo_huber


def denoising_loss(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """DDPM's simple loss, E || target - net(x_t, t) ||^2, averaged over pixels (Ho et al. 2020, eq. 14):
    target = eps (eps-prediction) or v = sqrt(abar) eps - sqrt(1 - abar) x_0 (v-prediction). With a `mask`
    (1 where the loss counts) E || mask * (target - net) ||^2, averaged over all pixels, as Palette's inpainting."""
    error = prediction.float() - target.float()
    return (error if mask is None else error * mask).pow(2).mean()


def flow_matching_loss(prediction: Tensor, x0: Tensor, x1: Tensor, mask: Tensor | None = None) -> Tensor:
    """Conditional flow matching, E || v(x_t, t) - (x_1 - x_0) ||^2, averaged over pixels (Lipman et al. 2022,
    eq. 23); a `mask` as in `denoising_loss`."""
    return denoising_loss(prediction, x1 - x0, mask)


def pseudo_huber_flow_loss(prediction: Tensor, x0: Tensor, x1: Tensor, c_per_pixel: float) -> Tensor:
    """Lee et al. 2024's reflow loss, as their released code computes it: E (sqrt(|| v(x_t, t) - (x_1 - x_0) ||^2
    + c^2) - c) / d, with d pixels per image and c = c_per_pixel * d (0.00054 d). Near zero error it is the
    squared error / (2 c d); far from it, || error || / d: a pair the net gets badly wrong pulls no harder than
    one it nearly gets right, where the squared error lets the worst pairs dominate each update."""
    pixels = x1[0].numel()
    return pseudo_huber(prediction, x1 - x0, c_per_pixel * pixels).mean() / pixels
