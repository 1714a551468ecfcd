"""hcebench.report.figure_check: a figure whose texts overlap or leave the canvas, whose type is too small or
whose canvas is wider than a page fails, naming the texts; ``style.save`` refuses it and writes nothing; and every
figure function passes it on a grid larger than the demo's (many architectures and losses, long names, the
paper's 164 cell types)."""

from __future__ import annotations

from importlib import resources

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hcebench.errors import FigureCheckError
from hcebench.hierarchy.ontology import load_ontology
from hcebench.report import figures
from hcebench.report.aggregate import stratified_macro_f1
from hcebench.report.dag_layout import layered_layout
from hcebench.report.figure_check import check_figure, figure_problems
from metrics_fixtures import headline_rows


def test_overlapping_labels_fail_and_are_named():
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_xticks([0, 1, 2], ["a long first label", "a long second label", "third"], fontsize=10)
    ax.set_xlim(-0.5, 2.5)
    ax.text(0.5, 0.5, "a note", transform=ax.transAxes)
    ax.text(0.52, 0.5, "another note", transform=ax.transAxes)
    problems = figure_problems(fig)
    assert "overlap: 'a note' and 'another note'" in problems
    assert any(
        p.startswith("overlap:") and "'a long first label'" in p and "'a long second label'" in p
        for p in problems
    )
    with pytest.raises(
        FigureCheckError, match=r"(?s)overlaps\.png would print badly.*'a note' and 'another note'"
    ):
        check_figure(fig, "overlaps.png")
    plt.close(fig)


def test_a_clipped_label_fails_and_is_named():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.text(0.9, 0.5, "runs off the right edge", transform=ax.transAxes)
    ax.set_ylabel("a y label")  # no layout engine: still inside at this size
    assert figure_problems(fig) == ["clipped: 'runs off the right edge' leaves the canvas"]
    with pytest.raises(FigureCheckError, match="runs off the right edge"):
        check_figure(fig, "clipped.png")
    plt.close(fig)


def test_a_clean_figure_passes_and_only_drawn_text_counts():
    fig, axes = plt.subplots(1, 2, figsize=figures.style.mm(88, 40), layout="constrained")
    axes[0].plot(range(10))
    axes[0].set_xlim(2, 5)  # the tick labels at 0, 8, ... outside the limits are not drawn
    axes[0].set_title("drawn")
    axes[1].text(0.5, 0.5, "hidden", visible=False)
    axes[1].text(0.5, 0.5, "")  # empty: ignored
    axes[1].set_xticks([0, 1], ["hidden too", "hidden too"])
    axes[1].axis("off")
    assert figure_problems(fig) == []
    plt.close(fig)


def test_small_type_and_a_canvas_wider_than_a_page_fail():
    fig, ax = plt.subplots(figsize=figures.style.mm(200, 50))
    ax.text(0.5, 0.5, "tiny", fontsize=4)
    problems = figure_problems(fig)
    assert "too wide: 200 mm (a page is 180 mm)" in problems
    assert "too small: 'tiny' is 4.0 pt (< 6 pt)" in problems
    plt.close(fig)


def test_save_refuses_a_figure_that_fails_and_writes_nothing(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "one")
    ax.text(0.5, 0.5, "two")
    path = tmp_path / "bad.png"
    with pytest.raises(FigureCheckError, match="overlap: 'one' and 'two'"):
        figures.save(fig, path)
    assert not path.exists() and not list(tmp_path.iterdir())
    assert not plt.fignum_exists(fig.number)  # closed all the same


# -- every figure on a grid larger than the demo's --------------------------------------------------------------
ARCHS = ("linear", "mlp", "tabnet", "xgboost_like_long_name", "celltypist")
LOSSES = ("ce", "ce_prop", "hce", "hce_prop", "soft_labels", "hxe", "hace")
CONTROLS = ("control_random", "control_majority", "control_truth")


def big_metrics() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    values = {}
    for split, shift in (("ood", 0.0), ("test", 0.15)):
        for arch in ARCHS:
            for loss in LOSSES if arch != "celltypist" else ("ce",):
                values[(arch, loss, split)] = list(0.5 + shift + rng.normal(0, 0.03, 4))
        for control, v in zip(CONTROLS, (0.04, 0.06, 1.0), strict=True):
            values[(control, "none", split)] = [v]
    return headline_rows(values)


def ident() -> pd.DataFrame:
    runs = [(a, loss, s) for a in ARCHS[:4] for loss in LOSSES for s in (0, 1)]
    runs += [(c, "none", 0) for c in CONTROLS]
    return pd.DataFrame(runs, columns=["architecture", "loss", "seed"]).assign(split="ood")


