"""HACE (our reading of Chan et al. 2026): HCE's aggregation with ancestral label smoothing, by hand on the
five-node DAG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dag_fixtures import R_DAG, A, B, D, E
from hcebench.training.losses import hce_stable, make_loss
from hcebench.training.losses.aggregated import aggregated_cross_entropy
from hcebench.training.losses.hace import hace_targets

P = torch.tensor([0.10, 0.20, 0.30, 0.15, 0.25], dtype=torch.float64)
LOGITS = torch.log(P)


def batch(*targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    return LOGITS.expand(len(targets), -1).clone(), torch.tensor(targets)


def test_hand_computed_on_the_five_node_dag():
    # P(A) = 1, P(B) = 0.60, P(C) = 0.55, P(D) = 0.15, P(E) = 0.25; epsilon = 0.3.
    hace = make_loss("hace", R_DAG, settings={"epsilon": 0.3})
    # E has strict ancestors A, B, C (over both parents): 0.7 on E, 0.1 on each.
    #   -(0.7 log 0.25 + 0.1 (log 1 + log 0.60 + log 0.55)) = 0.970406 + 0.110866 = 1.081272
    assert hace(*batch(E)).item() == pytest.approx(1.0812723152, abs=1e-7)
    # D: ancestors A, B: -(0.7 log 0.15 + 0.15 log 0.60 + 0.15 log 1) = 1.327984 + 0.076624 = 1.404608
    assert hace(*batch(D)).item() == pytest.approx(1.4046078330, abs=1e-7)
    # B (internal): ancestor A only: -(0.7 log 0.60 + 0.3 log 1) = 0.357578
    assert hace(*batch(B)).item() == pytest.approx(-0.7 * math.log(0.60), abs=1e-7)
    # A (the root): nothing to smooth towards, -log P(A) = 0
    assert hace(*batch(A)).item() == pytest.approx(0.0, abs=1e-7)


def test_target_matrix_by_hand():
    t = hace_targets(R_DAG, 0.3)
    expected = np.array(
        [
            [1.0, 0, 0, 0, 0],
            [0.3, 0.7, 0, 0, 0],
            [0.3, 0, 0.7, 0, 0],
            [0.15, 0.15, 0, 0.7, 0],
            [0.1, 0.1, 0.1, 0, 0.7],
        ]
    )
    assert np.allclose(t, expected, atol=1e-12)


def test_epsilon_zero_is_hce_and_smoothing_never_exceeds_it():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 5, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (60,), generator=g)
    hce = hce_stable(z, y, R_DAG, reduction="none")
    r = torch.as_tensor(R_DAG).double()
    plain = aggregated_cross_entropy(z, y, r, hace_targets(R_DAG, 0.0), reduction="none")
    assert torch.allclose(plain, hce, atol=1e-9)
    smoothed = aggregated_cross_entropy(z, y, r, hace_targets(R_DAG, 0.5), reduction="none")
    assert torch.all(smoothed <= hce + 1e-9)  # every ancestor's subtree holds at least y's mass
    assert torch.any(smoothed < hce - 1e-3)


def test_a_better_mistake_costs_less():
    # A cell labelled D: mass moved from D to its sibling E (still under B) costs less than mass moved to C (index
    # 2, outside B): P(B) = 0.90 against 0.15, P(A) = 1 in both.
    hace = make_loss("hace", R_DAG, settings={"epsilon": 0.3})
    to_sibling = torch.log(torch.tensor([[0.05, 0.05, 0.05, 0.05, 0.80]], dtype=torch.float64))
    to_other_branch = torch.log(torch.tensor([[0.05, 0.05, 0.80, 0.05, 0.05]], dtype=torch.float64))
    y = torch.tensor([D])
    assert hace(to_sibling, y).item() < hace(to_other_branch, y).item()
    # HCE (epsilon = 0) cannot tell the two apart: P(D) = 0.05 in both
    hce = make_loss("hace", R_DAG, settings={"epsilon": 0.0})
    assert hce(to_sibling, y).item() == pytest.approx(hce(to_other_branch, y).item(), abs=1e-9)
