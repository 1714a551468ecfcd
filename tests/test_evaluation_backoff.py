"""hcebench.evaluation.backoff: propagated probabilities and back-off decoding."""

from __future__ import annotations

import numpy as np
import pytest
from dag_fixtures import R_DAG, B, C, D, E
from hcebench.evaluation.backoff import backoff_curve, backoff_predict
from hcebench.evaluation.propagation import propagate


# -- back-off -------------------------------------------------------------------------------------------
def test_backoff_picks_deepest_label_reaching_tau():
    probs = np.array([[0.0, 0.1, 0.0, 0.5, 0.4]])  # q: A 1, B 1.0, C 0.4, D 0.5, E 0.4
    assert propagate(probs, R_DAG)[0].tolist() == pytest.approx([1.0, 1.0, 0.4, 0.5, 0.4])
    assert backoff_predict(probs, R_DAG, 0.3).tolist() == [E]  # E (depth 3) reaches 0.3
    assert backoff_predict(probs, R_DAG, 0.45).tolist() == [D]
    assert backoff_predict(probs, R_DAG, 0.9).tolist() == [B]
    # a distribution spread over two roots abstains above their mass
    r = np.eye(2, dtype=np.uint8)
    assert backoff_predict(np.array([[0.5, 0.5]]), r, 0.6).tolist() == [-1]


def test_backoff_depth_is_monotone_in_tau():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=300)
    depth = R_DAG.astype(int).sum(axis=0) - 1
    taus = np.linspace(0.01, 1.0, 40)
    depths = np.array(
        [np.where((b := backoff_predict(probs, R_DAG, t)) >= 0, depth[np.maximum(b, 0)], -1) for t in taus]
    )
    assert (np.diff(depths, axis=0) <= 0).all()
    curve = backoff_curve(probs, rng.integers(0, 5, 300), R_DAG, taus)
    assert (np.diff(curve["specificity"]) <= 1e-12).all()
    assert curve["abstained"].between(0, 1).all()


def test_backoff_consistency_by_hand():
    probs = np.array([[0.0, 0.0, 0.0, 0.9, 0.1], [0.0, 0.0, 0.0, 0.9, 0.1]])
    # τ 0.5 -> D for both. Truth B: D is a subtype of B -> consistent. Truth C: D unrelated -> not.
    curve = backoff_curve(probs, [B, C], R_DAG, [0.5]).iloc[0]
    assert curve["consistency"] == pytest.approx(0.5)
    assert curve["exact_or_finer"] == pytest.approx(0.5)
    assert curve["specificity"] == pytest.approx(3 / 4)  # depth 2 of 0..3
