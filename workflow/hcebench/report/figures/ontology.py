"""The per-cell-type and hierarchy figures: ΔF1 (HCE − CE) per cell type (Fig. 2c), the label set's Hasse diagram
coloured by it (Fig. 2d) and ΔF1 against each type's connectivity."""

from __future__ import annotations

import math
import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_rgba
from matplotlib.lines import Line2D

from hcebench.axes import BASELINE_LOSS, PAPER_LOSS
from hcebench.report.figure_check import colliding
from hcebench.report.figures.style import (
    COLUMN_MM,
    FONT_PT,
    LOSS_COLOURS,
    PAGE_MM,
    SMALL_PT,
    legend_below,
    mm,
    no_data,
    save,
    shorten,
)

# -- per-cell-type and hierarchy figures ----------------------------------------------------------------
SIGNIFICANCE = 0.05
#: Fig. 2c: at most this many cell types per column (a row is ~3 mm); more types wrap into up to three columns.
ROWS_PER_COLUMN = 60


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
    """Fig. 2c: per-cell-type ΔF1 (HCE − CE) for one architecture, sorted (largest gain on top); error bars are
    the sd of the seed-paired differences; ``*`` marks Holm–Bonferroni adjusted p ≤ 0.05, ``·`` raw p ≤ 0.05
    only. A column holds at most ``ROWS_PER_COLUMN`` types; more wrap into further columns (a page wide)."""
    if table.empty:
        no_data(path, f"no per-cell-type F1 for {architecture} on {split}")
        return
    table = table.sort_values("delta", ascending=False, kind="stable").reset_index(drop=True)
    n = len(table)
    cols = max(1, math.ceil(n / ROWS_PER_COLUMN))
    rows = math.ceil(n / cols)
    width_mm = COLUMN_MM if cols == 1 else PAGE_MM
    label_pt = (width_mm / cols) / 25.4 * 72.0 * 0.58
    fig, axes = plt.subplots(
        1, cols, figsize=mm(width_mm, 24.0 + 3.0 * rows), squeeze=False, sharex=True, layout="constrained"
    )
    reach = (table["delta"].abs() + table["sd_diff"].fillna(0).abs()).max()
    lim = 1.25 * float(reach) if np.isfinite(reach) and reach > 0 else 0.1
    for c, ax in enumerate(axes[0]):
        part = table.iloc[c * rows : (c + 1) * rows]
        y = np.arange(len(part))
        colours = np.where(part["delta"] >= 0, LOSS_COLOURS[PAPER_LOSS], LOSS_COLOURS[BASELINE_LOSS])
        ax.barh(
            y,
            part["delta"],
            xerr=part["sd_diff"].fillna(0),
            height=0.75,
            color=colours,
            alpha=0.85,
            error_kw={"lw": 0.5, "capsize": 1.2, "capthick": 0.5},
        )
        for yi, (_, r) in zip(y, part.iterrows(), strict=True):
            mark = _significance_mark(r["p_holm"], r["p"])
            if mark:
                side = 1.0 if r["delta"] >= 0 else -1.0
                end = r["delta"] + side * (abs(r["sd_diff"]) if np.isfinite(r["sd_diff"]) else 0.0)
                ax.annotate(
                    mark,
                    (end, yi),
                    xytext=(2 * side, 0),
                    textcoords="offset points",
                    va="center",
                    ha="left" if side > 0 else "right",
                    fontsize=FONT_PT,
                    fontweight="bold",
                )
        labels = [shorten(str(names.get(t, t)), label_pt) for t in part["term_id"]]
        ax.set_yticks(y, labels)
        ax.set_ylim(rows - 0.5, -0.5)  # the first (largest gain) on top; every column the same row height
        ax.set_xlim(-lim, lim)
        ax.axvline(0, color="black", lw=0.6)
        ax.tick_params(axis="y", length=0)
    fig.supxlabel(
        f"ΔF1 (HCE − CE), {'OOD' if split == 'ood' else split}, mean over seed pairs", fontsize=FONT_PT
    )
    fig.suptitle(
        f"{architecture}: ΔF1 per cell type   * Holm-adjusted p ≤ {SIGNIFICANCE}   · raw p ≤ {SIGNIFICANCE}",
        fontsize=FONT_PT,
    )
    save(fig, path)


#: Fig. 2d's colours as the paper draws them: ΔF1 (HCE − CE) on a diverging scale centred at 0, red where HCE
#: loses, white at no change, green where it gains; grey for types absent from the OOD set (no ΔF1).
DELTA_CMAP = LinearSegmentedColormap.from_list("hce_delta", ["#d73027", "#ffffff", "#1a9850"])
ABSENT_COLOUR = "#bdbdbd"
#: Marker area (pt²) of the type with the most training cells; the others scale in proportion.
MAX_NODE_AREA = 260.0
#: Smallest area drawn, so that a type with few training cells stays visible (below it, area is not ∝ cells).
MIN_NODE_AREA = 5.0


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


