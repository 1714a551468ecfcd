"""hcebench.report.aggregate: per-cell-type deltas and stratified views across seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hcebench.evaluation.stats import holm_bonferroni
from hcebench.report.aggregate import celltype_deltas, stratified_macro_f1


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
