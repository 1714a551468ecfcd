"""Figures from the metrics table. Each function writes one image and returns nothing.

Losses are drawn from ``hcebench.report.losses``: any loss of the grid gets a colour (``loss_colour``), a name and
a place; a model decoded by propagation (``<loss>_prop``) shares its loss's hue, lighter, hatched or dashed; control
methods are reference lines, not bars.
"""

from __future__ import annotations

import os
import textwrap
import zlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # rules run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_hex, to_rgb, to_rgba  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from hcebench.report.aggregate import headline, sweep_gains  # noqa: E402
from hcebench.report.losses import (  # noqa: E402
    BASELINE_LOSS,
    REFERENCE_ARCHITECTURES,
    ROLE_CONTROL,
    architecture_order,
    base_loss,
    control_bound,
    control_name,
    is_decoded,
    loss_label,
    loss_order,
    row_role,
)

#: Colour of each loss that has one of its own; ``loss_colour`` gives any other loss a stable spare colour.
LOSS_COLOURS = {
    "ce": "#8c8c8c",
    "hce": "#d95f02",
    "soft_labels": "#1b9e77",
    "hxe": "#7570b3",
    "hace": "#e7298a",
}
#: Colours for losses missing from ``LOSS_COLOURS``, chosen by a hash of the name (stable across figures and runs).
SPARE_COLOURS = ("#e6ab02", "#a6761d", "#1f78b4", "#b15928", "#6a3d9a", "#33a02c")
#: How far a decoded model's colour moves from its loss's towards white.
DECODED_LIGHTEN = 0.45
DECODED_HATCH = "///"
#: Control reference lines: lower bounds (random, majority) dashed grey, the upper bound (truth) dotted black; a
#: control without a style of its own takes its bound's.
CONTROL_STYLES = {
    "random": {"color": "#8c8c8c", "ls": "--"},
    "majority": {"color": "#4d4d4d", "ls": "-."},
    "truth": {"color": "#000000", "ls": ":"},
}
BOUND_STYLES = {"lower": {"color": "#4d4d4d", "ls": "--"}, "upper": {"color": "#000000", "ls": ":"}}


#: PNG "Title" of the placeholder a figure function writes when its inputs hold nothing to draw.
NO_DATA_TITLE = "hcebench: no data"


def _no_data(path: str | os.PathLike, why: str) -> None:
    """A small image that says why there is no figure (the rule's output must exist); tagged ``NO_DATA_TITLE``."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, why, ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=100, metadata={"Title": NO_DATA_TITLE})
    plt.close(fig)


def loss_colour(loss: str) -> str:
    """The loss's colour (``LOSS_COLOURS``, else a spare one by name); decoded models get it lightened."""
    base = base_loss(loss)
    colour = LOSS_COLOURS.get(base) or SPARE_COLOURS[zlib.crc32(base.encode()) % len(SPARE_COLOURS)]
    if not is_decoded(loss):
        return colour
    rgb = np.array(to_rgb(colour))
    return to_hex(rgb + (1.0 - rgb) * DECODED_LIGHTEN)


def control_style(architecture: str) -> dict[str, str]:
    """Colour and line style of a control's reference line (``CONTROL_STYLES``, else its bound's)."""
    return CONTROL_STYLES.get(control_name(architecture), BOUND_STYLES[control_bound(architecture)])


def _line_style(loss: str) -> str:
    return "--" if is_decoded(loss) else "-"


def _role_of(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [row_role(a, loss) for a, loss in zip(frame["architecture"], frame["loss"], strict=True)],
        index=frame.index,
        dtype=object,
    )


