"""Hierarchical cross-entropy with per-level weights (HXE), Bertinetto et al., "Making Better Mistakes", CVPR 2020,
generalised from their tree of leaf classes to the label set's DAG with labels at internal nodes.

The paper (a tree; classes are its leaves; ``P(C)`` = the summed probability of the leaves under node ``C``):

    l(C) = -sum_{l=0}^{H-1} lambda(C^(l)) log P(C^(l) | C^(l+1)),   P(C^(l) | C^(l+1)) = P(C^(l)) / P(C^(l+1))
    lambda(C) = exp(-alpha h(C))

along the path ``C = C^(0) -> C^(1) -> ... -> C^(H) = root``. The weight of ``C^(l)`` decays with its distance
``h`` from the root ("discounting information down the hierarchy"; the authors' code, fiveai/making-better-mistakes,
weights a node by ``exp(-alpha * its distance from the root)``), so coarse decisions weigh more, and ``alpha = 0``
is plain CE (the sum telescopes to ``-log P(C)``); we follow that.

Our generalisation, in three steps:

1. *Probabilities*: ``P(j) = sum_i R[j, i] p_i``, the softmax mass of ``desc(j)`` as HCE aggregates it (the label
   itself included, since internal labels are outputs too). When internal labels get no mass this is the paper's
   sum over the leaves below.
2. *One root path*: for a Hasse-diagram path ``y = c_0 -> c_1 -> ... -> c_m`` (each ``c_{l+1}`` a direct
   parent of ``c_l`` within the label set, ``c_m`` a label without parents), node ``c_l`` sits at depth
   ``m - l`` on that path and the paper's sum, with ``P(c_{m+1}) = 1`` above the top, is

       l_path = -sum_{l=0}^{m} exp(-alpha (m - l)) log(P(c_l) / P(c_{l+1}))

   which telescopes to ``-sum_l b_l log P(c_l)`` with ``b_0 = exp(-alpha m)`` and
   ``b_l = exp(-alpha (m - l)) (1 - exp(-alpha))``: coefficients that sum to 1.
3. *Every root path*: a label with several parents has several root paths; we average ``l_path`` over all of them
   (each path weighs the same). The average is again ``-sum_j T[y, j] log P(j)``, a target distribution over the
   ancestors of ``y`` (``hxe_targets``), so HXE is the aggregated cross-entropy of
   ``hcebench.training.losses.aggregated`` with that ``T``.

On a tree this is the paper's formula exactly when the label set has one root (the paper's root, ``P = 1``, whose
term vanishes). When the paper's root is a virtual node above several label roots, each of its terms is ours times
``exp(-alpha)`` (a constant factor, as is any global rescaling of the weights).

Internal-node labels: a cell labelled ``y`` pays nothing for mass on subtypes of ``y`` (only ``P(y)`` and coarser
terms appear). ``alpha = 0`` is HCE's stable form (CE for labels without subtypes). Prediction: a softmax over the
labels, decoded by argmax like CE and HCE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcebench.errors import ConfigError
from hcebench.hierarchy.hasse import hasse_edges
from hcebench.training.losses.aggregated import AggregatedTargetLoss
from hcebench.training.losses.shared import reachability_array

FORMULA = (
    "−mean over the Hasse root paths (y = c_0, …, c_m) of Σ_l exp(−α(m−l)) log(P(c_l)/P(c_{l+1})), "
    "P(j) = Σ_i R[j, i] p_i, P(c_{m+1}) = 1"
)
REFERENCE = (
    "Bertinetto et al., Making Better Mistakes: Leveraging Class Hierarchies with Deep Networks, CVPR 2020"
)


@dataclass
class Hyperparameters:
    # Decay of a level's weight with its depth below the root. 0 = HCE (CE at leaves); larger values trust the
    # fine levels less: the label 3 levels down weighs exp(−3α) (0.74 at α = 0.1, 0.22 at α = 0.5).
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.alpha, int | float) and self.alpha >= 0):
            raise ConfigError(f"losses.hxe.alpha must be a number >= 0 (0 = HCE), got {self.alpha!r}")


def hxe_targets(reachability, alpha: float) -> np.ndarray:
    """``T`` (``K x K``, rows sum to 1): HXE of a cell labelled ``y`` is ``-sum_j T[y, j] log P(j)``.

    With ``N(j)`` the number of Hasse root paths from ``j``, ``U(j)`` the sum over them of
    ``exp(-alpha * length)`` and ``D(y, j)`` the number of Hasse paths from ``y`` up to ``j``, averaging the
    telescoped per-path coefficients over the ``N(y)`` root paths of ``y`` gives

        T[y, y] = U(y) / N(y),   T[y, j] = (1 - exp(-alpha)) D(y, j) U(j) / N(y)   for a strict ancestor j.

    One pass over the labels, ancestors first; exact however many paths there are.
    """
    r = np.asarray(reachability).astype(bool)
    k = r.shape[0]
    parents: list[list[int]] = [[] for _ in range(k)]
    for parent, child in hasse_edges(r):
        parents[child].append(int(parent))
    decay = float(np.exp(-alpha))
    n_paths = np.zeros(k)  # N(j)
    discounted = np.zeros(k)  # U(j)
    paths_up = np.zeros((k, k))  # D(y, j)
    for y in np.argsort(r.sum(axis=0), kind="stable"):  # fewer ancestors first: every parent before its child
        ups = parents[y]
        n_paths[y] = n_paths[ups].sum() if ups else 1.0
        discounted[y] = decay * discounted[ups].sum() if ups else 1.0
        if ups:
            paths_up[y] = paths_up[ups].sum(axis=0)
        paths_up[y, y] = 1.0
    targets = (1.0 - decay) * paths_up * discounted[None, :] / n_paths[:, None]
    np.fill_diagonal(targets, discounted / n_paths)
    return targets


def build(reachability, class_weights, hp: Hyperparameters) -> AggregatedTargetLoss:
    r = reachability_array(reachability)
    return AggregatedTargetLoss(
        r, hxe_targets(r, hp.alpha), class_weights, description=f"hxe, alpha={hp.alpha:g}"
    )
