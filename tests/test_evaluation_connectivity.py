"""hcebench.evaluation.connectivity: connectivity of a type in the label set against its F1 gain."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dag_fixtures import R_DAG
from hcebench.evaluation.connectivity import connectivity_table, spearman_with_ci


# -- connectivity ---------------------------------------------------------------------------------------
def test_connectivity_table_by_hand():
    counts = {"A": 10, "B": 20, "C": 5, "D": 30, "E": 40}
    t = connectivity_table(R_DAG, ("A", "B", "C", "D", "E"), counts).set_index("term_id")
    assert t["n_ancestors"].tolist() == [0, 1, 1, 2, 3]
    assert t["n_descendants"].tolist() == [4, 2, 1, 0, 0]
    assert t["is_coarse"].tolist() == [True, True, True, False, False]
    # B's subtree: B 20 (coarse), D 30, E 40 -> 20 / 90
    assert t.loc["B", "subtree_coarse_fraction"] == pytest.approx(20 / 90)
    assert t.loc["A", "subtree_coarse_fraction"] == pytest.approx(35 / 105)
    assert t.loc["E", "subtree_coarse_fraction"] == 0.0


def test_spearman_with_ci():
    x = np.arange(10.0)
    out = spearman_with_ci(x, x**2)
    assert out["rho"] == pytest.approx(1.0) and out["ci_low"] == pytest.approx(1.0)
    out = spearman_with_ci(x, [0, 2, 1, 4, 3, 6, 5, 8, 7, 9])
    assert out["rho"] == pytest.approx(1 - 6 * 8 / (10 * 99))  # eight rank differences of 1
    assert out["ci_low"] <= out["rho"] <= out["ci_high"] + 1e-12
    assert math.isnan(spearman_with_ci([1, 2], [3, 4])["rho"])
