"""Does a conditional model obey its labels? Label accuracy and intra-class FID.

FID and coverage cannot tell: a model that draws a fine 3 when asked for a 7 scores as well as
one that draws the 7. Label accuracy asks the domain classifier which class each sample shows
and compares it with the class requested; intra-class FID (as StudioGAN reports it) compares
each class's samples with that class's real images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.metrics.quality import fid


def requested_labels(n: int, num_classes: int) -> Tensor:
    """The classes asked for by `genlab.generation.sample_batches`: sample i is of class i mod C."""
    return torch.arange(n) % num_classes


def label_accuracy(probabilities: Tensor, labels: Tensor) -> float:
    """Share of samples whose most probable class (argmax of (N, C) probabilities) is the requested one."""
    if probabilities.ndim != 2 or labels.shape != (len(probabilities),):
        raise ConfigError(
            f"expected (N, C) class probabilities and N labels, got {tuple(probabilities.shape)} and {tuple(labels.shape)}"
        )
    predicted = probabilities.detach().argmax(dim=1).cpu()
    return float((predicted == labels.cpu()).double().mean())


def intra_class_fid(real: Tensor, real_labels: Tensor, fake: Tensor, fake_labels: Tensor) -> float | None:
    """Mean over classes of the FID between one class's generated and real features.

    None when some class has fewer than two samples on either side (no covariance to fit).
    """
    classes = torch.unique(torch.cat([real_labels.cpu(), fake_labels.cpu()]))
    distances = []
    for k in classes:
        real_k, fake_k = real[real_labels.cpu() == k], fake[fake_labels.cpu() == k]
        if min(len(real_k), len(fake_k)) < 2:
            return None
        distances.append(fid(real_k, fake_k))
    return float(sum(distances) / len(distances))
