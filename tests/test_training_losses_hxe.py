"""HXE (Bertinetto et al. 2020) on the DAG: hand-computed values on the five-node DAG, and the paper's tree formula,
implemented directly from parent pointers, on trees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dag_fixtures import R_DAG, A, B, C, D, E
from hcebench.training.losses import hce_stable, make_loss
from hcebench.training.losses.hxe import hxe_targets

P = torch.tensor([0.10, 0.20, 0.30, 0.15, 0.25], dtype=torch.float64)
LOGITS = torch.log(P)  # softmax(log p) == p
HALF = math.log(2.0)  # alpha = ln 2: every level halves the weight


def batch(*targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    return LOGITS.expand(len(targets), -1).clone(), torch.tensor(targets)


def test_hand_computed_on_the_five_node_dag():
    # Aggregated masses P(j) = sum of p over desc(j): A 1.00, B 0.20+0.15+0.25 = 0.60, C 0.30+0.25 = 0.55,
    # D 0.15, E 0.25. alpha = ln 2, so a node at depth d on its path weighs 2^-d.
    hxe = make_loss("hxe", R_DAG, settings={"alpha": HALF})
    # D: one path D -> B -> A; terms 1/4 log(P(D)/P(B)) + 1/2 log(P(B)/P(A)) + 1 log P(A)
    #    = 1/4 log 0.15 + 1/4 log 0.60 (+ 0): (1.897120 + 0.510826) / 4 = 0.601986
    z, y = batch(D)
    assert hxe(z, y).item() == pytest.approx(-(math.log(0.15) + math.log(0.60)) / 4, abs=1e-12)
    assert hxe(z, y).item() == pytest.approx(0.6019864022, abs=1e-9)
    # E has two parents: paths E -> B -> A and E -> C -> A, averaged:
    #    1/4 log 0.25 + 1/8 log 0.60 + 1/8 log 0.55 + 1/2 log 1 -> 0.346574 + 0.063853 + 0.074730 = 0.485156
    z, y = batch(E)
    assert hxe(z, y).item() == pytest.approx(0.4851564183, abs=1e-9)
    # B (internal): path B -> A; 1/2 log(P(B)/P(A)) + 1 log P(A) = 1/2 log 0.60 -> 0.255413
    z, y = batch(B)
    assert hxe(z, y).item() == pytest.approx(-math.log(0.60) / 2, abs=1e-12)
    # C: 1/2 log 0.55 -> 0.298919; A (the root, P = 1): 0
    z, y = batch(C, A)
    assert hxe(z, y).item() == pytest.approx((-math.log(0.55) / 2 + 0.0) / 2, abs=1e-12)


def test_target_matrix_by_hand():
    # Rows: the label's coefficients on log P of itself and its ancestors (columns A..E); each sums to 1.
    expected = np.array(
        [
            [1, 0, 0, 0, 0],
            [1 / 2, 1 / 2, 0, 0, 0],
            [1 / 2, 0, 1 / 2, 0, 0],
            [1 / 2, 1 / 4, 0, 1 / 4, 0],
            [1 / 2, 1 / 8, 1 / 8, 0, 1 / 4],
        ]
    )
    assert np.allclose(hxe_targets(R_DAG, HALF), expected, atol=1e-12)


def test_alpha_zero_is_hce():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 5, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (40,), generator=g)
    hxe = make_loss("hxe", R_DAG, settings={"alpha": 0.0})(z, y)
    assert hxe.item() == pytest.approx(hce_stable(z, y, R_DAG).item(), abs=1e-9)


def test_mass_on_subtypes_of_an_internal_label_is_free():
    # A cell labelled B pays nothing for moving B's mass to its subtypes D and E (P(B) and P(A) do not change).
    hxe = make_loss("hxe", R_DAG, settings={"alpha": 0.3})
    moved = torch.log(torch.tensor([[0.10, 0.0001, 0.30, 0.2999, 0.30]], dtype=torch.float64))
    assert hxe(moved, torch.tensor([B])).item() == pytest.approx(hxe(*batch(B)).item(), abs=1e-9)
    # but not for moving it to C, outside B's subtree
    outside = torch.log(torch.tensor([[0.10, 0.0001, 0.4999, 0.15, 0.25]], dtype=torch.float64))
    assert hxe(outside, torch.tensor([B])).item() > hxe(*batch(B)).item() + 0.1


# -- the paper's tree formula, implemented directly ------------------------------------------------------------
# A tree of labels by parent pointer (None: a root). Internal labels are outputs too.
TREE = {0: None, 1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 3, 9: 3, 10: 6}


def tree_reachability(parent: dict) -> np.ndarray:
    k = len(parent)
    r = np.eye(k, dtype=np.uint8)
    for node in parent:
        up = parent[node]
        while up is not None:
            r[up, node] = 1
            up = parent[up]
    return r


def subtree_mass(parent: dict, p: np.ndarray, node: int) -> float:
    children = [c for c, up in parent.items() if up == node]
    return p[node] + sum(subtree_mass(parent, p, c) for c in children)


def paper_hxe(parent: dict, p: np.ndarray, y: int, alpha: float, depth_offset: int = 0) -> float:
    """-sum_l exp(-alpha h(C^(l))) log(P(C^(l)) / P(C^(l+1))) along the one path of the tree, P(above root) = 1,
    h = distance from the (paper's) root; ``depth_offset`` = 1 puts a virtual root above the label roots."""
    path = [y]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    masses = [subtree_mass(parent, p, c) for c in path] + [1.0]
    top = len(path) - 1
    return -sum(
        math.exp(-alpha * (top - level + depth_offset)) * math.log(masses[level] / masses[level + 1])
        for level in range(len(path))
    )


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_matches_the_paper_on_a_tree(alpha):
    r = tree_reachability(TREE)
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(0, 2, (len(TREE), len(TREE))))
    y = torch.arange(len(TREE))
    ours = make_loss("hxe", r, settings={"alpha": alpha})
    per_cell = [ours(z[i : i + 1], y[i : i + 1]).item() for i in range(len(TREE))]
    p = torch.softmax(z, dim=1).numpy()
    direct = [paper_hxe(TREE, p[i], i, alpha) for i in range(len(TREE))]
    assert per_cell == pytest.approx(direct, rel=1e-6)  # the target matrix is a float32 buffer


