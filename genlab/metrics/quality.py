"""Sample-quality measures as functions of feature tensors (and class probabilities for IS).

Each takes (N, D) features of real and generated images from any extractor in
genlab/metrics/features.py, so each can be checked on hand-made tensors without a network.
Spreads over subsets or splits are population standard deviations, as the reference codes report.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.metrics.frechet import frechet_distance_of_features


class MeanStd(NamedTuple):
    mean: float
    std: float


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def _check_pair(real: Tensor, fake: Tensor) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(f"expected (N, D) features of one width, got {tuple(real.shape)} and {tuple(fake.shape)}")


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets (Heusel et al. 2017).

    With fewer samples than dimensions (a quick FID of a few hundred 2048-d features) the
    covariances are low rank, and tr((S1 S2)^(1/2)) equals the nuclear norm of X1 X2^T, where
    S = X^T X and X are the centred features / sqrt(N - 1): an (N1, N2) SVD instead of a
    (D, D) eigen-decomposition. Otherwise genlab/metrics/frechet.py computes it.
    """
    _check_pair(real, fake)
    if max(len(real), len(fake)) >= real.shape[1]:
        return frechet_distance_of_features(real, fake)
    x1, x2 = (f.double() - f.double().mean(0) for f in (real, fake))
    x1, x2 = x1 / math.sqrt(len(real) - 1), x2 / math.sqrt(len(fake) - 1)
    diff = real.double().mean(0) - fake.double().mean(0)
    sqrt_trace = torch.linalg.svdvals(x1 @ x2.T).sum()
    return float(diff.dot(diff) + x1.square().sum() + x2.square().sum() - 2 * sqrt_trace)


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, coef: float = 1.0) -> Tensor:
    """k(x, y) = (x . y / D + coef)^degree for all pairs: KID's kernel, (N, M)."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """The unbiased estimate of squared MMD under the cubic polynomial kernel; it can be negative.

    mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j).
    """
    x, y = x.double(), y.double()
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> MeanStd:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 averaged over random subsets.

    Each of `subsets` draws takes `subset_size` features of each set without replacement,
    seeded so two evaluations of one checkpoint agree.
    """
    _check_pair(real, fake)
    if subsets < 1:
        raise ConfigError(f"kid_subsets={subsets} is not valid: KID needs 1 subset at least")
    if not 2 <= subset_size <= min(len(real), len(fake)):
        raise ConfigError(
            f"kid_subset_size={subset_size} must lie in [2, {min(len(real), len(fake))}] "
            f"(the smaller feature set): lower kid_subset_size or raise n_samples"
        )
    generator = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [
            mmd2_unbiased(
                real[torch.randperm(len(real), generator=generator)[:subset_size].to(real.device)],
                fake[torch.randperm(len(fake), generator=generator)[:subset_size].to(fake.device)],
            )
            for _ in range(subsets)
        ]
    )
    return MeanStd(float(values.mean()), float(values.std(correction=0)))


def inception_score(probabilities: Tensor, splits: int = 10) -> MeanStd:
    """exp(E_x KL(p(y|x) || p(y))) per split (Salimans et al. 2016), from (N, C) class probabilities.

    1 when every prediction is the same (or uniform); C when each is confident and the classes
    are used equally. The N samples are cut into `splits` contiguous, near-equal parts.
    """
    if probabilities.ndim != 2:
        raise ConfigError(f"expected (N, C) class probabilities, got shape {tuple(probabilities.shape)}")
    if not 1 <= splits <= len(probabilities):
        raise ConfigError(f"is_splits={splits} must lie in [1, {len(probabilities)}] (the number of generated images):"
                          " lower is_splits or raise n_samples")
    scores = []
    for part in torch.tensor_split(probabilities.double(), splits):
        marginal = part.mean(0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(1)
        scores.append(kl.mean().exp())
    values = torch.stack(scores)
    return MeanStd(float(values.mean()), float(values.std(correction=0)))


def knn_radii(features: Tensor, k: int, chunk_size: int) -> Tensor:
    """Distance from each feature to its k-th nearest neighbour in the same set (itself excluded)."""
    return torch.cat(
        [torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(chunk_size)]
    )


def inside_manifold(queries: Tensor, support: Tensor, radii: Tensor, chunk_size: int) -> Tensor:
    """For each query: does it lie in some support point's k-NN ball? (N,) booleans."""
    return torch.cat(
        [(torch.cdist(chunk, support) <= radii[None]).any(dim=1) for chunk in queries.split(chunk_size)]
    )


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk_size: int = 1024) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls reaching every point's k-th nearest neighbour.
    Precision: the share of generated features inside the real manifold (are samples realistic?).
    Recall: the share of real features inside the generated manifold (is the data covered?).
    Distances are taken `chunk_size` rows at a time, so memory grows with chunk_size * N.
    """
    _check_pair(real, fake)
    if not 1 <= k < min(len(real), len(fake)):
        raise ConfigError(f"pr_k={k} must lie in [1, {min(len(real), len(fake)) - 1}] (the smaller image set's size - 1):"
                          " lower pr_k or raise n_samples")
    real, fake = real.double(), fake.double()
    precision = inside_manifold(fake, real, knn_radii(real, k, chunk_size), chunk_size)
    recall = inside_manifold(real, fake, knn_radii(fake, k, chunk_size), chunk_size)
    return PrecisionRecall(float(precision.double().mean()), float(recall.double().mean()))
