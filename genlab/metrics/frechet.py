"""The Fréchet distance between two Gaussians fitted to feature sets: FID's formula.

||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The eigenvalues of S1 S2 are real
and non-negative for covariance matrices, so tr((S1 S2)^(1/2)) is the sum of their square roots.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of (N, D) features, in float64."""
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    diff = mu1 - mu2
    sqrt_trace = torch.linalg.eigvals(sigma1 @ sigma2).real.clamp(min=0).sqrt().sum()
    return float(diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * sqrt_trace)


def frechet_distance_of_features(features1: Tensor, features2: Tensor) -> float:
    return frechet_distance(*gaussian_moments(features1), *gaussian_moments(features2))
