"""hcebench.report.figures: Fig. 2d's node colours and sizes as the paper draws them; every figure with any set of
losses, decoded models and controls; the loss ranking and the coarse-annotation sweep."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import TERMS, five_node_dag
from hcebench.report import figures
from hcebench.report.aggregate import stratified_macro_f1, summarise
from hcebench.report.dag_layout import layered_layout
from hcebench.report.figures import (
    ABSENT_COLOUR,
    MAX_NODE_AREA,
    MIN_NODE_AREA,
    dag_node_areas,
    dag_node_colours,
)
from hcebench.report.losses import loss_label
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from metrics_fixtures import grid_metrics, grid_values, headline_rows

GREEN, RED, WHITE = np.array(to_rgba("#1a9850")), np.array(to_rgba("#d73027")), np.ones(4)


def test_fig2d_colours_green_gain_red_loss_white_zero_grey_absent():
    gain, loss, zero, absent = dag_node_colours(np.array([0.2, -0.2, 0.0, np.nan]))
    np.testing.assert_allclose(gain, GREEN, atol=1e-6)
    np.testing.assert_allclose(loss, RED, atol=1e-6)
    np.testing.assert_allclose(zero, WHITE, atol=1e-2)
    np.testing.assert_allclose(absent, to_rgba(ABSENT_COLOUR))


def test_fig2d_scale_is_symmetric_about_zero():
    # The largest |ΔF1| (a gain of 0.2) sets both ends: a loss of 0.1 is half-way from white to red.
    gain, half_loss = dag_node_colours(np.array([0.2, -0.1]))
    np.testing.assert_allclose(gain, GREEN, atol=1e-6)
    np.testing.assert_allclose(half_loss[:3], ((WHITE + RED) / 2)[:3], atol=0.02)
    # Only absent types: all grey, no scale needed.
    np.testing.assert_allclose(dag_node_colours(np.array([np.nan, np.nan])), [to_rgba(ABSENT_COLOUR)] * 2)


def test_fig2d_node_area_is_proportional_to_training_cells():
    areas = dag_node_areas(np.array([1000, 500, 250, 1, 0]))
    assert areas[0] == MAX_NODE_AREA
    assert areas[0] / areas[1] == pytest.approx(2.0) and areas[1] / areas[2] == pytest.approx(2.0)
    assert areas[3] == areas[4] == MIN_NODE_AREA  # too few cells to see: drawn at the floor


def test_fig2d_draws_each_node_with_its_own_colour_and_area(tmp_path, monkeypatch):
    drawn = []
    scatter = Axes.scatter

    def record(self, *args, **kwargs):
        drawn.append(kwargs)
        return scatter(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", record)
    hierarchy = five_node_dag()
    delta = {"A": 0.1, "B": -0.1, "C": 0.0, "E": 0.05}  # D is absent from the OOD set
    counts = {"A": 400, "B": 200, "C": 100, "D": 100, "E": 50}
    path = tmp_path / "fig2d.png"
    figures.ontology_dag(hierarchy, layered_layout(hierarchy.reachability), counts, delta, path)
    assert path.stat().st_size > 0
    (nodes,) = [kw for kw in drawn if "c" in kw]
    expected = dag_node_colours(np.array([delta.get(t, np.nan) for t in TERMS]))
    np.testing.assert_allclose(nodes["c"], expected)
    np.testing.assert_allclose(nodes["c"][TERMS.index("A")], GREEN, atol=1e-6)
    np.testing.assert_allclose(nodes["c"][TERMS.index("B")], RED, atol=1e-6)
    np.testing.assert_allclose(nodes["c"][TERMS.index("D")], to_rgba(ABSENT_COLOUR))
    np.testing.assert_allclose(nodes["s"], dag_node_areas(np.array([counts[t] for t in TERMS])))


# -- any set of losses, decoded models and controls ---------------------------------------------------------------
def assert_drawn(path) -> None:
    """A PNG that draws data, not the placeholder written when there is nothing to show (400 × 200)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert figures.NO_DATA_TITLE.encode() not in data, f"{path.name} is the 'no data' placeholder"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) != (400, 200) and width >= 400 and height >= 250, (path.name, width, height)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the functions close, in order, still open to inspection."""
    closed = []
    close = figures.plt.close

    def keep(fig=None):
        closed.append(fig)
        close(fig)

    monkeypatch.setattr(figures.plt, "close", keep)
    return closed


def _means(split="ood"):
    m = grid_metrics()
    m = m[m["split"] == split]
    return m.groupby(["architecture", "loss"])["value"].mean()


def test_fig2b_draws_every_loss_hatches_decodings_and_brackets_with_controls(tmp_path, drawn):
    path = tmp_path / "fig2b.png"
    figures.macro_f1_by_architecture(grid_metrics(), path)
    assert_drawn(path)
    (ax,) = drawn[0].axes
    means = _means()
    bars = [(round(p.get_height(), 9), bool(p.get_hatch())) for p in ax.patches]
    models = means.drop([a for a in means.index.get_level_values(0) if a.startswith("control_")], level=0)
    assert sorted(h for h, _ in bars) == sorted(round(v, 9) for v in models)  # a bar per model and reference
    assert sum(hatched for _, hatched in bars) == 4  # ce_prop and hce_prop of two architectures
    lines = {round(line.get_ydata()[0], 9) for line in ax.lines if len(set(line.get_ydata())) == 1}
    assert {0.04, 0.08, 1.0} <= lines  # random (mean of its seeds), majority, truth
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["linear", "mlp", "celltypist"]  # the reference method after the trained architectures
    texts = {t.get_text() for t in ax.texts}
    assert f"{100 * 0.0225 / 0.505:+.1f}%" in texts  # linear HCE over CE
    # Controls are named once, in the legend (names beside close lines printed over each other).
    legend = {t.get_text() for t in drawn[0].legends[0].get_texts()}
    assert {"control: random (0.04)", "control: majority (0.08)", "control: truth (1.00)"} <= legend
    # Every bar has the same width, whatever its architecture's number of losses (celltypist has one).
    assert len({round(p.get_width(), 9) for p in ax.patches}) == 1


def test_loss_ranking_orders_each_architectures_losses_by_mean(tmp_path, drawn):
    path = tmp_path / "loss_ranking.png"
    figures.loss_ranking(grid_metrics(), path)
    assert_drawn(path)
    axes = drawn[0].axes
    assert [ax.get_title() for ax in axes] == ["linear", "mlp", "celltypist"]
    top_down = [t.get_text() for t in axes[0].get_yticklabels()][::-1]
    means = _means()["linear"].sort_values(ascending=False)
    assert top_down == [loss_label(loss) for loss in means.index]
    assert top_down[0] == "HCE + prop." and top_down[-1] == "CE"
    seeds = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert seeds == 5 * 4  # a dot per seed of each loss
    verticals = {round(line.get_xdata()[0], 9) for line in axes[0].lines if len(set(line.get_xdata())) == 1}
    assert {0.04, 0.08, 1.0} <= verticals


def test_loss_ranking_without_a_model_is_the_placeholder(tmp_path):
    path = tmp_path / "loss_ranking.png"
    metrics = grid_metrics()
    figures.loss_ranking(metrics[metrics["architecture"].str.startswith("control_")], path)
    assert figures.NO_DATA_TITLE.encode() in path.read_bytes()


def test_coarse_share_sweep_draws_each_losses_gain_against_the_share(tmp_path, drawn):
    shares = (0.0, 0.25, 0.5, 1.0)
    path = tmp_path / "sweep.png"
    figures.coarse_share_sweep([(s, grid_metrics(hce_scale=s)) for s in shares], path)
    assert_drawn(path)
    axes = drawn[0].axes
    assert [ax.get_title() for ax in axes] == ["linear", "mlp"]
    # The data lines (error bar caps are lines without a line style).
    curves = [
        line
        for line in axes[0].lines
        if len(line.get_xdata()) == len(shares) and line.get_linestyle() != "None"
    ]
    assert len(curves) == 4  # ce_prop, hce, hce_prop, soft_labels
    ys = [np.asarray(line.get_ydata()) for line in curves]
    assert any(np.allclose(y, [s * 0.0225 for s in shares]) for y in ys)  # HCE's gain grows with the share
    assert any(np.allclose(y, 0.03) for y in ys)  # CE + prop.'s does not
    # From the runs' summary.tsv instead: the same curves.
    figures.coarse_share_sweep([(s, summarise(grid_metrics(hce_scale=s))) for s in shares], path)
    again = [
        np.asarray(line.get_ydata())
        for line in drawn[1].axes[0].lines
        if len(line.get_xdata()) == len(shares) and line.get_linestyle() != "None"
    ]
    assert len(again) == len(ys) and all(np.allclose(a, b) for a, b in zip(again, ys, strict=True))


def test_coarse_share_sweep_without_comparisons_is_the_placeholder(tmp_path):
    controls_only = grid_metrics()
    controls_only = controls_only[controls_only["loss"] == "none"]
    figures.coarse_share_sweep([(0.0, controls_only)], tmp_path / "sweep.png")
    assert figures.NO_DATA_TITLE.encode() in (tmp_path / "sweep.png").read_bytes()


def test_hierarchical_panel_has_hop_f1_and_a_row_per_architecture(tmp_path, drawn):
    metrics = ["hP", "hR", "hF", "mean_error_distance", "accuracy_depth0", "accuracy_depth1"]
    metrics += [f"hop_f1_k{k}" for k in range(4)]
    rows = [
        {
            "architecture": a,
            "loss": loss,
            "split": "ood",
            "metric": m,
            "value": 0.5,
            "ci_low": 0.4,
            "ci_high": 0.6,
        }
        for a, losses in (("linear", ("ce", "ce_prop", "hce", "soft_labels")), ("mlp", ("ce", "hce_prop")))
        for loss in losses
        for m in metrics
    ]
    rows += [
        {
            "architecture": a,
            "loss": "none",
            "split": "ood",
            "metric": m,
            "value": v,
            "ci_low": v,
            "ci_high": v,
        }
        for a, v in (("control_random", 0.1), ("control_truth", 1.0))
        for m in metrics
    ]
    path = tmp_path / "hierarchical.png"
    figures.hierarchical_panel(pd.DataFrame(rows), path)
    assert_drawn(path)
    axes = drawn[0].axes
    assert len(axes) == 2 * 4  # two architectures × (hP/hR/hF, distance, depth, hop-F1)
    titled = [ax for ax in axes if ax.get_title()]  # the first row names the panels of each column
    assert [ax.get_title() for ax in titled] == [
        "hP / hR / hF",
        "errors: mean distance",
        "accuracy by true depth",
        "hop-F1 (within k edges)",
    ]
    hop = titled[3]
    assert [t.get_text() for t in hop.get_xticklabels()] == ["0", "1", "2", "3"] and hop.get_xlabel() == ""
    assert axes[-1].get_xlabel() == "k" and [ax.get_ylabel().split()[0] for ax in axes[::4]] == [
        "linear",
        "mlp",
    ]
    legend = {t.get_text() for t in drawn[0].legends[0].get_texts()}
    assert {
        "CE",
        "CE + prop.",
        "HCE",
        "HCE + prop.",
        "soft labels",
        "control: random",
        "control: truth",
    } == legend


def test_every_other_figure_draws_new_losses_and_controls(tmp_path):
    runs = [
        (a, loss, seed)
        for a, losses in (("linear", ("ce", "ce_prop", "hce", "soft_labels")), ("control_random", ("none",)))
        for loss in losses
        for seed in (0, 1)
    ]
    ident = pd.DataFrame(runs, columns=["architecture", "loss", "seed"]).assign(split="ood")
    figures.id_versus_ood(grid_metrics(), tmp_path / "id_vs_ood.png")
    backoff = pd.concat(
        [ident.assign(tau=tau, consistency=1 - tau / 2, specificity=tau) for tau in (0.1, 0.5, 0.9)]
    )
    figures.backoff_curves(backoff, tmp_path / "backoff.png")
    calibration = pd.concat(
        [
            ident.assign(level=lv, ece=0.1 * i, brier=0.2 * i, n_cells=10)
            for i, lv in enumerate(["leaf", "depth0"])
        ]
    )
    figures.calibration_levels(calibration, tmp_path / "calibration.png")
    novel = pd.concat(
        [
            ident.assign(
                novel_label=n, novel_label_name=n, nearest_trained_ancestor="B", accuracy_at_ancestor=0.5
            )
            for n in ("all", "X", "Y")
        ]
    )
    meta = {"n_cells_scored": 8, "n_cells": 10, "coverage": 0.8}
    figures.novel_types(novel, meta, tmp_path / "novel.png")
    strata = headline_rows({k: v for k, v in grid_values().items() if k[2] == "ood"}).assign(
        stratum_type="tissue", stratum="lung"
    )
    cells = strata.assign(metric="n_cells", value=100)
    figures.stratified_heatmaps(stratified_macro_f1(pd.concat([strata, cells])), tmp_path / "stratified.png")
    histories = pd.concat([ident.assign(epoch=e, val_macro_f1=0.1 * e) for e in range(1, 4)])
    figures.training_curves(
        histories[histories["loss"].isin(["ce", "hce", "soft_labels"])], tmp_path / "curves.png"
    )
    for name in ("id_vs_ood", "backoff", "calibration", "novel", "stratified", "curves"):
        assert_drawn(tmp_path / f"{name}.png")


def test_every_loss_has_a_colour_and_a_decoding_a_lighter_one():
    colours = {
        loss: figures.loss_colour(loss) for loss in ("ce", "hce", "soft_labels", "focal", "focal_prop")
    }
    assert colours["ce"] == figures.LOSS_COLOURS["ce"] and colours["hce"] == figures.LOSS_COLOURS["hce"]
    assert colours["focal"] in figures.SPARE_COLOURS and figures.loss_colour("focal") == colours["focal"]
    light = np.array(to_rgba(figures.loss_colour("hce_prop"))[:3])
    assert (light >= np.array(to_rgba(colours["hce"])[:3])).all() and not np.allclose(
        light, to_rgba(colours["hce"])[:3]
    )
