"""hcebench.evaluation.hierarchical_metrics: hierarchical P/R/F, error distance, accuracy by depth, cluster bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dag_fixtures import R_DAG, A, B, C, D, E
from hcebench.evaluation.hierarchical_metrics import (
    accuracy_by_depth,
    cluster_bootstrap,
    error_distance,
    hierarchical_prf,
    hprf_from_sums,
)
from hcebench.hierarchy.hasse import hasse_distances


def test_hprf_single_cells_by_hand():
    # Ancestor sets (reflexive): A {A}, B {A,B}, C {A,C}, D {A,B,D}, E {A,B,C,E}.
    # truth D, prediction E: overlap {A,B} = 2; |pred| = 4, |true| = 3
    r = hierarchical_prf([D], [E], R_DAG)
    assert r["hP"] == pytest.approx(2 / 4)
    assert r["hR"] == pytest.approx(2 / 3)
    assert r["hF"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # exact hit: all ones
    assert hierarchical_prf([E], [E], R_DAG) == {"hP": 1.0, "hR": 1.0, "hF": 1.0}
    # predicting the ancestor B of truth D: precise (|{A,B}∩{A,B,D}| / |{A,B}| = 1) but incomplete (2/3)
    r = hierarchical_prf([D], [B], R_DAG)
    assert (r["hP"], r["hR"]) == (pytest.approx(1.0), pytest.approx(2 / 3))


def test_hprf_is_micro_averaged_over_cells():
    # cells: (D→E) overlap 2, |P| 4, |T| 3; (C→E) overlap {A,C} 2, |P| 4, |T| 2; (B→C) overlap {A} 1, |P| 2, |T| 2
    r = hierarchical_prf([D, C, B], [E, E, C], R_DAG)
    assert r["hP"] == pytest.approx(5 / 10)
    assert r["hR"] == pytest.approx(5 / 7)
    # an unknown prediction (-1) has an empty ancestor set: nothing predicted, nothing recalled
    r = hierarchical_prf([D], [-1], R_DAG)
    assert (r["hP"], r["hR"], r["hF"]) == (0.0, 0.0, 0.0)


def test_hprf_from_sums_handles_zero_denominators():
    out = hprf_from_sums(np.array([0, 2]), np.array([0, 4]), np.array([3, 3]))
    assert out["hP"].tolist() == [0.0, 0.5]
    assert out["hF"][0] == 0.0


def test_error_distance_by_hand():
    d = hasse_distances(R_DAG)
    assert d[D, E] == 2  # D - B - E
    assert d[D, C] == 3  # D - B - A - C  (or D - B - E - C)
    assert d[A, E] == 2
    # truth D predicted E (wrong, 2), truth E predicted A (wrong: an ancestor, 2), truth B predicted D (right)
    r = error_distance([D, E, B], [E, A, D], R_DAG)
    assert r == {"mean_error_distance": 2.0, "n_errors": 2, "n_errors_unconnected": 0}


def test_error_distance_counts_unconnected_components():
    r = np.eye(3, dtype=np.uint8)
    r[0, 1] = 1  # 0 → 1, and 2 alone
    out = error_distance([1, 0], [2, 1], r)
    assert out["n_errors"] == 1 and out["n_errors_unconnected"] == 1
    assert math.isnan(out["mean_error_distance"])


def test_accuracy_by_depth():
    # depths: A 0, B 1, C 1, D 2, E 3 (E has ancestors A, B, C)
    acc = accuracy_by_depth([A, B, B, D, E], [D, D, C, B, E], R_DAG)
    assert acc["depth"].tolist() == [0, 1, 2, 3]
    assert acc["accuracy"].tolist() == [1.0, 0.5, 0.0, 1.0]
    assert acc["n_cells"].tolist() == [1, 2, 1, 1]


def test_cluster_bootstrap_brackets_the_estimate_and_degenerates():
    sums = np.array([[1.0, 2.0], [3.0, 4.0], [2.0, 4.0], [5.0, 6.0]])
    ratio = lambda x: x[:, 0] / x[:, 1]  # noqa: E731
    lo, hi = cluster_bootstrap(sums, ratio, n_boot=500, seed=1)
    assert lo <= sums[:, 0].sum() / sums[:, 1].sum() <= hi
    assert 0.5 <= lo and hi <= 5 / 6  # bounded by the most extreme group ratios
    assert all(math.isnan(v) for v in cluster_bootstrap(sums[:1], ratio))
