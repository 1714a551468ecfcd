"""HACE: HCE's prediction aggregation with ancestral label smoothing (Chan, D'Ascenzo, Cultrera di Montesano,
arXiv 2605.06274, 2026; the HCE authors' follow-up).

We could not read the paper (not among the stored documents, pages or code); this is our reading of the loss as
issue 12 words it: "prediction aggregation (HCE's propagation through R) plus ancestral label smoothing (a share
epsilon of the target spread over the ancestors of y in the label set)". Check it against the paper before
quoting a result as theirs.

    P(j)  = sum_i R[j, i] p_i                                    aggregated prediction (HCE's propagation)
    t_y   = (1 - eps) * onehot(y) + eps * uniform(anc*(y))       anc*(y): strict ancestors of y in the label set
    l     = -sum_j t_y[j] log P(j)
          = -(1 - eps) log P(y) - eps / |anc*(y)| * sum_{a in anc*(y)} log P(a)

A label without ancestors in the set (a root) keeps its whole target (``t_y = onehot(y)``). ``eps = 0`` is HCE's
stable form. DAG: ``anc*(y)`` is every strict ancestor, over all parents, each counted once. Internal-node labels:
``P(y)`` already includes every subtype of ``y``, so mass on subtypes is free, as in HCE.

Unlike flat label smoothing this does not cap confidence: every ancestor's subtree contains ``y``'s, so putting all
the mass in ``desc(y)`` zeroes every term. The smoothing instead softens the gradient of a wrong prediction: mass
that leaves ``desc(y)`` but stays under an ancestor (a "better mistake") is penalised less than mass that leaves
every ancestor. Prediction: a softmax over the labels, decoded by argmax like HCE. Implemented as the aggregated
cross-entropy of ``hcebench.training.losses.aggregated`` with target matrix ``hace_targets``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcebench.errors import ConfigError
from hcebench.training.losses.aggregated import AggregatedTargetLoss
from hcebench.training.losses.shared import reachability_array

FORMULA = "−(1−ε) log P(y) − ε/|anc*(y)| Σ_{a ∈ anc*(y)} log P(a),  P(j) = Σ_i R[j, i] p_i  (our reading)"
REFERENCE = (
    "Chan, D'Ascenzo, Cultrera di Montesano, arXiv 2605.06274 (2026); definition as issue 12 words it, "
    "not checked against the paper"
)


@dataclass
class Hyperparameters:
    # Share of the target moved from the label to its ancestors. 0 = HCE; like label smoothing's 0.1 by default;
    # larger values weigh "right branch, wrong leaf" nearer to right. Must be < 1 (1 would ignore the label).
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and 0 <= self.epsilon < 1):
            raise ConfigError(f"losses.hace.epsilon must be a number in [0, 1), got {self.epsilon!r}")


def hace_targets(reachability, epsilon: float) -> np.ndarray:
    """``T`` (``K x K``, rows sum to 1): ``1 - eps`` on the label, ``eps`` spread evenly over its strict ancestors;
    a root keeps all of it."""
    r = np.asarray(reachability).astype(bool)
    k = r.shape[0]
    strict_ancestors = r.T & ~np.eye(k, dtype=bool)  # [y, a]: a is a strict ancestor of y
    n = strict_ancestors.sum(axis=1)
    targets = np.eye(k) * np.where(n > 0, 1.0 - epsilon, 1.0)[:, None]
    targets += epsilon * strict_ancestors / np.maximum(n, 1)[:, None]
    return targets


def build(reachability, class_weights, hp: Hyperparameters) -> AggregatedTargetLoss:
    r = reachability_array(reachability)
    return AggregatedTargetLoss(
        r, hace_targets(r, hp.epsilon), class_weights, description=f"hace, epsilon={hp.epsilon:g}"
    )