def _split_controls(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame``'s model and reference rows, and its control rows."""
    control = _role_of(frame) == ROLE_CONTROL if len(frame) else pd.Series(dtype=bool)
    return frame[~control], frame[control]


def _split_label(split: str) -> str:
    return "OOD" if split == "ood" else "ID test" if split == "test" else split


def _draw_controls(ax, controls: pd.DataFrame, *, vertical: bool = False) -> list[Line2D]:
    """One reference line per control at its mean over seeds: ``axhline`` named at the right edge, or, when
    ``vertical``, ``axvline`` named by the legend only (the names would collide near 0); returns legend handles."""
    handles = []
    for arch in architecture_order(controls["architecture"]):
        mean = controls.loc[controls["architecture"] == arch, "value"].mean()
        if not np.isfinite(mean):
            continue
        style = control_style(arch)
        if vertical:
            ax.axvline(mean, lw=1.1, zorder=1, **style)
        else:
            ax.axhline(mean, lw=1.1, zorder=1, **style)
            ax.text(
                1.0,
                mean,
                f" {control_name(arch)}",
                transform=ax.get_yaxis_transform(),
                ha="left",
                va="center",
                fontsize=7,
                color=style["color"],
            )
        label = f"control: {control_name(arch)} ({mean:.2f})"
        handles.append(Line2D([], [], lw=1.1, label=label, **style))
    return handles


def _loss_handles(losses) -> list[Patch]:
    return [
        Patch(
            facecolor=loss_colour(loss),
            edgecolor="#404040",
            hatch=DECODED_HATCH if is_decoded(loss) else None,
            label=loss_label(loss),
        )
        for loss in losses
    ]


def macro_f1_by_architecture(
    metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood", title: str = ""
) -> None:
    """Fig. 2b: macro F1 per architecture and loss; mean as a bar (hatched for a model decoded by propagation),
    one dot per seed, the relative gain over CE of the same architecture printed above each other bar. Reference
    methods (CellTypist) stand right of a dotted divider; controls are horizontal reference lines."""
    values = headline(metrics)
    values = values[values["split"] == split]
    if values.empty:
        _no_data(path, f"no {split} split in evaluation.splits")
        return
    bars, controls = _split_controls(values)
    archs = architecture_order(bars["architecture"])
    losses = loss_order(bars["loss"])
    n_bars = sum(bars[bars["architecture"] == a]["loss"].nunique() for a in archs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * n_bars + 1.2 * len(archs) + 2.0), 4.4))
    rng = np.random.default_rng(0)
    top = float(values["value"].max())
    for i, arch in enumerate(archs):
        sub = bars[bars["architecture"] == arch]
        present = [loss for loss in losses if (sub["loss"] == loss).any()]
        width = min(0.4, 0.8 / max(1, len(present)))
        ce = sub.loc[sub["loss"] == BASELINE_LOSS, "value"].mean()
        for j, loss in enumerate(present):
            x = i + (j - (len(present) - 1) / 2) * width
            v = sub.loc[sub["loss"] == loss, "value"].to_numpy(dtype=float)
            colour = loss_colour(loss)
            ax.bar(
                x,
                v.mean(),
                width * 0.92,
                color=colour,
                alpha=0.6,
                edgecolor="#404040",
                lw=0.6,
                hatch=DECODED_HATCH if is_decoded(loss) else None,
                zorder=2,
            )
            ax.scatter(
                x + rng.uniform(-0.22, 0.22, len(v)) * width,
                v,
                s=18,
                color=colour,
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
            )
            if loss != BASELINE_LOSS and np.isfinite(ce) and ce > 0:
                rel = 100.0 * (v.mean() - ce) / ce
                ax.text(
                    x,
                    v.max() + 0.015,
                    f"{rel:+.1f}%",
                    ha="center",
                    va="bottom",
                    rotation=90 if len(present) > 2 else 0,
                    fontsize=7 if len(present) > 2 else 9,
                    fontweight="bold",
                )
    refs = [i for i, a in enumerate(archs) if a in REFERENCE_ARCHITECTURES]
    if refs and len(refs) < len(archs):
        ax.axvline(min(refs) - 0.5, color="#909090", lw=0.8, ls=":")
    control_handles = _draw_controls(ax, controls)
    ax.set_xticks(range(len(archs)), archs)
    ax.set_xlim(-0.6, len(archs) - 0.4)
    ax.set_ylim(0, min(1.12, top * 1.2) if top > 0 else 1.0)
    ax.set_ylabel(f"{_split_label(split)} macro F1 (hierarchy-corrected)")
    ax.legend(
        handles=[*_loss_handles(losses), *control_handles],
        frameon=False,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.04, 1.0),
    )
    ax.set_title(
        title
        or f"{'Out-of-distribution' if split == 'ood' else 'In-distribution'} macro F1 by loss "
        "(% = gain over CE)"
    )
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def loss_ranking(metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Per architecture, its losses ranked by mean macro F1 on ``split`` (best on top): a dot per seed, the mean
    as a black bar, controls as vertical reference lines across every panel."""
    values = headline(metrics)
    values = values[values["split"] == split]
    ranked, controls = _split_controls(values)
    if ranked.empty:
        _no_data(path, f"no trained model on the {split} split")
        return
    archs = architecture_order(ranked["architecture"])
    most = max(ranked[ranked["architecture"] == a]["loss"].nunique() for a in archs)
    fig, axes = plt.subplots(
        1, len(archs), figsize=(3.1 * len(archs) + 0.6, 0.45 * most + 1.6), sharex=True, squeeze=False
    )
    rng = np.random.default_rng(0)
    handles = []
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = ranked[ranked["architecture"] == arch]
        means = sub.groupby("loss")["value"].mean()
        order = sorted(means.index, key=lambda loss: (-means[loss], loss_order(means.index).index(loss)))
        for y, loss in enumerate(reversed(order)):
            v = sub.loc[sub["loss"] == loss, "value"].to_numpy(dtype=float)
            ax.scatter(
                v,
                y + rng.uniform(-0.12, 0.12, len(v)),
                s=22,
                color=loss_colour(loss),
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
                marker="D" if is_decoded(loss) else "o",
            )
            ax.plot([means[loss]] * 2, [y - 0.3, y + 0.3], color="black", lw=2.2, zorder=4)
        ax.set_yticks(range(len(order)), [loss_label(loss) for loss in reversed(order)], fontsize=8)
        ax.set_ylim(-0.6, most - 0.4)  # one row height in every panel
        handles = _draw_controls(ax, controls, vertical=True) or handles
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel(f"{_split_label(split)} macro F1", fontsize=8)
        sns.despine(ax=ax)
    mean_handle = Line2D([], [], color="black", lw=2.2, label="mean over seeds")
    seed_handle = Line2D(
        [], [], marker="o", ls="", color="#bbbbbb", markeredgecolor="black", label="one seed"
    )
    fig.legend(
        handles=[seed_handle, mean_handle, *handles],
        loc="lower center",
        ncol=2 + len(handles),
        frameon=False,
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.4 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def coarse_share_sweep(
    points: Sequence[tuple[float, pd.DataFrame]], path: str | os.PathLike, split: str = "ood"
) -> None:
    """The mechanism sweep: each loss's macro-F1 gain over CE (mean ± sd of the seed-paired differences) against
    the share of training studies annotated coarsely; a panel per architecture. ``points`` are
    ``(coarse_study_share, metrics.tsv or summary.tsv of that run)`` pairs, reduced by ``aggregate.sweep_gains``."""
    gains = sweep_gains(points, split=split)
    if gains.empty:
        _no_data(path, "no loss compared with CE at any share")
        return
    archs = architecture_order(gains["architecture"])
    fig, axes = plt.subplots(1, len(archs), figsize=(3.6 * len(archs) + 1.8, 3.6), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = gains[gains["architecture"] == arch]
        for loss in loss_order(sub["loss"]):
            s = sub[sub["loss"] == loss].sort_values("share")
            ax.errorbar(
                s["share"].to_numpy(float),
                s["gain_mean"].to_numpy(float),
                yerr=s["gain_sd"].fillna(0.0).to_numpy(float),
                color=loss_colour(loss),
                ls=_line_style(loss),
                marker="D" if is_decoded(loss) else "o",
                ms=4,
                capsize=2,
                lw=1.4,
            )
        ax.axhline(0, color="black", lw=0.7)
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel("share of training studies annotated coarsely")
        sns.despine(ax=ax)
    axes[0][0].set_ylabel(f"{_split_label(split)} macro F1 gain over CE")
    handles = [
        Line2D(
            [],
            [],
            color=loss_colour(loss),
            ls=_line_style(loss),
            marker="D" if is_decoded(loss) else "o",
            label=loss_label(loss),
        )
        for loss in loss_order(gains["loss"])
    ]
    axes[0][-1].legend(
        handles=handles, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def id_versus_ood(metrics: pd.DataFrame, path: str | os.PathLike) -> None:
    """ID-test vs OOD macro F1 per architecture and loss: the generalisation gap, one line per seed, the mean
    bold (dashed for a model decoded by propagation); controls in grey in every panel."""
    values = headline(metrics)
    wide = values.pivot_table(
        index=["architecture", "loss", "seed"], columns="split", values="value"
    ).reset_index()
    if not {"test", "ood"} <= set(wide.columns):
        _no_data(path, "needs both the test and ood splits in evaluation.splits")
        return
    runs, controls = _split_controls(wide)
    archs = architecture_order(runs["architecture"])
    if not archs:
        _no_data(path, "no trained model or reference method to draw")
        return
    fig, axes = plt.subplots(1, len(archs), figsize=(3.2 * len(archs) + 1.6, 3.6), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = runs[runs["architecture"] == arch]
        for loss in loss_order(sub["loss"]):
            s = sub[sub["loss"] == loss]
            for _, r in s.iterrows():
                ax.plot(
                    [0, 1],
                    [r["test"], r["ood"]],
                    color=loss_colour(loss),
                    alpha=0.45,
                    lw=1,
                    ls=_line_style(loss),
                )
            ax.plot(
                [0, 1],
                [s["test"].mean(), s["ood"].mean()],
                color=loss_colour(loss),
                lw=2.5,
                marker="o",
                ls=_line_style(loss),
            )
        for arch_c in architecture_order(controls["architecture"]):
            c = controls[controls["architecture"] == arch_c]
            ax.plot([0, 1], [c["test"].mean(), c["ood"].mean()], lw=1.0, **control_style(arch_c))
        ax.set_xticks([0, 1], ["ID test", "OOD"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(arch)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("macro F1 (hierarchy-corrected)")
    handles = [
        Line2D([], [], color=loss_colour(loss), lw=2.5, ls=_line_style(loss), label=loss_label(loss))
        for loss in loss_order(runs["loss"])
    ]
    handles += [
        Line2D([], [], lw=1.0, label=f"control: {control_name(a)}", **control_style(a))
        for a in architecture_order(controls["architecture"])
    ]
    axes[0][-1].legend(
        handles=handles, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
    )
    # The axis spans the controls too: they bracket the models from below and above.
    lo = np.nanmin(wide[["test", "ood"]].to_numpy())
    axes[0][0].set_ylim(max(0.0, lo - 0.05), 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def training_curves(histories: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validation hierarchy-corrected macro F1 per epoch, one line per run, a panel per architecture."""
    archs = sorted(histories["architecture"].unique())
    if not archs:
        _no_data(path, "no training history")
        return
    fig, axes = plt.subplots(1, len(archs), figsize=(3.2 * len(archs), 3.2), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = histories[histories["architecture"] == arch]
        for (loss, _seed), run in sub.groupby(["loss", "seed"]):
            ax.plot(run["epoch"], run["val_macro_f1"], color=loss_colour(loss), alpha=0.7, lw=1.2)
        ax.set_title(arch)
        ax.set_xlabel("epoch")
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("validation macro F1")
    handles = [
        Line2D([], [], color=loss_colour(loss), label=loss_label(loss))
        for loss in loss_order(histories["loss"])
    ]
    axes[0][-1].legend(handles=handles, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


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
        _no_data(path, f"no per-cell-type F1 for {architecture} on {split}")
        return
    n = len(table)
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.24 * n))
    y = np.arange(n)
    colours = np.where(table["delta"] >= 0, LOSS_COLOURS["hce"], LOSS_COLOURS["ce"])
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
        _no_data(path, f"no ΔF1 for {architecture}: needs CE and HCE runs on the OOD split")
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for coarse, marker, label in ((True, "o", "coarse (has subtypes)"), (False, "D", "leaf")):
        s = sub[sub["is_coarse"] == coarse]
        axes[0].scatter(
            s["connectivity"] + np.random.default_rng(0).uniform(-0.15, 0.15, len(s)),
            s["delta"],
            marker=marker,
            color=LOSS_COLOURS["hce"] if coarse else "#1b9e77",
            label=label,
            alpha=0.8,
        )
        axes[1].scatter(
            s["subtree_coarse_fraction"],
            s["delta"],
            marker=marker,
            color=LOSS_COLOURS["hce"] if coarse else "#1b9e77",
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


#: Marker of each series in the prediction-level panels: a trained loss, its decoded variant, a control.
def _marker(loss: str) -> str:
    return "D" if is_decoded(loss) else "o"


def _control_marker(arch: str) -> str:
    return "*" if control_bound(arch) == "upper" else "x"


def _series(frame: pd.DataFrame, arch: str) -> list[tuple[str, str, dict]]:
    """The series one architecture's panels draw: each of its losses, then every control (the same in each row),
    as ``(architecture, loss, matplotlib style)``."""
    runs, controls = _split_controls(frame)
    out = []
    for loss in loss_order(runs.loc[runs["architecture"] == arch, "loss"]):
        out.append(
            (arch, loss, {"color": loss_colour(loss), "marker": _marker(loss), "label": loss_label(loss)})
        )
    for c in architecture_order(controls["architecture"]):
        for loss in loss_order(controls.loc[controls["architecture"] == c, "loss"]):
            style = control_style(c)
            out.append(
                (
                    c,
                    loss,
                    {
                        "color": style["color"],
                        "marker": _control_marker(c),
                        "label": f"control: {control_name(c)}",
                    },
                )
            )
    return out


def _numbered(metrics, prefix: str) -> list[str]:
    return sorted((m for m in metrics if m.startswith(prefix)), key=lambda m: int(m[len(prefix) :]))


def hierarchical_panel(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """hP / hR / hF, mean error distance, accuracy per depth and hop-F1 (k = 0 … 3) on ``split``: a row per
    architecture, a marker per loss (diamonds for a model decoded by propagation) and the controls in grey; points
    pool the seeds, bars are 95 % bootstrap CIs over datasets."""
    sub = table[table["split"] == split]
    runs, _ = _split_controls(sub)
    if runs.empty:
        _no_data(path, f"no predictions on the {split} split")
        return
    present = set(sub["metric"])
    panels = [
        ("hierarchical precision / recall / F1", ["hP", "hR", "hF"], lambda m: m),
        ("mean Hasse distance of errors", ["mean_error_distance"], lambda m: "errors"),
        (
            "accuracy by true-label depth",
            _numbered(present, "accuracy_depth"),
            lambda m: m.replace("accuracy_depth", "d"),
        ),
        (
            "hop-F1: correct within k edges",
            _numbered(present, "hop_f1_k"),
            lambda m: m.replace("hop_f1_", ""),
        ),
    ]
    panels = [p for p in panels if set(p[1]) & present]
    archs = architecture_order(runs["architecture"])
    fig, axes = plt.subplots(
        len(archs), len(panels), figsize=(3.9 * len(panels), 2.6 * len(archs) + 1.0), squeeze=False
    )
    legend: dict[str, Line2D] = {}
    for row, arch in zip(axes, archs, strict=True):
        series = _series(sub, arch)
        width = 0.8 / max(1, len(series))
        for ax, (title, metrics, tick) in zip(row, panels, strict=True):
            for si, (a, loss, style) in enumerate(series):
                rows = (
                    sub[(sub["architecture"] == a) & (sub["loss"] == loss)]
                    .set_index("metric")
                    .reindex(metrics)
                )
                x = np.arange(len(metrics)) + (si - (len(series) - 1) / 2) * width
                err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]]).clip(min=0)
                ax.errorbar(
                    x,
                    rows["value"],
                    yerr=np.nan_to_num(err),
                    fmt=style["marker"],
                    color=style["color"],
                    capsize=2,
                    ms=4,
                    ls="-" if metrics[0].startswith("hop_f1") else "none",
                    lw=0.8,
                )
                legend.setdefault(
                    style["label"],
                    Line2D([], [], marker=style["marker"], color=style["color"], ls="", label=style["label"]),
                )
            ax.set_xticks(np.arange(len(metrics)), [tick(m) for m in metrics], fontsize=8)
            ax.set_title(title, fontsize=9)
            sns.despine(ax=ax)
        row[0].set_ylabel(f"{arch}\n{_split_label(split)}, seeds pooled", fontsize=9)
    fig.legend(
        handles=list(legend.values()), loc="lower center", ncol=min(8, len(legend)), frameon=False, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.7 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def backoff_curves(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = "") -> None:
    """Back-off correctness (consistency with the truth) against specificity across τ, a line per loss (dashed
    for a model decoded by propagation), one panel per architecture, controls in their own panels; points are τ
    values, averaged over seeds."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        _no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    archs = architecture_order(sub["architecture"])
    fig, axes = plt.subplots(1, len(archs), figsize=(3.8 * len(archs) + 1.4, 3.6), sharey=True, squeeze=False)
    legend: dict[str, Line2D] = {}
    for ax, arch in zip(axes[0], archs, strict=True):
        for loss in loss_order(sub.loc[sub["architecture"] == arch, "loss"]):
            s = (
                sub[(sub["architecture"] == arch) & (sub["loss"] == loss)]
                .groupby("tau")[["specificity", "consistency"]]
                .mean()
            )
            colour = loss_colour(loss)
            ax.plot(s["specificity"], s["consistency"], marker="o", ms=3, color=colour, ls=_line_style(loss))
            legend.setdefault(
                loss, Line2D([], [], color=colour, ls=_line_style(loss), label=loss_label(loss))
            )
            for tau in (0.5, 0.9):
                if tau in s.index:
                    ax.annotate(
                        f"τ={tau}",
                        (s.loc[tau, "specificity"], s.loc[tau, "consistency"]),
                        fontsize=6,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.set_title(arch)
        ax.set_xlabel("specificity (back-off depth, 1 = finest)")
        sns.despine(ax=ax)
    axes[0][0].set_ylabel(f"consistent with truth ({_split_label(split)})")
    axes[0][-1].legend(
        handles=[legend[loss] for loss in loss_order(legend)],
        frameon=False,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
    )
    if note:
        fig.text(0.01, 0.01, note, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


#: Line styles that tell architectures apart in the calibration figure (colour tells the loss).
ARCHITECTURE_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 2)))


def calibration_levels(
    table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = ""
) -> None:
    """ECE and Brier score at the leaf level and at each ancestor depth, a line per architecture and loss (colour
    = loss, line style = architecture, diamonds for a model decoded by propagation), mean over seeds."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        _no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    levels = ["leaf"] + sorted((lv for lv in sub["level"].unique() if lv != "leaf"), key=lambda s: int(s[5:]))
    archs = architecture_order(sub["architecture"])
    styles = {a: ARCHITECTURE_LINESTYLES[i % len(ARCHITECTURE_LINESTYLES)] for i, a in enumerate(archs)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric in zip(axes, ("ece", "brier"), strict=True):
        for arch in archs:
            for loss in loss_order(sub.loc[sub["architecture"] == arch, "loss"]):
                s = sub[(sub["architecture"] == arch) & (sub["loss"] == loss)].groupby("level")[metric].mean()
                control = row_role(arch, loss) == ROLE_CONTROL
                ax.plot(
                    range(len(levels)),
                    s.reindex(levels),
                    marker=_control_marker(arch) if control else _marker(loss),
                    color=control_style(arch)["color"] if control else loss_colour(loss),
                    ls=styles[arch],
                    label=f"{control_name(arch)}" if control else f"{arch} {loss_label(loss)}",
                )
        ax.set_xticks(range(len(levels)), [lv.replace("depth", "depth ") for lv in levels], fontsize=8)
        ax.set_ylabel(f"{metric.upper() if metric == 'ece' else 'Brier'} ({_split_label(split)})")
        sns.despine(ax=ax)
    axes[1].legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def novel_types(table: pd.DataFrame, novel_meta: dict | None, path: str | os.PathLike) -> None:
    """Novel OOD cell types scored at their nearest trained ancestor: accuracy per novel type and loss (mean
    over the trained and reference architectures and their seeds; controls left out), with the coverage (cells
    scored / novel cells) in the title."""
    if table.empty or not novel_meta:
        _no_data(path, "no novel OOD cell types to score")
        return
    runs, _ = _split_controls(table)
    if runs.empty:
        _no_data(path, "no trained model scored the novel OOD cell types")
        return
    sub = runs[runs["novel_label"] != "all"]
    means = sub.groupby(["novel_label_name", "nearest_trained_ancestor", "loss"])[
        "accuracy_at_ancestor"
    ].mean()
    means = means.unstack("loss")
    overall = (
        runs[runs["novel_label"] == "all"].groupby(["architecture", "loss"])["accuracy_at_ancestor"].mean()
    )
    losses = loss_order(means.columns)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.12 * len(losses) * len(means) + 0.25 * len(means)))
    y = np.arange(len(means))
    h = 0.8 / max(1, len(losses))
    for i, loss in enumerate(losses):
        ax.barh(
            y + (i - (len(losses) - 1) / 2) * h,
            means[loss],
            height=h,
            color=loss_colour(loss),
            hatch=DECODED_HATCH if is_decoded(loss) else None,
            edgecolor="#404040",
            lw=0.4,
            label=loss_label(loss),
        )
    ax.set_yticks(y, [f"{n}  → {a}" for n, a in means.index], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy at the nearest trained ancestor (prediction is it or a subtype)")
    cov = novel_meta.get("coverage", float("nan"))
    overall_txt = "\n".join(
        textwrap.wrap(", ".join(f"{a} {loss_label(loss)} {v:.2f}" for (a, loss), v in overall.items()), 120)
    )
    ax.set_title(
        f"Novel OOD types: {novel_meta['n_cells_scored']} of {novel_meta['n_cells']} cells scored "
        f"(coverage {cov:.0%})\n{overall_txt}",
        fontsize=8,
    )
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _display_columns(columns) -> list[tuple[str, str]]:
    """(architecture, loss) pairs in display order: architectures as ``architecture_order``, losses as
    ``loss_order`` within each."""
    pairs = list(columns)
    archs = architecture_order(a for a, _ in pairs)
    return [(a, loss) for a in archs for loss in loss_order(x for b, x in pairs if b == a)]


def stratified_heatmaps(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Macro F1 (mean over seeds) per dataset / tissue / assay / disease, columns architecture × loss (controls
    last, as references)."""
    if table.empty:
        _no_data(path, f"no stratified metrics on the {split} split")
        return
    kinds = [k for k in ("dataset_id", "tissue", "assay", "disease") if (table["stratum_type"] == k).any()]
    wides = []
    for kind in kinds:
        sub = table[table["stratum_type"] == kind]
        wide = sub.pivot_table(index="stratum", columns=["architecture", "loss"], values="mean")
        wide = wide[_display_columns(wide.columns)]
        wide.columns = [f"{a} {loss_label(loss)}" for a, loss in wide.columns]
        cells = sub.groupby("stratum")["n_cells"].max()
        short = (lambda s: s[:8]) if kind == "dataset_id" else (lambda s: s[:28])
        wide.index = [f"{short(s)} (n={int(cells[s])})" for s in wide.index]
        wides.append((kind, wide))
    heights = [max(1.5, 0.32 * len(w) + 0.8) for _, w in wides]
    fig, axes = plt.subplots(
        len(wides), 1, figsize=(7, sum(heights) + 0.5), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, (kind, wide) in zip(axes[:, 0], wides, strict=True):
        sns.heatmap(
            wide,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="viridis",
            annot=True,
            fmt=".2f",
            annot_kws={"size": 7},
            cbar=False,
        )
        ax.set_ylabel(kind, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("")
    axes[0, 0].set_title(
        f"{'OOD' if split == 'ood' else split} macro F1 (hierarchy-corrected) per stratum", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