def test_matches_the_paper_with_leaf_classes_only():
    # The paper's own setting: only leaves are classes. Internal labels with no probability make P(node) the sum
    # over the leaves below, and the loss of every leaf cell the paper's.
    r = tree_reachability(TREE)
    leaves = [n for n in TREE if r[n].sum() == 1]
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, len(TREE))
    z[[n for n in TREE if n not in leaves]] = -1e4  # exp underflows to exactly 0 in float64
    p_leaves = np.zeros(len(TREE))
    p_leaves[leaves] = np.exp(z[leaves]) / np.exp(z[leaves]).sum()  # the paper's softmax over leaf classes
    ours = make_loss("hxe", r, settings={"alpha": 0.5})
    for leaf in leaves:
        got = ours(torch.tensor(z)[None], torch.tensor([leaf])).item()
        assert got == pytest.approx(paper_hxe(TREE, p_leaves, leaf, 0.5), rel=1e-6)


def test_a_forest_is_the_paper_under_a_virtual_root_up_to_exp_minus_alpha():
    # Two trees side by side: the paper would hang them under a virtual root; every term then sits one level
    # deeper, so its loss is exactly exp(-alpha) times ours (the constant factor the docstring states).
    forest = {0: None, 1: 0, 2: 0, 3: None, 4: 3, 5: 4}
    r = tree_reachability(forest)
    z = torch.tensor(np.random.default_rng(3).normal(0, 1.5, (1, 6))).expand(6, -1)
    alpha = 0.4
    ours = make_loss("hxe", r, settings={"alpha": alpha})
    p = torch.softmax(z[0], dim=0).numpy()
    for y in range(6):
        got = ours(z[y : y + 1], torch.tensor([y])).item()
        assert math.exp(-alpha) * got == pytest.approx(
            paper_hxe(forest, p, y, alpha, depth_offset=1), rel=1e-6
        )


def test_paths_of_a_diamond_are_averaged():
    # A=0, B=1, C=2, D=3 with A -> B, A -> C, B -> D, C -> D: D's two paths (D, B, A) and (D, C, A) weigh the same,
    # so T[D] splits B and C evenly: D 1/4, B 1/8, C 1/8, A 1/2. With one more level on one side (A -> C -> X -> D)
    # the depths differ per path and the coefficients are averaged too.
    r = np.eye(4, dtype=np.uint8)
    r[0, 1:] = 1
    r[1, 3] = r[2, 3] = 1
    t = hxe_targets(r, HALF)
    assert t[3].tolist() == pytest.approx([1 / 2, 1 / 8, 1 / 8, 1 / 4])
    # uneven: A=0, B=1, C=2, X=3, D=4 with A->B->D and A->C->X->D. Paths (D,B,A) m=2 and (D,X,C,A) m=3:
    # path 1 coefficients D 1/4, B 1/4, A 1/2; path 2: D 1/8, X 1/8, C 1/4, A 1/2; averaged:
    r = np.eye(5, dtype=np.uint8)
    for a, b in [(0, 1), (0, 2), (2, 3), (1, 4), (3, 4), (0, 3), (0, 4), (2, 4)]:
        r[a, b] = 1
    t = hxe_targets(r, HALF)
    assert t[4].tolist() == pytest.approx([1 / 2, 1 / 8, 1 / 8, 1 / 16, 3 / 16])
    assert t.sum(axis=1) == pytest.approx(np.ones(5))
