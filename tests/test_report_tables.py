"""hcebench.report.tables: the paper_analyses rule's work writes the loss comparison and its ranking figure beside
Fig. 2c/2d, from a metrics table with several losses, decoded models and controls."""

from __future__ import annotations

import struct

import pandas as pd
import pytest
from hcebench.io import write_json
from hcebench.report import figures
from hcebench.report.tables import paper_analyses
from hcebench.settings import AnalysisSettings
from metrics_fixtures import grid_metrics
from store_fixtures import LABELS

OUTPUTS = {
    "fig2c": "figures/fig2c.png",
    "fig2d": "figures/fig2d.png",
    "connectivity_fig": "figures/connectivity.png",
    "stratified_fig": "figures/stratified.png",
    "loss_ranking_fig": "figures/loss_ranking.png",
    "celltype_delta": "analysis/celltype_delta.tsv",
    "connectivity": "analysis/connectivity.tsv",
    "stratified": "analysis/stratified.tsv",
    "loss_comparison": "analysis/loss_comparison.tsv",
    "provenance": "analysis/provenance.tsv",
}


def test_paper_analyses_write_the_loss_comparison_and_ranking(tmp_path, toy):
    store, hierarchy = toy
    metrics = grid_metrics()
    per_type = [
        {**r, "stratum_type": "cell_type", "stratum": term, "metric": "f1", "value": r["value"] - 0.01 * i}
        for r in metrics[metrics["architecture"] == "mlp"].to_dict("records")
        for i, term in enumerate(LABELS)
    ]
    metrics_path = tmp_path / "metrics.tsv"
    pd.concat([metrics, pd.DataFrame(per_type)]).to_csv(metrics_path, sep="\t", index=False)
    ood = tmp_path / "ood"
    ood.mkdir()
    write_json(ood / "meta.json", {"train_release": "2023-05-15", "ood_release": "2023-12-15"})
    settings = AnalysisSettings(
        train_release="2023-05-15",
        ood_release="2023-12-15",
        seeds=(0, 1, 2, 3),
        losses=("ce", "hce", "soft_labels"),
        architectures=("linear", "mlp"),
        focus_architecture="mlp",
    )
    out = {name: str(tmp_path / path) for name, path in OUTPUTS.items()}
    for path in out.values():
        (tmp_path / path).parent.mkdir(exist_ok=True)
    paper_analyses(
        metrics=str(metrics_path),
        hierarchy_dir=hierarchy,
        store_dir=store,
        ood_dir=ood,
        settings=settings,
        out=out,
    )
    table = pd.read_csv(out["loss_comparison"], sep="\t", keep_default_na=False, na_values=[""])
    assert {
        "split",
        "architecture",
        "loss",
        "n_seeds",
        "mean",
        "sd",
        "delta",
        "rel_gain_pct",
        "p",
        "p_holm",
    } <= set(table)
    assert table["reachability_hash"].notna().all()  # provenance-stamped like every analysis table
    direct = table[(table["split"] == "ood") & (table["baseline"] == "ce_prop")]
    assert sorted(direct["architecture"]) == ["linear", "mlp"]
    mlp_hce = table[(table["split"] == "ood") & (table["architecture"] == "mlp") & (table["loss"] == "hce")]
    assert mlp_hce[mlp_hce["baseline"] == "ce"]["delta"].iloc[0] == pytest.approx(0.0225)
    data = (tmp_path / OUTPUTS["loss_ranking_fig"]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and figures.NO_DATA_TITLE.encode() not in data
    assert struct.unpack(">II", data[16:24])[0] > 500
    celltype = pd.read_csv(out["celltype_delta"], sep="\t")
    assert len(celltype) == len(LABELS) and {"ce_mean", "hce_mean"} <= set(celltype)