def test_every_grid_figure_passes_the_check_on_a_large_grid(tmp_path):
    metrics = big_metrics()
    figures.macro_f1_by_architecture(metrics, tmp_path / "fig2b.png")
    figures.loss_ranking(metrics, tmp_path / "ranking.png")
    figures.id_versus_ood(metrics, tmp_path / "id_vs_ood.png")
    figures.coarse_share_sweep([(s, big_metrics()) for s in (0.0, 0.5, 1.0)], tmp_path / "sweep.png")
    runs = ident()
    histories = pd.concat(
        [
            runs[~runs["architecture"].str.startswith("control")].assign(epoch=e, val_macro_f1=0.1 * e)
            for e in (1, 2, 3)
        ]
    )
    figures.training_curves(histories, tmp_path / "curves.png")
    for name in ("fig2b", "ranking", "id_vs_ood", "sweep", "curves"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_every_prediction_figure_passes_the_check_on_a_large_grid(tmp_path):
    runs = ident()
    rng = np.random.default_rng(2)
    backoff = pd.concat(
        [
            runs.assign(tau=t, specificity=t, consistency=1 - t / 2 + rng.normal(0, 0.01, len(runs)))
            for t in (0.1, 0.5, 0.9)
        ]
    )
    figures.backoff_curves(backoff, tmp_path / "backoff.png")
    levels = ["leaf", *(f"depth{d}" for d in range(12))]
    calibration = pd.concat(
        [runs.assign(level=lv, ece=0.01 * i, brier=0.02 * i) for i, lv in enumerate(levels)]
    )
    figures.calibration_levels(calibration, tmp_path / "calibration.png")
    metrics = ["hP", "hR", "hF", "mean_error_distance", *(f"accuracy_depth{d}" for d in range(12))]
    metrics += [f"hop_f1_k{k}" for k in range(4)]
    pooled = runs.drop_duplicates(["architecture", "loss"]).drop(columns="seed")  # seeds pooled
    hierarchical = pd.concat([pooled.assign(metric=m, value=0.5, ci_low=0.4, ci_high=0.6) for m in metrics])
    figures.hierarchical_panel(hierarchical, tmp_path / "hierarchical.png")
    long = "CD4-positive, CD25-positive, alpha-beta regulatory T cell of the thymic medulla"
    novel = pd.concat(
        [
            runs.assign(
                novel_label=n, novel_label_name=name, nearest_trained_ancestor=anc, accuracy_at_ancestor=0.5
            )
            for n, name, anc in (
                ("all", "all", ""),
                ("X", long, "CL:1"),
                ("Y", "alveolar macrophage", "CL:2"),
            )
        ]
    )
    names = {"CL:1": "CD4-positive, alpha-beta T cell", "CL:2": "macrophage"}
    figures.novel_types(
        novel, {"n_cells_scored": 900, "n_cells": 1000, "coverage": 0.9}, tmp_path / "novel.png", names=names
    )
    strata = []
    for kind, values in (
        ("dataset_id", [f"{i:08x}-1111-2222-3333-444455556666" for i in range(6)]),
        ("assay", ["10x 3' transcription profiling", "10x 5' transcription profiling", "10x 3' v3"]),
        ("disease", ["normal", "chronic obstructive pulmonary disease with a very long name indeed"]),
    ):
        for v in values:
            rows = big_metrics().assign(stratum_type=kind, stratum=v)
            strata += [rows, rows.assign(metric="n_cells", value=1234)]
    figures.stratified_heatmaps(
        stratified_macro_f1(pd.concat(strata), split="ood"), tmp_path / "stratified.png"
    )
    for name in ("backoff", "calibration", "hierarchical", "novel", "stratified"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_fig2c_and_fig2d_pass_the_check_on_the_papers_164_cell_types(tmp_path):
    onto = load_ontology("bundled:v2022-09-15")
    listed = (
        (resources.files("hcebench") / "resources" / "sctab_cell_types_2023-05-15.txt")
        .read_text()
        .split("\n")
    )
    h = onto.closure([onto.id_of(n.strip()) for n in listed if n.strip()])
    rng = np.random.default_rng(3)
    deltas = pd.DataFrame(
        {
            "term_id": list(h.term_ids),
            "delta": rng.normal(0, 0.05, h.k),
            "sd_diff": 0.02,
            "p": rng.uniform(0, 0.2, h.k),
            "p_holm": rng.uniform(0, 0.5, h.k),
        }
    )
    names = dict(zip(h.term_ids, h.names, strict=True))
    figures.celltype_delta(deltas, names, tmp_path / "fig2c.png", architecture="linear")
    counts = {t: int(rng.integers(10, 100_000)) for t in h.term_ids}
    delta = dict(zip(deltas["term_id"][::2], deltas["delta"][::2], strict=True))
    figures.ontology_dag(h, layered_layout(h.reachability), counts, delta, tmp_path / "fig2d.png")
    assert (tmp_path / "fig2c.png").stat().st_size > 0 and (tmp_path / "fig2d.png").stat().st_size > 0
