"""Hierarchical metrics, calibration, back-off, connectivity, per-type tests and the DAG layout, against hand
computations on the five-node DAG (A→B, A→C, B→D, B→E, C→E) and small tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import R_DAG, A, B, C, D, E, five_node_dag
from hcebench.aggregate import celltype_deltas, stratified_macro_f1
from hcebench.analysis import analyse_predictions
from hcebench.backoff import backoff_curve, backoff_predict, propagate
from hcebench.calibration import brier, calibration_by_level, ece
from hcebench.connectivity import connectivity_table, spearman_with_ci
from hcebench.dag_layout import count_crossings, layered_layout
from hcebench.hierarchical import (
    accuracy_by_depth,
    cluster_bootstrap,
    error_distance,
    hasse_distances,
    hasse_edges,
    hierarchical_prf,
    hprf_from_sums,
)
from hcebench.provenance import TABLE_COLUMNS, code_version, collect, stamp
from hcebench.stats import holm_bonferroni


# -- hierarchical precision / recall / F1 ---------------------------------------------------------------
def test_hasse_edges_of_five_node_dag():
    assert hasse_edges(R_DAG).tolist() == [[A, B], [A, C], [B, D], [B, E], [C, E]]


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


# -- calibration ----------------------------------------------------------------------------------------
def test_ece_known_case():
    # bin (0.6, 0.7]: 2 cells at 0.65, 1 right -> |0.5 - 0.65| = 0.15, weight 2/4
    # bin (0.8, 0.9]: 2 cells at 0.85, 2 right -> |1.0 - 0.85| = 0.15, weight 2/4
    assert ece([0.65, 0.65, 0.85, 0.85], [1, 0, 1, 1], n_bins=10) == pytest.approx(0.15)
    # perfectly calibrated: confidence 0.5, half right
    assert ece([0.5, 0.5], [1, 0], n_bins=10) == pytest.approx(0.0)
    # always sure and always wrong
    assert ece([1.0, 1.0], [0, 0]) == pytest.approx(1.0)


def test_brier_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    # cell 0 truth 0: 0.09 + 0.04 + 0.01 = 0.14; cell 1 truth 1: 0.01 + 0.81 + 0.64 = 1.46
    assert brier(probs, [0, 1]) == pytest.approx((0.14 + 1.46) / 2)


def test_calibration_levels_on_five_node_dag():
    # one cell, truth D, probabilities on D 0.6 and E 0.4.
    probs = np.array([[0.0, 0.0, 0.0, 0.6, 0.4]])
    table = calibration_by_level(probs, [D], R_DAG, n_bins=10).set_index("level")
    # leaf: top 0.6 on D, right -> ECE 0.4; Brier 0.16 + 0.16
    assert table.loc["leaf", "ece"] == pytest.approx(0.4)
    assert table.loc["leaf", "brier"] == pytest.approx(0.32)
    # depth 0: q[A] = 1, truth A is an ancestor of D -> calibrated
    assert table.loc["depth0", "ece"] == pytest.approx(0.0)
    # depth 1: q[B] = 1.0, q[C] = 0.4; top B right -> ECE 0; Brier (1-1)^2 + (0.4-0)^2
    assert table.loc["depth1", "brier"] == pytest.approx(0.16)
    # depth 2: only D; q[D] = 0.6, truth -> ECE 0.4
    assert table.loc["depth2", "ece"] == pytest.approx(0.4)
    # depth 3 (E): the cell's label D has depth 2 < 3, so the level scores no cell
    assert "depth3" not in table.index


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
    depths = np.array([np.where((b := backoff_predict(probs, R_DAG, t)) >= 0, depth[np.maximum(b, 0)], -1)
                       for t in taus])
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


# -- paired t + Holm on a small table (Fig. 2c) --------------------------------------------------------
def _metrics(rows):
    return pd.DataFrame([{"architecture": "mlp", "loss": loss, "seed": seed, "split": "ood",
                          "stratum_type": "cell_type", "stratum": term, "metric": "f1", "value": v}
                         for term, loss, seed, v in rows])


def test_celltype_deltas_paired_t_and_holm_by_hand():
    rows = []
    ce = {"T1": [0.70, 0.72, 0.71, 0.69], "T2": [0.5, 0.5, 0.6, 0.6], "T3": [0.3, 0.4, 0.35, 0.3]}
    hce = {"T1": [0.73, 0.74, 0.74, 0.70], "T2": [0.6, 0.5, 0.6, 0.7], "T3": [0.3, 0.4, 0.35, 0.3]}
    for term in ce:
        for s in range(4):
            rows += [(term, "ce", s, ce[term][s]), (term, "hce", s, hce[term][s])]
    table = celltype_deltas(_metrics(rows), "mlp").set_index("term_id")
    # T1: d = .03 .02 .03 .01 -> t = 4.7001 (tests/test_stats.py); T2: d = .1 0 0 .1 -> mean .05, sd .057735,
    # t = .05 / (.057735 / 2) = 1.7321; T3: all-zero differences -> untestable (NaN), not counted by Holm.
    assert table.loc["T1", "t"] == pytest.approx(4.7001, abs=1e-4)
    assert table.loc["T2", "t"] == pytest.approx(math.sqrt(3), abs=1e-4)
    assert math.isnan(table.loc["T3", "p"]) and math.isnan(table.loc["T3", "p_holm"])
    p1, p2 = table.loc["T1", "p"], table.loc["T2", "p"]
    assert p1 < p2
    assert table.loc["T1", "p_holm"] == pytest.approx(2 * p1)  # smallest of m = 2, times 2
    assert table.loc["T2", "p_holm"] == pytest.approx(max(2 * p1, p2))
    assert table.index.tolist() == ["T3", "T1", "T2"]  # sorted by delta: 0, .0225, .05
    np.testing.assert_allclose(holm_bonferroni([p1, p2]), table.loc[["T1", "T2"], "p_holm"])


def test_stratified_macro_f1_means_over_seeds():
    rows = []
    for loss, vals in (("ce", [0.4, 0.6]), ("hce", [0.7, 0.9])):
        for seed, v in enumerate(vals):
            rows.append({"architecture": "mlp", "loss": loss, "seed": seed, "split": "ood", "stratum_type": "tissue",
                         "stratum": "lung", "metric": "macro_f1", "value": v})
            rows.append({**rows[-1], "metric": "n_cells", "value": 120})
    t = stratified_macro_f1(pd.DataFrame(rows)).set_index("loss")
    assert t.loc["ce", "mean"] == pytest.approx(0.5) and t.loc["hce", "mean"] == pytest.approx(0.8)
    assert (t["n_cells"] == 120).all() and (t["n_seeds"] == 2).all()


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


# -- layout ---------------------------------------------------------------------------------------------
def test_layered_layout_of_five_node_dag():
    lay = layered_layout(R_DAG)
    # longest-path layers: A 0, B 1, C 1, D 2, E 2; edges point down
    assert lay.layer.tolist() == [0, 1, 1, 2, 2]
    for parent, child in lay.edges:
        assert lay.xy[parent, 1] > lay.xy[child, 1]
    # unit spacing within a layer
    assert abs(lay.xy[B, 0] - lay.xy[C, 0]) >= 1 - 1e-9 and abs(lay.xy[D, 0] - lay.xy[E, 0]) >= 1 - 1e-9


def test_layout_removes_avoidable_crossings_and_routes_long_edges():
    # Two chains whose initial order crosses: 0→3, 1→2 ; plus a long edge 0→4 via a layer-1 dummy (0→3→5, 0→4... )
    r = np.eye(6, dtype=np.uint8)
    for a, b in [(0, 3), (1, 2), (3, 5), (0, 5), (2, 4), (1, 4)]:
        r[a, b] = 1
    lay = layered_layout(r)
    order = [sorted(np.flatnonzero(lay.layer == li), key=lambda v: lay.xy[v, 0]) for li in range(3)]
    links = [(int(a), int(b)) for a, b in lay.edges]
    assert count_crossings(order, links) == 0
    assert all(len(p) == abs(lay.layer[e[0]] - lay.layer[e[1]]) + 1 for p, e in zip(lay.paths, lay.edges, strict=True))


# -- provenance -----------------------------------------------------------------------------------------
def test_provenance_columns_and_code_version():
    prov = collect(train_release="r1", ood_release="r2", cl_release="v1", reachability_hash="abc",
                   seeds=[0, 1], architectures=["mlp"], losses=["ce", "hce"])
    assert prov["seeds"] == "0,1" and prov["version.numpy"] == np.__version__
    assert code_version().startswith(("git ", "hcebench "))
    stamped = stamp(pd.DataFrame({"x": [1, 2]}), prov)
    assert list(stamped.columns) == ["x", *TABLE_COLUMNS]


# -- the prediction analyses end to end on a tiny predictions set ----------------------------------------
def test_analyse_predictions_with_and_without_probs(tmp_path):
    h = five_node_dag()
    rows = pd.DataFrame({"cell_id": np.arange(4), "dataset_id": ["d1", "d1", "d2", "d2"],
                         "true_label": ["D", "B", "E", "C"], "pred_label": ["D", "E", "D", "E"]})
    probs = np.full((4, 5), 0.05)
    probs[np.arange(4), [D, E, D, E]] = 0.8
    with_p = rows.assign(probs=list(probs))
    runs = []
    for loss, frame in (("ce", rows), ("hce", with_p)):
        path = tmp_path / f"{loss}.parquet"
        frame.to_parquet(path)
        runs.append({"architecture": "lin", "loss": loss, "seed": 0, "split": "ood", "path": path})
    novel = pd.DataFrame({"cell_id": [7, 8], "dataset_id": "d3", "true_label": ["B", "B"], "pred_label": ["D", "C"]})
    novel.to_parquet(tmp_path / "novel.parquet")
    runs.append({"architecture": "lin", "loss": "hce", "seed": 0, "split": "ood_novel", "path": tmp_path / "novel.parquet"})
    novel_obs = pd.DataFrame({"soma_joinid": [7, 8], "novel_label": ["X", "X"], "novel_label_name": ["new", "new"]})
    res = analyse_predictions(runs, h, novel_obs=novel_obs, n_boot=50)
    assert res.missing_probs == [str(tmp_path / "ce.parquet")]
    hier = res.hierarchical.set_index(["loss", "metric"])
    # cells: D→D overlap 3 |P| 3 |T| 3; B→E 2,4,2; E→D 2,3,4; C→E 2,4,2  => hP 9/14, hR 9/11
    assert hier.loc[("ce", "hP"), "value"] == pytest.approx(9 / 14)
    assert hier.loc[("ce", "hR"), "value"] == pytest.approx(9 / 11)
    assert hier.loc[("ce", "mean_error_distance"), "value"] == pytest.approx(2.0)  # E→D: E-B-D
    assert set(res.calibration["loss"]) == {"hce"} and set(res.backoff["loss"]) == {"hce"}
    allrow = res.novel[res.novel["novel_label"] == "all"].iloc[0]
    assert allrow["n_cells"] == 2 and allrow["accuracy_at_ancestor"] == pytest.approx(0.5)  # D is a B, C is not


# -- novel OOD types: nearest trained ancestor ------------------------------------------------------------
def test_nearest_trained_ancestor_is_the_deepest_trained_is_a_ancestor():
    from hcebench.ontology import Ontology
    from hcebench.ood import nearest_trained_ancestors

    # root → A → B → D ; A → C ; X under both B and C ; Y under root only ; Z has a parent chain A → C → Z
    parents = {"root": (), "A": ("root",), "B": ("A",), "C": ("A",), "D": ("B",), "X": ("B", "C"),
               "Y": ("root",), "Z": ("C",)}
    onto = Ontology(names={t: f"cell {t}" for t in parents}, parents=parents)
    got = nearest_trained_ancestors(["D", "X", "Y", "Z", "unknown"], ["A", "B", "C"], onto)
    assert got["D"] == "B"  # B (2 ancestors) beats A (1)
    assert got["X"] == "B"  # B and C tie in depth: the lower term id wins
    assert got["Y"] is None  # only the untrained root above it: counted and dropped
    assert got["Z"] == "C"
    assert got["unknown"] is None  # not a term of this CL release


def test_layout_of_the_papers_164_labels_is_fast_and_spaced():
    import time
    from importlib import resources

    from hcebench.ontology import load_ontology

    onto = load_ontology("bundled:v2022-09-15")
    names = (resources.files("hcebench") / "data" / "sctab_cell_types_2023-05-15.txt").read_text().split("\n")
    h = onto.closure([onto.id_of(n.strip()) for n in names if n.strip()])
    assert h.k == 164
    start = time.perf_counter()
    lay = layered_layout(h.reachability)
    assert time.perf_counter() - start < 5
    for li in np.unique(lay.layer):
        xs = np.sort(lay.xy[lay.layer == li, 0])
        assert (np.diff(xs) >= 1 - 1e-9).all()  # no two labels of a layer overlap
    for parent, child in lay.edges:
        assert lay.layer[parent] < lay.layer[child]
