"""hcebench.report.aggregate: the summary, every loss against CE, per-cell-type deltas, stratified views and the
coarse-annotation sweep, across seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hcebench.evaluation.stats import holm_bonferroni
from hcebench.report.aggregate import (
    celltype_deltas,
    loss_comparison,
    stratified_macro_f1,
    summarise,
    sweep_gains,
)
from metrics_fixtures import CE_OOD, grid_metrics, grid_values, headline_rows
from scipy.stats import t as scipy_t


# -- paired t + Holm on a small table (Fig. 2c) --------------------------------------------------------
def _metrics(rows):
    return pd.DataFrame(
        [
            {
                "architecture": "mlp",
                "loss": loss,
                "seed": seed,
                "split": "ood",
                "stratum_type": "cell_type",
                "stratum": term,
                "metric": "f1",
                "value": v,
            }
            for term, loss, seed, v in rows
        ]
    )


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
            rows.append(
                {
                    "architecture": "mlp",
                    "loss": loss,
                    "seed": seed,
                    "split": "ood",
                    "stratum_type": "tissue",
                    "stratum": "lung",
                    "metric": "macro_f1",
                    "value": v,
                }
            )
            rows.append({**rows[-1], "metric": "n_cells", "value": 120})
    t = stratified_macro_f1(pd.DataFrame(rows)).set_index("loss")
    assert t.loc["ce", "mean"] == pytest.approx(0.5) and t.loc["hce", "mean"] == pytest.approx(0.8)
    assert (t["n_cells"] == 120).all() and (t["n_seeds"] == 2).all()


# -- every loss against CE: summary, loss comparison, duplicate seeds, the sweep ------------------------------
# The grid of tests/metrics_fixtures.py: per seed, HCE − CE = .03 .02 .03 .01 (mean .0225, sd .0095743, t 4.7001)
# in both architectures and splits; HCE − CE + prop. = .01 −.02 0 −.02 (mean −.0075, sd .015, t −1).
HCE_DELTA, HCE_SD, HCE_T = 0.0225, 0.0095743, 4.7001


def test_summary_compares_every_loss_with_ce_and_names_each_rows_role():
    summary = summarise(grid_metrics()).set_index(["architecture", "loss"])
    assert summary.loc[("celltypist", "ce"), "role"] == "reference"
    assert set(summary.loc[summary.index.get_level_values(0).str.startswith("control_"), "role"]) == {
        "control"
    }
    assert summary.loc[("linear", "hce_prop"), "role"] == "model"
    assert summary.loc[("control_random", "none"), "n_seeds"] == 4
    assert summary.loc[("control_truth", "none"), "n_seeds"] == 1
    hce = summary.loc[("linear", "hce")]
    assert hce["ood_gain_abs"] == pytest.approx(HCE_DELTA)
    assert hce["ood_gain_sd"] == pytest.approx(HCE_SD, abs=1e-6)
    assert hce["ood_paired_t"] == pytest.approx(HCE_T, abs=1e-4) and hce["ood_n_pairs"] == 4
    assert hce["ood_gain_rel_pct"] == pytest.approx(100 * HCE_DELTA / 0.505)
    assert summary.loc[("mlp", "ce_prop"), "id_gain_abs"] == pytest.approx(0.03)  # mean of .02 .04 .03 .03
    assert summary.loc[("linear", "soft_labels"), "ood_gain_abs"] == pytest.approx(0.005)
    # No comparison for CE itself, the reference method (CE only) or the controls.
    for key in [
        ("linear", "ce"),
        ("celltypist", "ce"),
        ("control_random", "none"),
        ("control_truth", "none"),
    ]:
        assert np.isnan(summary.loc[key, "ood_gain_abs"]) and np.isnan(summary.loc[key, "ood_paired_p"]), key


def test_loss_comparison_pairs_seeds_and_holm_corrects_across_losses_and_architectures():
    table = loss_comparison(grid_metrics())
    assert set(table["split"]) == {"ood", "test"}
    ood = table[table["split"] == "ood"]
    row = ood[(ood["architecture"] == "linear") & (ood["loss"] == "hce") & (ood["baseline"] == "ce")].iloc[0]
    assert row["n_seeds"] == 4 and row["n_pairs"] == 4
    assert row["mean"] == pytest.approx(0.5275) and row["baseline_mean"] == pytest.approx(0.505)
    assert row["delta"] == pytest.approx(HCE_DELTA) and row["sd_delta"] == pytest.approx(HCE_SD, abs=1e-6)
    assert row["rel_gain_pct"] == pytest.approx(100 * HCE_DELTA / 0.505)
    assert row["t"] == pytest.approx(HCE_T, abs=1e-4)
    assert row["p"] == pytest.approx(2 * scipy_t.sf(HCE_T, df=3), rel=1e-3)
    # The direct row: HCE against CE decoded by propagation, in each architecture.
    direct = ood[ood["baseline"] == "ce_prop"].set_index("architecture")
    assert sorted(direct.index) == ["linear", "mlp"] and set(direct["loss"]) == {"hce"}
    assert direct.loc["mlp", "delta"] == pytest.approx(-0.0075) and direct.loc["mlp", "t"] == pytest.approx(
        -1.0
    )
    # The family: every tested row of the split (4 losses vs CE + 1 direct, × 2 architectures).
    tested = ood[ood["p"].notna()]
    assert len(tested) == 10
    np.testing.assert_allclose(tested["p_holm"], holm_bonferroni(tested["p"].to_numpy()))
    assert (tested["p_holm"] >= tested["p"]).all()
    # Controls and the reference method are listed, untested.
    refs = ood[ood["role"].isin(["control", "reference"])].set_index("architecture")
    assert sorted(refs.index) == ["celltypist", "control_majority", "control_random", "control_truth"]
    assert refs["p"].isna().all() and (refs["baseline"] == "").all()
    assert refs.loc["control_random", "mean"] == pytest.approx(0.04)
    # Losses in display order within an architecture: CE first, each decoding right after its loss.
    linear = ood[(ood["architecture"] == "linear") & (ood["baseline"] != "ce_prop")]["loss"].tolist()
    assert linear.index("ce") == 0 and linear.index("ce_prop") == 1 and linear.index("hce_prop") == 3


def test_loss_comparison_pairs_only_the_seeds_both_losses_ran():
    values = grid_values()
    values[("linear", "hce", "ood")] = values[("linear", "hce", "ood")][:3]  # seed 3 of HCE failed
    table = loss_comparison(headline_rows(values), splits=("ood",)).set_index(
        ["architecture", "loss", "baseline"]
    )
    row = table.loc[("linear", "hce", "ce")]
    assert row["n_seeds"] == 3 and row["n_pairs"] == 3
    assert row["delta"] == pytest.approx(np.mean([0.03, 0.02, 0.03]))
    assert row["baseline_mean"] == pytest.approx(np.mean(CE_OOD[:3]))


def _with_every_stratum_type() -> pd.DataFrame:
    """The grid, plus per-type F1 rows (Fig. 2c) and a tissue stratum (the stratified view) of linear."""
    tissue = headline_rows({("linear", "ce", "ood"): [0.4, 0.42]}).assign(
        stratum_type="tissue", stratum="lung"
    )
    cell_type = _metrics([("T1", loss, seed, 0.5 + 0.1 * seed) for loss in ("ce", "hce") for seed in (0, 1)])
    return pd.concat([grid_metrics(), tissue, cell_type.assign(architecture="linear")], ignore_index=True)


@pytest.mark.parametrize(
    "compute, stratum_type",
    [
        (summarise, "all"),
        (loss_comparison, "all"),
        (lambda m: celltype_deltas(m, "linear"), "cell_type"),
        (stratified_macro_f1, "tissue"),
    ],
)
def test_a_seed_counted_twice_is_refused(compute, stratum_type):
    metrics = _with_every_stratum_type()
    compute(metrics)  # every seed once: fine
    seed0 = metrics[(metrics["stratum_type"] == stratum_type) & (metrics["architecture"] == "linear")].iloc[
        [0]
    ]
    # The same run and seed again: a metrics file aggregated twice, or two runs given one seed number.
    for extra in (seed0, seed0.assign(value=0.99)):
        with pytest.raises(ValueError, match="more than once"):
            compute(pd.concat([metrics, extra], ignore_index=True))


def test_sweep_gains_from_metrics_tables_and_from_summaries_agree():
    shares = (0.0, 0.5, 1.0)
    points = [(s, grid_metrics(hce_scale=s)) for s in shares]
    gains = sweep_gains(list(reversed(points)))  # any order in, sorted by share out
    assert gains["share"].is_monotonic_increasing
    hce = gains[(gains["architecture"] == "mlp") & (gains["loss"] == "hce")].set_index("share")
    np.testing.assert_allclose(hce["gain_mean"], [s * HCE_DELTA for s in shares], atol=1e-12)
    np.testing.assert_allclose(hce.loc[[0.5, 1.0], "gain_sd"], [0.5 * HCE_SD, HCE_SD], atol=1e-6)
    ce_prop = gains[(gains["architecture"] == "mlp") & (gains["loss"] == "ce_prop")]
    np.testing.assert_allclose(ce_prop["gain_mean"], 0.03)  # CE + prop. does not depend on the share here
    assert set(gains["loss"]) == {"ce_prop", "hce", "hce_prop", "soft_labels"}  # no CE, control or direct row
    from_summaries = sweep_gains([(s, summarise(m)) for s, m in points])
    keys = ["share", "architecture", "loss"]
    merged = gains.merge(from_summaries, on=keys, suffixes=("", "_summary"))
    assert len(merged) == len(gains) == len(from_summaries)
    np.testing.assert_allclose(merged["gain_mean"], merged["gain_mean_summary"], atol=1e-12)
    np.testing.assert_allclose(merged["gain_sd"], merged["gain_sd_summary"], atol=1e-12)


def test_sweep_gains_refuses_a_repeated_share_and_an_unknown_table():
    with pytest.raises(ValueError, match="distinct shares"):
        sweep_gains([(0.5, grid_metrics()), (0.5, grid_metrics())])
    with pytest.raises(ValueError, match="share 0.25"):
        sweep_gains([(0.25, pd.DataFrame({"architecture": ["mlp"], "loss": ["hce"]}))])


def test_ood_subset_macro_f1_is_classification_report_over_the_ood_labels():
    """The paper's SUBSET_INDICES score (hce-classification's model_evaluation_sctab.py): the test split's
    classification_report restricted to the labels present in the OOD set, derived from the OOD per-type rows."""
    from dag_fixtures import R_DAG, five_node_dag
    from hcebench.evaluation.metrics import hierarchy_correct, metrics_table
    from hcebench.report.aggregate import ood_subset_macro_f1
    from sctab_reference import classification_report_macro_f1

    h = five_node_dag()
    rng = np.random.default_rng(0)
    frames = []
    truth = {}
    for seed in (0, 1):
        for split, labels in (("test", [0, 1, 2, 3]), ("ood", [1, 3, 4])):  # 4 only in OOD: absent from test
            y_true = rng.choice(labels, 60)
            y_pred = rng.integers(0, 5, 60)
            truth[seed, split] = (y_true, y_pred)
            pred = pd.DataFrame(
                {"true_label": [h.term_ids[i] for i in y_true], "pred_label": [h.term_ids[i] for i in y_pred]}
            )
            frames.append(
                metrics_table(pred, h).assign(
                    architecture="mlp", loss="ce", seed=seed, split=split, cl_release="t"
                )
            )
    metrics = pd.concat(frames, ignore_index=True)
    rows = ood_subset_macro_f1(metrics)
    assert list(rows.columns) == list(metrics.columns)
    subset = [1, 3, 4]
    for seed in (0, 1):
        y_true, y_pred = truth[seed, "test"]
        expected = classification_report_macro_f1(
            y_true, hierarchy_correct(y_true, y_pred, R_DAG), labels=subset
        )
        got = rows[(rows["seed"] == seed) & (rows["metric"] == "macro_f1_ood_subset")]
        assert got["split"].tolist() == ["test"] and got["stratum"].tolist() == ["all"]
        assert got["value"].item() == pytest.approx(expected, abs=1e-12)
        assert rows[(rows["seed"] == seed) & (rows["metric"] == "n_labels_ood_subset")]["value"].item() == 3
    assert ood_subset_macro_f1(metrics[metrics["split"] == "test"]).empty  # no OOD rows: no subset
