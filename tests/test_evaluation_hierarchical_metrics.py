"""hcebench.evaluation.hierarchical_metrics: hierarchical P/R/F, error distance, accuracy by depth, cluster bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import R_DAG, A, B, C, D, E, five_node_dag
from hcebench.evaluation.hierarchical_metrics import (
    accuracy_by_depth,
    cluster_bootstrap,
    error_distance,
    hierarchical_prf,
    hop_f1,
    hprf_from_sums,
)
from hcebench.evaluation.metrics import f1_summary, hop_correct, metrics_table
from hcebench.hierarchy.hasse import hasse_distances, hasse_edges


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


# Hop-F1. Hasse edges of the DAG: A-B, A-C, B-D, B-E, C-E (A-E is no edge: B and C lie between).
# Undirected hops: A-D 2, A-E 2, B-C 2 (B-A-C, or B-E-C through E's second parent), D-E 2, C-D 3.
HOP_TRUE = [D, D, C, E, B, A]
HOP_PRED = [D, E, D, A, C, E]  # hops 0, 2, 3, 2, 2, 2


def test_hop_distances_on_the_dag_by_hand():
    edges = {tuple(e) for e in hasse_edges(R_DAG).tolist()}
    assert edges == {(A, B), (A, C), (B, D), (B, E), (C, E)}
    d = hasse_distances(R_DAG)
    # two paths of two hops: through the common parent A and through the common child E
    assert d[B, C] == d[C, B] == 2
    assert d[A, E] == 2 and d[D, E] == 2 and d[A, D] == 2
    assert d[C, D] == 3  # C-A-B-D or C-E-B-D
    assert hop_correct(HOP_TRUE, HOP_PRED, d, 2).tolist() == [D, D, D, E, B, A]


def test_hop_f1_by_hand():
    # k 0 and 1: only cell 0 is right. D: tp 1, predicted twice (cells 0, 2), support 2 -> 2/(2+2); A, B, C, E 0.
    # k 2: predictions D D D E B A. A, B, E 1; C 0; D tp 2, predicted 3, support 2 -> 4/5.  k 3: all right.
    scores = hop_f1(HOP_TRUE, HOP_PRED, R_DAG)
    assert list(scores) == [0, 1, 2, 3]
    assert [scores[k] for k in range(4)] == pytest.approx([1 / 10, 1 / 10, (3 + 4 / 5) / 5, 1.0])
    # k = 0 is exact match. The paper's rule credits cell 0 and A -> E (E is an A) but not the ancestor E -> A,
    # which k = 2 credits: A tp 1 of 2 predicted -> 2/3, D 1/2, others 0 -> 7/30.
    assert scores[0] == pytest.approx(f1_summary(HOP_TRUE, HOP_PRED)["macro_f1"])
    assert f1_summary(HOP_TRUE, HOP_PRED, R_DAG)["macro_f1"] == pytest.approx(7 / 30)
    assert hop_f1(HOP_TRUE, HOP_PRED, R_DAG, hops=(2,)) == {2: pytest.approx(19 / 25)}


def test_hop_f1_never_decreases_with_k_and_reaches_1_at_the_diameter():
    rng = np.random.default_rng(0)
    d = hasse_distances(R_DAG)
    for _ in range(20):
        y_true = rng.integers(0, 5, 40)
        y_pred = rng.integers(-1, 5, 40)  # -1: a prediction outside the label set, never correct
        scores = hop_f1(y_true, y_pred, R_DAG, hops=range(5), distances=d)
        values = [scores[k] for k in range(5)]
        assert all(a <= b + 1e-12 for a, b in zip(values, values[1:], strict=False))
        assert values[0] == pytest.approx(f1_summary(y_true, y_pred)["macro_f1"])
        if (y_pred >= 0).all():
            assert values[3] == 1.0  # the DAG's diameter is 3
        else:
            assert values[4] < 1.0


def test_hop_f1_never_crosses_components():
    r = np.eye(3, dtype=np.uint8)
    r[0, 1] = 1  # 0 -> 1, and 2 alone
    scores = hop_f1([1, 2], [0, 1], r, hops=(1, 10))
    # cell 0 is one hop from its truth; cell 1's prediction (1) lies in another component and stays wrong:
    # label 1 tp 1, predicted twice -> 2/3; label 2 0 -> macro 1/3 at any radius
    assert scores == {1: pytest.approx(1 / 3), 10: pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="non-negative"):
        hop_correct([0], [0], hasse_distances(r), -1)


def test_metrics_table_reports_hop_f1_overall():
    t = np.array(five_node_dag().term_ids, dtype=object)
    pred = pd.DataFrame(
        {"true_label": t[HOP_TRUE], "pred_label": t[HOP_PRED], "dataset_id": ["d1"] * 3 + ["d2"] * 3}
    )
    table = metrics_table(pred, five_node_dag())
    v = table.set_index(["stratum_type", "stratum", "metric"])["value"]
    assert [v["all", "all", f"hop_f1_k{k}"] for k in range(4)] == pytest.approx(
        [1 / 10, 1 / 10, 19 / 25, 1.0]
    )
    assert v["all", "all", "hop_f1_k0"] == pytest.approx(v["all", "all", "macro_f1_flat"])
    # overall only: the strata keep their metric set
    assert not table.loc[table["stratum_type"] != "all", "metric"].str.startswith("hop_f1").any()
    assert not table.duplicated(["stratum_type", "stratum", "metric"]).any()