def _label_priority(names, counts: np.ndarray, delta: np.ndarray) -> list[int]:
    """Order in which Fig. 2d names its nodes: types with a ΔF1 by its size, then the rest by training cells."""
    return sorted(
        range(len(names)),
        key=lambda i: (
            not np.isfinite(delta[i]),
            -abs(delta[i]) if np.isfinite(delta[i]) else 0.0,
            -counts[i],
        ),
    )


def _place_labels(ax, renderer, xy, radii_pt, names, order, wrap_pt: float, dense: bool) -> int:
    """Name the nodes of ``order`` in turn, each at the first of a few spots (below, above, right, left, further
    below or above, and rotated when ``dense``) where its text meets no other name, no node and stays inside the axes; a node
    with no free spot stays unnamed. Returns the number named."""
    px = renderer.points_to_pixels(1.0)
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform(xy)
    nodes = np.column_stack([centres - radii_pt[:, None] * px, centres + radii_pt[:, None] * px])
    placed: list[np.ndarray] = []
    named = 0
    for i in order:
        chars = max(8, int(wrap_pt / (0.55 * SMALL_PT)))
        lines = textwrap.wrap(names[i], chars, break_long_words=False)
        text = (
            "\n".join(lines[:3])
            if len(lines) <= 3
            else "\n".join([*lines[:2], shorten(" ".join(lines[2:]), wrap_pt)])
        )
        gap = radii_pt[i] + 1.5
        spots = [
            (0, -gap, "center", "top", 0),
            (0, gap, "center", "bottom", 0),
            (gap, 0, "left", "center", 0),
            (-gap, 0, "right", "center", 0),
            (0, -gap - 16, "center", "top", 0),
            (0, gap + 16, "center", "bottom", 0),
        ]
        if dense:
            spots += [(0, -gap, "center", "top", 90), (0, gap, "center", "bottom", 90)]
        for dx, dy, ha, va, rot in spots:
            label = ax.annotate(
                text if rot == 0 else shorten(names[i], 70.0),
                xy[i],
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                rotation=rot,
                fontsize=SMALL_PT,
                linespacing=0.95,
                zorder=4,
                bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.75},
            )
            b = label.get_window_extent(renderer)
            box = np.array([b.x0, b.y0, b.x1, b.y1])
            # inside the axes, or left of them into the figure's margin (the colour bar stands on the right)
            inside = b.x0 >= 2 * px and b.x1 <= frame.x1 and b.y0 >= frame.y0 and b.y1 <= frame.y1
            others = np.vstack([*placed, nodes]) if placed else nodes
            hit = colliding(box, others, px).any()
            if inside and not hit:
                placed.append(box[None, :])
                named += 1
                break
            label.remove()
    return named


