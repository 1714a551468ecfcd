"""The analysis rules' work: read a run's artifacts, compute the analyses, write tables and figures.

Two entry points, one per rule, so the two run in parallel: ``paper_analyses`` works from the metrics table
(Fig. 2c, Fig. 2d, connectivity, stratified heatmaps, the comparison of every loss with CE and its ranking
figure, provenance) and ``prediction_analyses`` from the per-cell
predictions (hierarchical panel, back-off, calibration, novel OOD types). Every table they write carries the
provenance columns of ``hcebench.provenance.TABLE_COLUMNS``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from hcebench.data.store import Store
from hcebench.evaluation.connectivity import connectivity_table, spearman_with_ci
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path
from hcebench.layout import NOVEL_SPLIT, OOD_SPLIT, PREDICTIONS, run_of
from hcebench.provenance import as_table, collect, stamp
from hcebench.report import figures
from hcebench.report.aggregate import celltype_deltas, loss_comparison, stratified_macro_f1
from hcebench.report.analysis import analyse_predictions
from hcebench.report.dag_layout import layered_layout
from hcebench.settings import AnalysisSettings

log = logging.getLogger(__name__)


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


def run_provenance(
    hierarchy: LabelHierarchy, ood_dir: str | os.PathLike, settings: AnalysisSettings
) -> dict[str, object]:
    meta = Store(ood_dir).meta
    return collect(
        train_release=meta.get("train_release", settings.train_release),
        ood_release=meta.get("ood_release", settings.ood_release),
        cl_release=hierarchy.release,
        reachability_hash=hierarchy.content_hash,
        seeds=settings.seeds,
        architectures=settings.architectures,
        losses=settings.losses,
    )


def training_counts(store_dir: str | os.PathLike) -> dict[str, int]:
    """Training cells per label, from the training split's obs."""
    obs = Store(store_dir).obs("train", columns=["label"])
    return {str(k): int(v) for k, v in obs["label"].value_counts().items()}


def paper_analyses(
    *,
    metrics: str,
    hierarchy_dir: str,
    store_dir: str,
    ood_dir: str,
    settings: AnalysisSettings,
    out: dict[str, str],
) -> dict:
    """Fig. 2c, Fig. 2d, connectivity, stratified views and the loss comparison; ``out`` maps output names to paths
    (the rule's ``fig2c, fig2d, connectivity_fig, stratified_fig, loss_ranking_fig, celltype_delta, connectivity,
    stratified, loss_comparison, provenance``)."""
    table = pd.read_csv(metrics, sep="\t")
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    prov = run_provenance(hierarchy, ood_dir, settings)
    names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
    focus = settings.focus_architecture
    split = OOD_SPLIT if (table["split"] == OOD_SPLIT).any() else "test"

    deltas = celltype_deltas(table, focus, split=split)
    deltas.insert(1, "name", deltas["term_id"].map(names))
    write_tsv(stamp(deltas.assign(architecture=focus, split=split), prov), out["celltype_delta"])
    figures.celltype_delta(deltas, names, out["fig2c"], architecture=focus, split=split)

    counts = training_counts(store_dir)
    delta_of = dict(zip(deltas["term_id"], deltas["delta"], strict=True))
    figures.ontology_dag(
        hierarchy,
        layered_layout(hierarchy.reachability),
        counts,
        delta_of,
        out["fig2d"],
        title=f"Label set ({hierarchy.k} types, CL {hierarchy.release}); area ∝ training cells, "
        f"colour = ΔF1 of {focus} on {'OOD' if split == OOD_SPLIT else split}",
    )

    conn = connectivity_table(hierarchy.reachability, hierarchy.term_ids, counts)
    conn.insert(1, "name", conn["term_id"].map(names))
    conn = conn.merge(deltas[["term_id", "delta", "p_holm"]], on="term_id", how="left")
    corr = spearman_with_ci(conn["connectivity"], conn["delta"])
    corr_fine = spearman_with_ci(conn["subtree_coarse_fraction"], conn["delta"])
    write_tsv(
        stamp(
            conn.assign(
                architecture=focus,
                split=split,
                spearman_rho=corr["rho"],
                spearman_ci_low=corr["ci_low"],
                spearman_ci_high=corr["ci_high"],
                spearman_p=corr["p"],
            ),
            prov,
        ),
        out["connectivity"],
    )
    figures.connectivity_scatter(conn, corr, out["connectivity_fig"], architecture=focus)

    strat = stratified_macro_f1(table, split=split)
    write_tsv(stamp(strat.assign(split=split), prov), out["stratified"])
    figures.stratified_heatmaps(strat, out["stratified_fig"], split=split)

    comparison = loss_comparison(table)
    write_tsv(stamp(comparison, prov), out["loss_comparison"])
    figures.loss_ranking(table, out["loss_ranking_fig"], split=split)

    write_tsv(as_table(prov), out["provenance"])
    return {"connectivity_spearman": corr, "coarse_fraction_spearman": corr_fine, "n_types": len(deltas)}


def prediction_runs(paths) -> list[dict]:
    """Identity of each predictions file from its ``layout.PREDICTIONS`` path."""
    runs = []
    for path in paths:
        run = run_of(Path(path).as_posix(), PREDICTIONS)
        runs.append({**run, "seed": int(run["seed"]), "path": str(path)})
    return runs


def prediction_analyses(
    *,
    predictions,
    hierarchy_dir: str,
    ood_dir: str,
    settings: AnalysisSettings,
    out: dict[str, str],
    n_boot: int = 1000,
) -> dict:
    """Hierarchical panel, back-off, calibration and novel OOD types; ``out`` maps the rule's output names
    (``hierarchical, backoff, calibration, novel`` tables and ``*_fig`` figures) to paths."""
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    prov = run_provenance(hierarchy, ood_dir, settings)
    ood = Store(ood_dir)
    meta = ood.meta
    novel_obs = ood.obs(NOVEL_SPLIT) if ood.has_split(NOVEL_SPLIT) else None
    res = analyse_predictions(prediction_runs(predictions), hierarchy, novel_obs=novel_obs, n_boot=n_boot)
    note = ""
    if res.missing_probs:
        note = (
            f"{len(res.missing_probs)} predictions file(s) lack probability vectors and are left out "
            "(set evaluation.save_probabilities: true to include them)"
        )
        log.warning(note)
    split = OOD_SPLIT if (res.hierarchical["split"] == OOD_SPLIT).any() else "test"
    novel_meta = meta.get("novel")
    novel = res.novel
    if novel_meta:
        novel = novel.assign(
            coverage=novel_meta["coverage"],
            n_novel_cells=novel_meta["n_cells"],
            n_novel_dropped=novel_meta["n_cells_dropped"],
        )
    for name, frame in (
        ("hierarchical", res.hierarchical),
        ("backoff", res.backoff),
        ("calibration", res.calibration),
        ("novel", novel),
    ):
        write_tsv(stamp(frame, prov), out[name])
    figures.hierarchical_panel(res.hierarchical, out["hierarchical_fig"], split=split)
    figures.backoff_curves(res.backoff, out["backoff_fig"], split=split, note=note)
    figures.calibration_levels(res.calibration, out["calibration_fig"], split=split, note=note)
    names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
    figures.novel_types(res.novel, novel_meta, out["novel_fig"], names=names)
    return {"missing_probs": res.missing_probs}
