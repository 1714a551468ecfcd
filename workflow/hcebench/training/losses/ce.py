"""Cross-entropy (CE): the flat baseline every hierarchy-aware loss is compared with.

    CE    l = -log softmax(z)_y

Registry entry ``ce``: no hyperparameters, no hierarchy (``reachability`` is accepted and ignored, so every
loss is built the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from hcebench.training.losses.shared import (
    as_weight,
    check_inputs,
    check_reduction,
    full_precision,
    upcast,
)

FORMULA = "−log p_y"
REFERENCE = "softmax cross-entropy; the baseline of Cultrera di Montesano et al., Nat. Comput. Sci. 2026"


@dataclass
class Hyperparameters:
    """CE has none."""


def cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """CE ``-log softmax(z)_y``, reduced like ``F.cross_entropy`` (class-weighted mean by default).

    ``logits``: ``(B, K)``; ``target``: ``(B,)`` integer label indices; ``weight``: ``(K,)`` class weights.
    bf16/fp16 logits are upcast to float32; the result is float32 (float64 for float64 input).
    """
    check_inputs(logits, target, None, weight)
    with full_precision(logits):
        z = upcast(logits)
        w = None if weight is None else weight.to(device=z.device, dtype=z.dtype)
        return F.cross_entropy(z, target.long(), weight=w, reduction=reduction)


class CrossEntropyLoss(nn.Module):
    """``cross_entropy`` as a module; the class weights are a buffer and follow ``.to(device)``."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | np.ndarray | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("weight", as_weight(weight, None))
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, self.weight, self.reduction)

    def extra_repr(self) -> str:
        return f"weighted={self.weight is not None}, reduction={self.reduction!r}"


def build(reachability, class_weights, hp: Hyperparameters) -> CrossEntropyLoss:
    """The registry's constructor: ``reachability`` is ignored."""
    return CrossEntropyLoss(class_weights)