def ontology_dag(
    hierarchy,
    layout,
    train_counts: dict[str, int],
    delta: dict[str, float],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Fig. 2d: the label set's Hasse diagram in a layered layout, a page wide. Node area ∝ training cells
    (``dag_node_areas``); colour = ΔF1 (HCE − CE) on a colour bar, green for a gain, red for a loss, white at 0,
    grey for types absent from the OOD set (``dag_node_colours``). Nodes are named where the name fits without
    touching another (largest |ΔF1| first); the title says how many are named when not all are."""
    k = hierarchy.k
    if not k:
        no_data(path, "empty label set")
        return
    xy = np.asarray(layout.xy, dtype=float)
    n_layers = int(layout.layer.max()) + 1
    x_lo, x_hi = float(xy[:, 0].min()) - 0.8, float(xy[:, 0].max()) + 0.8
    axes_w_mm = PAGE_MM - 24.0  # the colour bar and its label on the right
    unit_pt = axes_w_mm / 25.4 * 72.0 / (x_hi - x_lo)
    dense = k > 60  # the paper's label set: names may also stand rotated
    pitch_mm = 30.0 if dense else 22.0  # room between layers for up to three lines of names
    axes_h_mm = pitch_mm * max(n_layers - 1, 0) + 22.0
    legend_mm, title_mm = 14.0, 9.0
    height_mm = axes_h_mm + legend_mm + title_mm
    fig = plt.figure(figsize=mm(PAGE_MM, height_mm))
    ax = fig.add_axes((2.0 / PAGE_MM, legend_mm / height_mm, axes_w_mm / PAGE_MM, axes_h_mm / height_mm))
    ax.set_xlim(x_lo, x_hi)
    margin = 11.0 / pitch_mm  # 11 mm above the top layer and below the bottom one, in layer units
    ax.set_ylim(-(n_layers - 1) - margin, margin)
    ax.axis("off")
    for pts in layout.paths:
        ax.plot(pts[:, 0], pts[:, 1], color="#b0b0b0", lw=0.5, zorder=1)
    counts = np.array([train_counts.get(t, 0) for t in hierarchy.term_ids], dtype=float)
    # Nodes shrink on a crowded layer (the paper's 164 labels): the largest spans at most ~1.4 layout units.
    scale = float(np.clip((1.4 * unit_pt) ** 2 / (4.0 * MAX_NODE_AREA / np.pi), 0.15, 1.0))
    size = dag_node_areas(counts) * scale
    d = np.array([delta.get(t, np.nan) for t in hierarchy.term_ids], dtype=float)
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=dag_node_colours(d), edgecolor="#404040", lw=0.5, zorder=3)
    renderer = fig.canvas.get_renderer()
    radii = np.sqrt(size / np.pi)  # pt: a scatter's area is in pt²
    wrap_pt = max(55.0, min(1.8 * unit_pt, 90.0))
    named = _place_labels(
        ax,
        renderer,
        xy,
        radii,
        list(hierarchy.names),
        _label_priority(hierarchy.names, counts, d),
        wrap_pt,
        dense,
    )
    handles = [_area_handle(40.0, ABSENT_COLOUR, "absent from OOD")]
    if counts.max() > 0:
        handles += [
            _area_handle(
                MAX_NODE_AREA * scale * share, "white", f"{share * counts.max():,.0f} training cells"
            )
            for share in (1.0, 0.25)
        ]
    if np.isfinite(d).any():
        cax = fig.add_axes(
            (1.0 - 18.0 / PAGE_MM, (legend_mm + 6.0) / height_mm, 2.5 / PAGE_MM, 0.55 * axes_h_mm / height_mm)
        )
        bar = fig.colorbar(ScalarMappable(norm=delta_norm(d), cmap=DELTA_CMAP), cax=cax)
        bar.set_label("ΔF1 (HCE − CE)", fontsize=SMALL_PT)
        bar.ax.tick_params(labelsize=SMALL_PT)
    head = title or "Label set (Cell Ontology is_a); area ∝ training cells, colour = ΔF1"
    if named < k:
        head += f"; {named} of {k} types named (all in celltype_delta.tsv)"
    fig.text(0.5, 1.0 - 2.0 / height_mm, head, ha="center", va="top", fontsize=FONT_PT)
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        frameon=False,
        fontsize=SMALL_PT,
        columnspacing=2.0,
        borderpad=0.6,
        handlelength=2.5,  # room for the largest reference marker (MAX_NODE_AREA) beside its text
    )
    save(fig, path)


def connectivity_scatter(
    table: pd.DataFrame, correlation: dict, path: str | os.PathLike, *, architecture: str
) -> None:
    """ΔF1 per cell type against (a) its connectivity (ancestors + subtypes in the label set) and (b) the
    coarse-labelled fraction of its subtree's training cells; circles = coarse labels (with subtypes), diamonds =
    leaves; Spearman's rho with its bootstrap CI above panel a."""
    sub = table.dropna(subset=["delta"])
    if sub.empty:
        no_data(path, f"no ΔF1 for {architecture}: needs CE and HCE runs on the OOD split")
        return
    fig, axes = plt.subplots(1, 2, figsize=mm(PAGE_MM, 70.0), sharey=True, layout="constrained")
    handles = []
    for coarse, marker, label in ((True, "o", "coarse (has subtypes)"), (False, "D", "leaf")):
        s = sub[sub["is_coarse"] == coarse]
        colour = LOSS_COLOURS[PAPER_LOSS] if coarse else "#1b9e77"
        axes[0].scatter(
            s["connectivity"] + np.random.default_rng(0).uniform(-0.15, 0.15, len(s)),
            s["delta"],
            marker=marker,
            s=12,
            color=colour,
            alpha=0.8,
            lw=0,
        )
        axes[1].scatter(
            s["subtree_coarse_fraction"], s["delta"], marker=marker, s=12, color=colour, alpha=0.8, lw=0
        )
        handles.append(Line2D([], [], marker=marker, ls="", color=colour, label=label))
    c = correlation
    axes[0].set_title(
        f"a   Spearman ρ = {c['rho']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}], n = {c['n']}", loc="left"
    )
    axes[1].set_title("b", loc="left")
    axes[0].set_xlabel("connectivity (ancestors + subtypes in the label set)")
    axes[1].set_xlabel("coarse-labelled fraction of the subtree's training cells")
    axes[0].set_ylabel(f"ΔF1 (HCE − CE), {architecture}, OOD")
    for ax in axes:
        ax.axhline(0, color="black", lw=0.6)
    legend_below(fig, handles)
    save(fig, path)
