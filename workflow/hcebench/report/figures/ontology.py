"""The per-cell-type and hierarchy figures: ΔF1 (HCE − CE) per cell type (Fig. 2c), the label set's Hasse diagram
coloured by it (Fig. 2d) and ΔF1 against each type's connectivity."""

from __future__ import annotations

import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_rgba
from matplotlib.lines import Line2D

from hcebench.axes import BASELINE_LOSS, PAPER_LOSS
from hcebench.report.figures.style import LOSS_COLOURS, no_data

# -- per-cell-type and hierarchy figures ----------------------------------------------------------------
SIGNIFICANCE = 0.05


def _significance_mark(p_holm: float, p: float) -> str:
    if np.isfinite(p_holm) and p_holm <= SIGNIFICANCE:
        return "*"
    if np.isfinite(p) and p <= SIGNIFICANCE:
        return "·"
    return ""


def celltype_delta(
    table: pd.DataFrame,
    names: dict[str, str],
    path: str | os.PathLike,
    *,
    architecture: str,
    split: str = "ood",
) -> None:
    """Fig. 2c: per-cell-type ΔF1 (HCE − CE) for one architecture, sorted; error bars are the sd of the
    seed-paired differences; ``*`` marks Holm–Bonferroni adjusted p ≤ 0.05, ``·`` raw p ≤ 0.05 only."""
    if table.empty:
        no_data(path, f"no per-cell-type F1 for {architecture} on {split}")
        return
    n = len(table)
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.24 * n))
    y = np.arange(n)
    colours = np.where(table["delta"] >= 0, LOSS_COLOURS[PAPER_LOSS], LOSS_COLOURS[BASELINE_LOSS])
    ax.barh(
        y,
        table["delta"],
        xerr=table["sd_diff"].fillna(0),
        color=colours,
        alpha=0.8,
        error_kw={"lw": 0.8, "capsize": 2},
    )
    lo, hi = ax.get_xlim()
    for yi, (_, r) in zip(y, table.iterrows(), strict=True):
        mark = _significance_mark(r["p_holm"], r["p"])
        if mark:
            x = r["delta"] + np.sign(r["delta"] or 1) * (
                abs(r["sd_diff"]) if np.isfinite(r["sd_diff"]) else 0
            )
            ax.text(
                x + 0.01 * (hi - lo) * np.sign(r["delta"] or 1),
                yi,
                mark,
                va="center",
                ha="left" if r["delta"] >= 0 else "right",
                fontsize=11,
                fontweight="bold",
            )
    ax.set_yticks(y, [f"{names.get(t, t)}" for t in table["term_id"]], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"ΔF1 (HCE − CE), {'OOD' if split == 'ood' else split}, mean over seed pairs")
    ax.set_title(
        f"{architecture}: per-cell-type ΔF1  (* Holm p ≤ {SIGNIFICANCE}, · raw p ≤ {SIGNIFICANCE})",
        fontsize=9,
    )
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


#: Fig. 2d's colours as the paper draws them: ΔF1 (HCE − CE) on a diverging scale centred at 0, red where HCE
#: loses, white at no change, green where it gains; grey for types absent from the OOD set (no ΔF1).
DELTA_CMAP = LinearSegmentedColormap.from_list("hce_delta", ["#d73027", "#ffffff", "#1a9850"])
ABSENT_COLOUR = "#bdbdbd"
#: Marker area (pt²) of the type with the most training cells; the others scale in proportion.
MAX_NODE_AREA = 900.0
#: Smallest area drawn, so that a type with few training cells stays visible (below it, area is not ∝ cells).
MIN_NODE_AREA = 6.0


def delta_norm(delta: np.ndarray) -> TwoSlopeNorm:
    """The ΔF1 scale: symmetric about 0 (white), to the largest |ΔF1| (at least 1e-3)."""
    finite = np.asarray(delta, dtype=float)
    finite = finite[np.isfinite(finite)]
    lim = max(float(np.abs(finite).max()), 1e-3) if finite.size else 1e-3
    return TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)


def dag_node_colours(delta: np.ndarray) -> np.ndarray:
    """RGBA per node for Fig. 2d: ``DELTA_CMAP`` under ``delta_norm`` (green gain, red loss, white at 0);
    ``ABSENT_COLOUR`` where ΔF1 is missing (the type is absent from the OOD set)."""
    delta = np.asarray(delta, dtype=float)
    colours = np.tile(np.array(to_rgba(ABSENT_COLOUR)), (len(delta), 1))
    present = np.isfinite(delta)
    if present.any():
        colours[present] = DELTA_CMAP(delta_norm(delta)(delta[present]))
    return colours


def dag_node_areas(counts: np.ndarray) -> np.ndarray:
    """Marker area per node for Fig. 2d: proportional to training cells (``MAX_NODE_AREA`` for the largest),
    floored at ``MIN_NODE_AREA``."""
    counts = np.asarray(counts, dtype=float)
    if not counts.size or counts.max() <= 0:
        return np.full(len(counts), 60.0)
    return np.maximum(MAX_NODE_AREA * counts / counts.max(), MIN_NODE_AREA)


