"""Classifier-free guidance (Ho & Salimans 2022): one network, conditional and unconditional.

Training replaces a share `label_dropout` of the labels with the "no class" token; sampling mixes
the two predictions, out = uncond + s * (cond - uncond), the paper's (1 + w) cond - w uncond with
s = 1 + w: s = 1 is the plain conditional model, s > 1 trades diversity for fidelity to the class.
The same linear mix applies to any prediction that is linear in the score: eps, v, a flow's velocity.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# predict(x, t, labels) -> the network's output for x
Predictor = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def drop_labels(labels: Tensor, dropout: float, null_label: int) -> Tensor:
    """Each label replaced by `null_label` with probability `dropout`, so one net also learns p(x)."""
    if dropout <= 0:
        return labels
    dropped = torch.rand(labels.shape, device=labels.device) < dropout
    return torch.where(dropped, torch.full_like(labels, null_label), labels)


def guided(predict: Predictor, x: Tensor, t: Tensor, labels: Tensor | None, scale: float, null_label: int) -> Tensor:
    """uncond + scale * (cond - uncond) in one batched call (2 network evaluations per image); the plain
    prediction when there are no labels or scale is 1."""
    if labels is None or scale == 1:
        return predict(x, t, labels)
    t = t.expand(len(x)) if t.dim() == 0 else t
    both = predict(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, null_label)]))
    conditional, unconditional = both.chunk(2)
    return unconditional + scale * (conditional - unconditional)
