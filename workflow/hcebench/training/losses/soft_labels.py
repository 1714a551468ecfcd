"""Soft labels, Bertinetto et al., "Making Better Mistakes", CVPR 2020, on the label set's DAG with labels at
internal nodes.

The paper replaces the one-hot target by a distribution that decays with the hierarchy distance from the true
class, and trains with the cross-entropy against it (no aggregation: each label's own softmax output):

    q_y[j] = exp(-beta d(y, j) / d_max) / sum_k exp(-beta d(y, k) / d_max)        l = -sum_j q_y[j] log p_j

where on their tree of leaf classes ``d`` is the height of the lowest common ancestor (LCA); we divide it by the
largest distance ``d_max`` so that ``beta`` means the same on any label set. On a DAG two labels can have several
lowest common ancestors, and here labels may be internal nodes, so we define the distance from the true label's
side, in the label set's Hasse diagram:

    d(y, j) = min over common ancestors c of y and j (each label its own ancestor) of up(y, c)
    up(y, c) = edges on the shortest upward Hasse path from y to c

"How far must one climb from ``y`` before ``j`` falls under the same label?" Between two leaves of a tree whose
leaves share one depth it is the LCA's height, the paper's ``d``. Consequences, all intended:

- *Descendants of y are at distance 0* (``c = y``): a cell labelled "T cell" might be any T-cell subtype, so its
  target spreads evenly over ``y`` and every subtype in the label set, and nothing else at ``beta -> inf``. A cell
  labelled at a root with every label below it gets the uniform target (it says nothing finer).
- *Ancestors*: ``d(y, a) = up(y, a)``, so a parent is one step away; a sibling under the same parent is one step too.
- *Several parents*: the nearest common ancestor over every path is taken (``min``), so a label with two
  parents is close to both branches.
- Labels with no common ancestor (two roots' trees) are one step further than the largest distance in the set.

``d_max`` is the largest distance in the matrix. The loss's
minimum is the entropy of ``q_y``, not 0. Prediction: the softmax is trained towards ``q_y`` whose mode is the
subtree of ``y``, so argmax of the logits is the natural decoder; for internal labels it lands on ``y`` or a
subtype, which the hierarchy-corrected score counts as right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from hcebench.errors import ConfigError
from hcebench.hierarchy.hasse import hasse_edges
from hcebench.training.losses.shared import (
    as_weight,
    check_inputs,
    check_reduction,
    full_precision,
    gather_rows,
    reachability_array,
    reduce_loss,
    upcast,
)

FORMULA = "−Σ_j q_y[j] log p_j,  q_y[j] ∝ exp(−β d(y, j) / d_max),  d = climb from y to a common ancestor"
REFERENCE = (
    "Bertinetto et al., Making Better Mistakes: Leveraging Class Hierarchies with Deep Networks, CVPR 2020"
)


@dataclass
class Hyperparameters:
    # Hardness of the targets. Larger = nearer one-hot (CE); a label at normalised distance 0.1 gets exp(−0.1β) of
    # the true label's weight. On scTab's 164 labels (d_max = 8) a leaf keeps a median 80 % of its target at 20,
    # 35 % at 10 (its siblings share the rest); lower it to spread more mass over near relatives.
    beta: float = 20.0

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, int | float) and self.beta > 0):
            raise ConfigError(f"losses.soft_labels.beta must be a number > 0, got {self.beta!r}")


def climb_distances(reachability) -> np.ndarray:
    """``d(y, j)`` (``K x K``, float): Hasse edges climbed from ``y`` to the nearest label that is an ancestor of
    both ``y`` and ``j``; pairs with no common ancestor get the largest finite distance + 1. Asymmetric."""
    r = np.asarray(reachability).astype(bool)
    k = r.shape[0]
    to_parent = np.zeros((k, k), dtype=np.int64)  # [child, parent] over Hasse edges
    for parent, child in hasse_edges(r):
        to_parent[child, parent] = 1
    up = np.full((k, k), np.inf)  # up[y, c]: shortest upward path from y to its ancestor c
    np.fill_diagonal(up, 0.0)
    frontier = np.eye(k, dtype=np.int64)
    steps = 0
    while frontier.any():
        steps += 1
        frontier = ((frontier @ to_parent) > 0) & np.isinf(up)
        up[frontier] = steps
        frontier = frontier.astype(np.int64)
    below = np.where(r, 0.0, np.inf)  # [c, j]: 0 where j is c or one of its subtypes
    # min over the common ancestor c, one row at a time (K^2 memory, not K^3)
    dist = np.stack([np.min(up[y][:, None] + below, axis=0) for y in range(k)]) if k else up
    finite = np.isfinite(dist)
    dist[~finite] = (dist[finite].max() if finite.any() else 0.0) + 1.0
    return dist


def soft_label_targets(reachability, beta: float) -> np.ndarray:
    """``q`` (``K x K``, rows sum to 1): row ``y`` is the target of a cell labelled ``y``."""
    dist = climb_distances(reachability)
    scale = dist.max() if dist.max() > 0 else 1.0
    logits = -beta * dist / scale
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    return q / q.sum(axis=1, keepdims=True)


def soft_label_cross_entropy(
    logits: Tensor,
    target: Tensor,
    soft_targets: Tensor | np.ndarray,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``-sum_j q[y, j] log softmax(z)_j``, class-weighted (by the true label) mean by default.

    ``soft_targets``: ``(K, K)``, row ``y`` the target distribution of a cell labelled ``y``.
    """
    check_inputs(logits, target, soft_targets, weight, matrix_name="soft_targets")
    with full_precision(logits):
        z = upcast(logits)
        rows = gather_rows(soft_targets, target, z)
        return reduce_loss(-(rows * torch.log_softmax(z, dim=-1)).sum(dim=-1), target, weight, reduction)


class SoftLabelLoss(nn.Module):
    """``soft_label_cross_entropy`` as a module; the target matrix and class weights are buffers."""

    soft_targets: Tensor
    weight: Tensor | None

    def __init__(
        self,
        reachability,
        weight: Tensor | np.ndarray | None = None,
        beta: float = Hyperparameters.beta,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        q = soft_label_targets(reachability_array(reachability), beta)
        self.register_buffer("soft_targets", torch.as_tensor(q, dtype=torch.float32))
        self.register_buffer("weight", as_weight(weight, q.shape[0]))
        self.beta = float(beta)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return soft_label_cross_entropy(logits, target, self.soft_targets, self.weight, self.reduction)

    def extra_repr(self) -> str:
        return (
            f"soft_labels, beta={self.beta:g}, k={self.soft_targets.shape[0]}, "
            f"weighted={self.weight is not None}, reduction={self.reduction!r}"
        )


def build(reachability, class_weights, hp: Hyperparameters) -> SoftLabelLoss:
    return SoftLabelLoss(reachability, class_weights, beta=hp.beta)
