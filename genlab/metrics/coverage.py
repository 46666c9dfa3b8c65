"""Class coverage of generated samples, read from a domain classifier: mode collapse made visible.

A GAN that draws only 1s and 7s can score a fine FID on a small sample yet covers two of ten
classes; the histogram of predicted classes and its entropy show that directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.errors import ConfigError


@dataclass
class ClassCoverage:
    """How generated samples spread over the classes.

    counts: samples per predicted class (argmax), (num_classes,) int64.
    entropy: of the predicted-class histogram, in nats; log(num_classes) when all classes are equal.
    normalized_entropy: entropy / log(num_classes), 0 (one class) to 1 (all equal).
    confident_share: share of samples whose top class probability is >= the threshold.
    classes_covered: classes that receive at least one confident prediction.
    """

    counts: Tensor
    entropy: float
    normalized_entropy: float
    confident_share: float
    classes_covered: int

    @property
    def num_classes(self) -> int:
        return len(self.counts)


def class_coverage(probabilities: Tensor, threshold: float = 0.9) -> ClassCoverage:
    """Coverage measures from (N, C) classifier probabilities of generated samples."""
    if probabilities.ndim != 2 or probabilities.shape[1] < 2 or len(probabilities) == 0:
        raise ConfigError(f"expected (N, C >= 2) class probabilities, got shape {tuple(probabilities.shape)}")
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"coverage_threshold={threshold} is not valid: it must lie in (0, 1]")
    num_classes = probabilities.shape[1]
    top, predicted = probabilities.detach().cpu().max(dim=1)  # compared in their own dtype: 0.9 >= 0.9
    counts = torch.bincount(predicted, minlength=num_classes)
    shares = counts.double() / counts.sum()
    entropy = float(-torch.xlogy(shares, shares).sum())
    confident = top >= threshold
    return ClassCoverage(
        counts=counts,
        entropy=entropy,
        normalized_entropy=entropy / math.log(num_classes),
        confident_share=float(confident.double().mean()),
        classes_covered=int(predicted[confident].unique().numel()),
    )
