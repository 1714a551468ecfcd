"""Soft labels (Bertinetto et al. 2020) on the DAG: the climb distance and targets by hand on the five-node DAG,
and the paper's LCA-height targets on a tree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dag_fixtures import R_DAG, A, B, D, E
from hcebench.training.losses import make_loss
from hcebench.training.losses.soft_labels import climb_distances, soft_label_targets

P = torch.tensor([0.10, 0.20, 0.30, 0.15, 0.25], dtype=torch.float64)
LOGITS = torch.log(P)
LOG_P = [math.log(v) for v in P.tolist()]
BETA = 2 * math.log(2.0)  # with d_max = 2: weight 2^-d


def batch(*targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    return LOGITS.expand(len(targets), -1).clone(), torch.tensor(targets)


def test_climb_distances_by_hand():
    # d(y, j): Hasse edges climbed from y to the nearest label that is an ancestor of both y and j.
    # A: everything is below A -> 0.  B: D, E below B -> 0; A and C need the climb to A -> 1.
    # C: E below C -> 0; A, B, D need the climb to A -> 1.
    # D: B is a common ancestor of D and E -> 1 step; A and C need D -> B -> A -> 2.
    # E (parents B and C): B, C and D are reached with one step (D via B); A needs 2.
    expected = [
        [0, 0, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [1, 1, 0, 1, 0],
        [2, 1, 2, 0, 1],
        [2, 1, 1, 1, 0],
    ]
    assert climb_distances(R_DAG).tolist() == expected


def test_hand_computed_on_the_five_node_dag():
    # d_max = 2 and beta = 2 ln 2, so the weight of label j is 2^-d(y, j), normalised per row.
    loss = make_loss("soft_labels", R_DAG, settings={"beta": BETA})
    # D: d = (2, 1, 2, 0, 1) -> (1/4, 1/2, 1/4, 1, 1/2) / 2.5 = (0.1, 0.2, 0.1, 0.4, 0.2)
    #   -(0.1 log 0.1 + 0.2 log 0.2 + 0.1 log 0.3 + 0.4 log 0.15 + 0.2 log 0.25) = 1.708650
    q_d = [0.1, 0.2, 0.1, 0.4, 0.2]
    assert soft_label_targets(R_DAG, BETA)[D] == pytest.approx(q_d, abs=1e-12)
    assert loss(*batch(D)).item() == pytest.approx(
        -sum(q * lp for q, lp in zip(q_d, LOG_P, strict=True)), abs=1e-7
    )
    assert loss(*batch(D)).item() == pytest.approx(1.7086502384, abs=1e-7)
    # B (internal): its subtypes D and E are at distance 0, like B itself: (1/2, 1, 1/2, 1, 1) / 4
    #   -(log 0.1 / 8 + log 0.2 / 4 + log 0.3 / 8 + log 0.15 / 4 + log 0.25 / 4) = 1.661533
    assert loss(*batch(B)).item() == pytest.approx(1.6615328018, abs=1e-7)
    # E (two parents): d = (2, 1, 1, 1, 0) -> (1, 2, 2, 2, 4) / 11: close to both branches. 1.569893
    assert loss(*batch(E)).item() == pytest.approx(1.5698930855, abs=1e-7)
    # A (the root, everything below it): the uniform target, -mean log p = 1.679882
    assert loss(*batch(A)).item() == pytest.approx(-sum(LOG_P) / 5, abs=1e-7)


def test_large_beta_is_ce_at_leaves_and_subtree_average_at_internal_labels():
    z = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hard = make_loss("soft_labels", R_DAG, settings={"beta": 500.0})
    log_p = torch.log_softmax(z, dim=1)
    assert hard(z[:1], torch.tensor([D])).item() == pytest.approx(-log_p[0, D].item(), abs=1e-7)
    # B's target at beta -> inf: even over B, D, E
    expected = -(log_p[1, B] + log_p[1, D] + log_p[1, E]).item() / 3
    assert hard(z[1:2], torch.tensor([B])).item() == pytest.approx(expected, abs=1e-7)


def test_targets_rows_are_distributions_with_the_subtree_on_top():
    q = soft_label_targets(R_DAG, 3.0)
    assert q.sum(axis=1) == pytest.approx(np.ones(5))
    for y in range(5):
        below = R_DAG[y].astype(bool)
        assert np.allclose(q[y, below], q[y].max())  # y and its subtypes share the top weight
        assert np.all(q[y, ~below] < q[y].max())


def test_disconnected_labels_are_one_step_past_the_largest_distance():
    # Two roots: 0 -> 1 and 2 alone. d(1, 0) = 1; nothing is shared with 2, so 1 + 1 = 2.
    r = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert climb_distances(r).tolist() == [[0, 0, 2], [1, 0, 2], [2, 2, 0]]


# -- the paper on a tree ----------------------------------------------------------------------------------------
# Balanced: root 0; 1, 2 below it; leaves 3, 4 under 1 and 5, 6, 7 under 2 (internal labels are labels too).
TREE = {0: None, 1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2}
LEAVES = [3, 4, 5, 6, 7]


def tree_reachability() -> np.ndarray:
    r = np.eye(len(TREE), dtype=np.uint8)
    for node in TREE:
        up = TREE[node]
        while up is not None:
            r[up, node] = 1
            up = TREE[up]
    return r


def lca_height(a: int, b: int) -> int:
    """The paper's distance: height of the lowest common ancestor (leaves at height 0; this tree is balanced)."""

    def path(n):
        out = [n]
        while TREE[out[-1]] is not None:
            out.append(TREE[out[-1]])
        return out

    above_b = set(path(b))
    return next(i for i, n in enumerate(path(a)) if n in above_b)


def test_matches_the_paper_between_leaves_of_a_balanced_tree():
    r = tree_reachability()
    dist = climb_distances(r)
    for a in LEAVES:
        for b in LEAVES:
            assert dist[a, b] == lca_height(a, b)
    # The paper's soft labels over its classes (the leaves), distances divided by the largest (ours too): our
    # target restricted to the leaves and renormalised is the same distribution.
    beta = 4.0
    d_leaf = np.array([[lca_height(a, b) for b in LEAVES] for a in LEAVES], dtype=float)
    paper = np.exp(-beta * d_leaf / d_leaf.max())
    paper /= paper.sum(axis=1, keepdims=True)
    ours = soft_label_targets(r, beta)[np.ix_(LEAVES, LEAVES)]
    assert ours / ours.sum(axis=1, keepdims=True) == pytest.approx(paper, abs=1e-12)
