"""hcebench.report.analysis: the prediction-level analyses of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import TERMS, D, E, five_node_dag
from hcebench.report.analysis import analyse_predictions


# -- the prediction analyses end to end on a tiny predictions set ----------------------------------------
def test_analyse_predictions_with_and_without_probs(tmp_path):
    h = five_node_dag()
    rows = pd.DataFrame(
        {
            "cell_id": np.arange(4),
            "dataset_id": ["d1", "d1", "d2", "d2"],
            "true_label": ["D", "B", "E", "C"],
            "pred_label": ["D", "E", "D", "E"],
        }
    )
    probs = np.full((4, 5), 0.05)
    probs[np.arange(4), [D, E, D, E]] = 0.8
    with_p = rows.assign(probs=list(probs))
    runs = []
    for loss, frame in (("ce", rows), ("hce", with_p)):
        path = tmp_path / f"{loss}.parquet"
        frame.to_parquet(path)
        runs.append({"architecture": "lin", "loss": loss, "seed": 0, "split": "ood", "path": path})
    novel = pd.DataFrame(
        {"cell_id": [7, 8], "dataset_id": "d3", "true_label": ["B", "B"], "pred_label": ["D", "C"]}
    )
    novel.to_parquet(tmp_path / "novel.parquet")
    runs.append(
        {
            "architecture": "lin",
            "loss": "hce",
            "seed": 0,
            "split": "ood_novel",
            "path": tmp_path / "novel.parquet",
        }
    )
    novel_obs = pd.DataFrame(
        {"soma_joinid": [7, 8], "novel_label": ["X", "X"], "novel_label_name": ["new", "new"]}
    )
    res = analyse_predictions(runs, h, novel_obs=novel_obs, n_boot=50)
    assert res.missing_probs == [str(tmp_path / "ce.parquet")]
    hier = res.hierarchical.set_index(["loss", "metric"])
    # cells: D→D overlap 3 |P| 3 |T| 3; B→E 2,4,2; E→D 2,3,4; C→E 2,4,2  => hP 9/14, hR 9/11
    assert hier.loc[("ce", "hP"), "value"] == pytest.approx(9 / 14)
    assert hier.loc[("ce", "hR"), "value"] == pytest.approx(9 / 11)
    assert hier.loc[("ce", "mean_error_distance"), "value"] == pytest.approx(2.0)  # E→D: E-B-D
    assert set(res.calibration["loss"]) == {"hce"} and set(res.backoff["loss"]) == {"hce"}
    allrow = res.novel[res.novel["novel_label"] == "all"].iloc[0]
    assert allrow["n_cells"] == 2 and allrow["accuracy_at_ancestor"] == pytest.approx(
        0.5
    )  # D is a B, C is not


# -- hop-F1 in the hierarchical panel ------------------------------------------------------------------------
def test_hop_f1_in_the_panel_is_the_macro_f1_of_the_pooled_cells(tmp_path):
    from hcebench.evaluation.hierarchical_metrics import hop_f1
    from hcebench.report.analysis import hop_f1_from_sums

    h = five_node_dag()
    rng = np.random.default_rng(3)
    runs, pooled_t, pooled_p, per_seed = [], [], [], []
    for seed in range(2):
        t = rng.integers(0, 5, 60)
        p = np.where(rng.random(60) < 0.5, t, rng.integers(0, 5, 60))
        frame = pd.DataFrame(
            {
                "cell_id": np.arange(60),
                "dataset_id": np.repeat(["d1", "d2", "d3"], 20),
                "true_label": [TERMS[i] for i in t],
                "pred_label": [TERMS[i] for i in p],
            }
        )
        path = tmp_path / f"seed{seed}.parquet"
        frame.to_parquet(path)
        runs.append({"architecture": "mlp", "loss": "ce_prop", "seed": seed, "split": "ood", "path": path})
        pooled_t.append(t)
        pooled_p.append(p)
        per_seed.append(hop_f1(t, p, h.reachability))
    hier = analyse_predictions(runs, h, n_boot=200).hierarchical.set_index("metric")
    expected = hop_f1(np.concatenate(pooled_t), np.concatenate(pooled_p), h.reachability)
    values = [hier.loc[f"hop_f1_k{k}", "value"] for k in range(4)]
    np.testing.assert_allclose(values, [expected[k] for k in range(4)])
    assert values == sorted(values) and values[0] < values[-1]  # never falls with k; the DAG's diameter is 3
    for k in range(4):
        row = hier.loc[f"hop_f1_k{k}"]
        assert row["seed_sd"] == pytest.approx(np.std([s[k] for s in per_seed], ddof=1))
        assert row["ci_low"] <= row["value"] + 1e-12 and row["value"] <= row["ci_high"] + 1e-12
    # A label never in the truth is nobody's F1; an empty row has none.
    f1 = hop_f1_from_sums(np.array([[2, 0], [0, 0]]), np.array([[1, 3], [0, 0]]), np.array([[1, 0], [0, 0]]))
    assert f1[0] == pytest.approx(2 * 1 / (2 + 1)) and np.isnan(f1[1])


def test_probabilities_are_read_in_chunks_with_the_same_results(tmp_path, monkeypatch):
    # Calibration and back-off over a file read a few cells at a time equal those over the file in one piece.
    import hcebench.report.analysis as analysis

    h = five_node_dag()
    rng = np.random.default_rng(0)
    n = 23
    probs = rng.dirichlet(np.ones(5), size=n).astype(np.float32)
    table = pd.DataFrame(
        {
            "cell_id": np.arange(n),
            "dataset_id": rng.choice(["d1", "d2", "d3"], size=n),
            "true_label": np.asarray(TERMS, dtype=object)[rng.integers(0, 5, size=n)],
            "pred_label": np.asarray(TERMS, dtype=object)[probs.argmax(axis=1)],
            "probs": list(probs),
        }
    )
    table.to_parquet(tmp_path / "p.parquet")
    runs = [{"architecture": "lin", "loss": "ce", "seed": 0, "split": "ood", "path": tmp_path / "p.parquet"}]
    whole = analyse_predictions(runs, h, n_boot=20)
    monkeypatch.setattr(analysis, "CHUNK_CELLS", 5)
    assert [start for start, _ in analysis.probability_chunks(tmp_path / "p.parquet")] == [0, 5, 10, 15, 20]
    chunked = analyse_predictions(runs, h, n_boot=20)
    pd.testing.assert_frame_equal(whole.calibration, chunked.calibration, check_exact=True)
    pd.testing.assert_frame_equal(whole.backoff, chunked.backoff, check_exact=True)
    pd.testing.assert_frame_equal(whole.hierarchical, chunked.hierarchical, check_exact=True)
    assert len(whole.calibration) > 1 and whole.backoff["abstained"].notna().all()