def _area_handle(area: float, colour: str, label: str) -> Line2D:
    """A legend marker of ``area`` pt² (a scatter's ``s``); Line2D sizes are diameters in points."""
    return Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        markersize=np.sqrt(area),
        markerfacecolor=colour,
        markeredgecolor="#404040",
        markeredgewidth=0.6,
        label=label,
    )


def ontology_dag(
    hierarchy,
    layout,
    train_counts: dict[str, int],
    delta: dict[str, float],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Fig. 2d: the label set's Hasse diagram in a layered layout. Node area ∝ training cells
    (``dag_node_areas``); colour = ΔF1 (HCE − CE), green for a gain, red for a loss, white at 0, grey for types
    absent from the OOD set (``dag_node_colours``)."""
    k = hierarchy.k
    xy = layout.xy
    small = k <= 60  # few enough nodes for wrapped, horizontal names; else short rotated names
    span = np.ptp(xy[:, 0]) + 2 if k else 1.0
    width = max(7.0, (1.05 if small else 0.42) * span)
    height = max(4.0, (1.4 if small else 1.9) * (layout.layer.max() + 1) + 1.5 if k else 4.0)
    fig, ax = plt.subplots(figsize=(min(width, 40), min(height, 24)))
    for pts in layout.paths:
        ax.plot(pts[:, 0], pts[:, 1], color="#b0b0b0", lw=0.7, zorder=1)
    counts = np.array([train_counts.get(t, 0) for t in hierarchy.term_ids], dtype=float)
    size = dag_node_areas(counts)
    d = np.array([delta.get(t, np.nan) for t in hierarchy.term_ids], dtype=float)
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=dag_node_colours(d), edgecolor="#404040", lw=0.6, zorder=3)
    handles = [_area_handle(60.0, ABSENT_COLOUR, "absent from OOD")]
    if counts.max() > 0:
        handles += [
            _area_handle(MAX_NODE_AREA * share, "white", f"{share * counts.max():,.0f} training cells")
            for share in (1.0, 0.25)
        ]
    if np.isfinite(d).any():
        mappable = ScalarMappable(norm=delta_norm(d), cmap=DELTA_CMAP)
        fig.colorbar(mappable, ax=ax, shrink=0.5, pad=0.01, label="ΔF1 (HCE − CE): green gain, red loss")
    for i, name in enumerate(hierarchy.names):
        if small:
            ax.text(
                xy[i, 0],
                xy[i, 1] - 0.2,
                textwrap.fill(name, 16),
                ha="center",
                va="top",
                fontsize=6,
                zorder=4,
                linespacing=0.9,
            )
        else:
            short = name if len(name) <= 28 else name[:26] + "…"
            ax.text(
                xy[i, 0], xy[i, 1] - 0.12, short, ha="center", va="top", fontsize=4.5, zorder=4, rotation=90
            )
    ax.set_title(title or "Label set (Cell Ontology is_a); area ∝ training cells, colour = ΔF1")
    ax.axis("off")
    ax.margins(0.04, 0.08)
    # The legend sits in a strip of its own below the graph and its names, where it hides nothing.
    strip = 0.8 / fig.get_figheight()
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        frameon=False,
        fontsize=8,
        columnspacing=2.5,
        borderpad=1.0,
        handlelength=4.5,  # room for the largest reference marker (MAX_NODE_AREA) beside its text
    )
    fig.tight_layout(rect=(0.0, strip, 1.0, 1.0))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def connectivity_scatter(
    table: pd.DataFrame, correlation: dict, path: str | os.PathLike, *, architecture: str
) -> None:
    """ΔF1 per cell type against its connectivity (ancestors + subtypes in the label set); filled = coarse
    labels (with subtypes), open = leaves; Spearman's rho with its bootstrap CI in the title."""
    sub = table.dropna(subset=["delta"])
    if sub.empty:
        no_data(path, f"no ΔF1 for {architecture}: needs CE and HCE runs on the OOD split")
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for coarse, marker, label in ((True, "o", "coarse (has subtypes)"), (False, "D", "leaf")):
        s = sub[sub["is_coarse"] == coarse]
        axes[0].scatter(
            s["connectivity"] + np.random.default_rng(0).uniform(-0.15, 0.15, len(s)),
            s["delta"],
            marker=marker,
            color=LOSS_COLOURS[PAPER_LOSS] if coarse else "#1b9e77",
            label=label,
            alpha=0.8,
        )
        axes[1].scatter(
            s["subtree_coarse_fraction"],
            s["delta"],
            marker=marker,
            color=LOSS_COLOURS[PAPER_LOSS] if coarse else "#1b9e77",
            alpha=0.8,
        )
    c = correlation
    axes[0].set_title(
        f"Spearman ρ = {c['rho']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}], n = {c['n']}", fontsize=9
    )
    axes[0].set_xlabel("connectivity (ancestors + subtypes in the label set)")
    axes[1].set_xlabel("coarse-labelled fraction of the subtree's training cells")
    axes[0].set_ylabel(f"ΔF1 (HCE − CE), {architecture}, OOD")
    axes[0].legend(frameon=False, fontsize=8)
    for ax in axes:
        ax.axhline(0, color="black", lw=0.6)
        sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
