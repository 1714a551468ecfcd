"""Figures from the metrics table. Each function writes one image and returns nothing."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")  # rules run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_rgba  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from hcebench.report.aggregate import headline  # noqa: E402

LOSS_COLOURS = {"ce": "#8c8c8c", "hce": "#d95f02"}
LOSS_LABELS = {"ce": "CE", "hce": "HCE"}


#: PNG "Title" of the placeholder a figure function writes when its inputs hold nothing to draw.
NO_DATA_TITLE = "hcebench: no data"


def _no_data(path: str | os.PathLike, why: str) -> None:
    """A small image that says why there is no figure (the rule's output must exist); tagged ``NO_DATA_TITLE``."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, why, ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=100, metadata={"Title": NO_DATA_TITLE})
    plt.close(fig)


def _loss_order(values: pd.DataFrame) -> list[str]:
    return [loss for loss in LOSS_COLOURS if loss in set(values["loss"])]


def macro_f1_by_architecture(
    metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood", title: str = ""
) -> None:
    """Fig. 2b: macro F1 per architecture, CE vs HCE; mean as a bar, one dot per seed, relative gain annotated."""
    values = headline(metrics)
    values = values[values["split"] == split]
    if values.empty:
        _no_data(path, f"no {split} split in evaluation.splits")
        return
    archs = sorted(values["architecture"].unique())
    losses = _loss_order(values)
    fig, ax = plt.subplots(figsize=(1.9 * len(archs) + 1.5, 4.2))
    palette = {loss: LOSS_COLOURS[loss] for loss in losses}
    sns.barplot(
        data=values,
        x="architecture",
        y="value",
        hue="loss",
        order=archs,
        hue_order=losses,
        palette=palette,
        errorbar=None,
        alpha=0.55,
        ax=ax,
    )
    sns.stripplot(
        data=values,
        x="architecture",
        y="value",
        hue="loss",
        order=archs,
        hue_order=losses,
        palette=palette,
        dodge=True,
        jitter=0.12,
        size=5,
        edgecolor="black",
        linewidth=0.5,
        legend=False,
        ax=ax,
    )
    top = values["value"].max() if len(values) else 1.0
    for i, arch in enumerate(archs):
        means = values[values["architecture"] == arch].groupby("loss")["value"].mean()
        if {"ce", "hce"} <= set(means.index) and means["ce"] > 0:
            rel = 100.0 * (means["hce"] - means["ce"]) / means["ce"]
            ax.text(i, top * 1.04, f"{rel:+.1f}%", ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_ylim(0, min(1.0, top * 1.15) if top > 0 else 1.0)
    ax.set_xlabel("")
    ax.set_ylabel(f"{'OOD' if split == 'ood' else 'ID test'} macro F1 (hierarchy-corrected)")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles[: len(losses)], [LOSS_LABELS[loss] for loss in losses], frameon=False, loc="lower right"
    )
    ax.set_title(
        title or f"{'Out-of-distribution' if split == 'ood' else 'In-distribution'} macro F1, CE vs HCE"
    )
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def id_versus_ood(metrics: pd.DataFrame, path: str | os.PathLike) -> None:
    """ID-test vs OOD macro F1 per architecture and loss: the generalisation gap, one line per seed pair."""
    values = headline(metrics)
    wide = values.pivot_table(
        index=["architecture", "loss", "seed"], columns="split", values="value"
    ).reset_index()
    if not {"test", "ood"} <= set(wide.columns):
        _no_data(path, "needs both the test and ood splits in evaluation.splits")
        return
    archs = sorted(wide["architecture"].unique())
    fig, axes = plt.subplots(1, len(archs), figsize=(3.2 * len(archs), 3.6), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = wide[wide["architecture"] == arch]
        for loss in _loss_order(sub):
            s = sub[sub["loss"] == loss]
            for _, r in s.iterrows():
                ax.plot([0, 1], [r["test"], r["ood"]], color=LOSS_COLOURS[loss], alpha=0.45, lw=1)
            ax.plot(
                [0, 1],
                [s["test"].mean(), s["ood"].mean()],
                color=LOSS_COLOURS[loss],
                lw=2.5,
                marker="o",
                label=LOSS_LABELS[loss],
            )
        ax.set_xticks([0, 1], ["ID test", "OOD"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(arch)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("macro F1 (hierarchy-corrected)")
    axes[0][-1].legend(frameon=False)
    lo = np.nanmin(wide[["test", "ood"]].to_numpy())
    axes[0][0].set_ylim(max(0.0, lo - 0.1), 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def training_curves(histories: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validation hierarchy-corrected macro F1 per epoch, one line per run, a panel per architecture."""
    archs = sorted(histories["architecture"].unique())
    fig, axes = plt.subplots(1, len(archs), figsize=(3.2 * len(archs), 3.2), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = histories[histories["architecture"] == arch]
        for (loss, _seed), run in sub.groupby(["loss", "seed"]):
            ax.plot(run["epoch"], run["val_macro_f1"], color=LOSS_COLOURS.get(loss, "k"), alpha=0.7, lw=1.2)
        ax.set_title(arch)
        ax.set_xlabel("epoch")
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("validation macro F1")
    handles = [plt.Line2D([], [], color=c, label=LOSS_LABELS[k]) for k, c in LOSS_COLOURS.items()]
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


def _arch_loss_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [
        (a, loss)
        for a in sorted(frame["architecture"].unique())
        for loss in LOSS_COLOURS
        if ((frame["architecture"] == a) & (frame["loss"] == loss)).any()
    ]


def hierarchical_panel(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """hP / hR / hF, mean error distance and accuracy per depth on ``split``, CE vs HCE per architecture;
    points pool the seeds, bars are 95 % bootstrap CIs over datasets."""
    sub = table[table["split"] == split]
    if sub.empty:
        _no_data(path, f"no predictions on the {split} split")
        return
    combos = _arch_loss_columns(sub)
    depth_metrics = sorted(m for m in sub["metric"].unique() if m.startswith("accuracy_depth"))
    panels = [["hP", "hR", "hF"], ["mean_error_distance"], depth_metrics]
    titles = [
        "hierarchical precision / recall / F1",
        "mean Hasse distance of errors",
        "accuracy by true-label depth",
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.8 / max(1, len(combos))
    for ax, metrics, title in zip(axes, panels, titles, strict=True):
        for ci, (arch, loss) in enumerate(combos):
            rows = (
                sub[(sub["architecture"] == arch) & (sub["loss"] == loss)]
                .set_index("metric")
                .reindex(metrics)
            )
            x = np.arange(len(metrics)) + (ci - (len(combos) - 1) / 2) * width
            err = np.vstack([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]]).clip(min=0)
            ax.errorbar(
                x,
                rows["value"],
                yerr=np.nan_to_num(err),
                fmt="o" if loss == "hce" else "s",
                color=LOSS_COLOURS[loss],
                alpha=1.0 if ci // 2 == 0 else 0.6,
                capsize=2,
                ms=4,
                label=f"{arch} {LOSS_LABELS[loss]}",
            )
        ax.set_xticks(np.arange(len(metrics)), [m.replace("accuracy_depth", "d") for m in metrics])
        ax.set_title(title, fontsize=9)
        sns.despine(ax=ax)
    axes[0].set_ylabel(f"{'OOD' if split == 'ood' else split} (seeds pooled)")
    axes[2].set_xlabel("depth (strict ancestors in the label set)")
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def backoff_curves(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = "") -> None:
    """Back-off correctness (consistency with the truth) against specificity across τ, CE vs HCE, one panel per
    architecture; points are τ values, averaged over seeds."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        _no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    archs = sorted(sub["architecture"].unique())
    fig, axes = plt.subplots(1, len(archs), figsize=(3.8 * len(archs), 3.6), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        for loss in _loss_order(sub[sub["architecture"] == arch]):
            s = (
                sub[(sub["architecture"] == arch) & (sub["loss"] == loss)]
                .groupby("tau")[["specificity", "consistency"]]
                .mean()
            )
            ax.plot(
                s["specificity"],
                s["consistency"],
                marker="o",
                ms=3,
                color=LOSS_COLOURS[loss],
                label=LOSS_LABELS[loss],
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
    axes[0][0].set_ylabel(f"consistent with truth ({'OOD' if split == 'ood' else split})")
    axes[0][-1].legend(frameon=False)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def calibration_levels(
    table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = ""
) -> None:
    """ECE and Brier score at the leaf level and at each ancestor depth, CE vs HCE per architecture
    (mean over seeds)."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        _no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    levels = ["leaf"] + sorted((lv for lv in sub["level"].unique() if lv != "leaf"), key=lambda s: int(s[5:]))
    combos = _arch_loss_columns(sub)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("ece", "brier"), strict=True):
        for arch, loss in combos:
            s = sub[(sub["architecture"] == arch) & (sub["loss"] == loss)].groupby("level")[metric].mean()
            ax.plot(
                range(len(levels)),
                s.reindex(levels),
                marker="o" if loss == "hce" else "s",
                color=LOSS_COLOURS[loss],
                ls="-" if arch == combos[0][0] else "--",
                label=f"{arch} {LOSS_LABELS[loss]}",
            )
        ax.set_xticks(range(len(levels)), [lv.replace("depth", "depth ") for lv in levels], fontsize=8)
        ax.set_ylabel(
            f"{metric.upper() if metric == 'ece' else 'Brier'} ({'OOD' if split == 'ood' else split})"
        )
        sns.despine(ax=ax)
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def novel_types(table: pd.DataFrame, novel_meta: dict | None, path: str | os.PathLike) -> None:
    """Novel OOD cell types scored at their nearest trained ancestor: accuracy per novel type and loss (mean
    over architectures and seeds), with the coverage (cells scored / novel cells) in the title."""
    if table.empty or not novel_meta:
        _no_data(path, "no novel OOD cell types to score")
        return
    sub = table[table["novel_label"] != "all"]
    means = sub.groupby(["novel_label_name", "nearest_trained_ancestor", "loss"])[
        "accuracy_at_ancestor"
    ].mean()
    means = means.unstack("loss")
    overall = (
        table[table["novel_label"] == "all"].groupby(["architecture", "loss"])["accuracy_at_ancestor"].mean()
    )
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * len(means)))
    y = np.arange(len(means))
    h = 0.8 / max(1, len(means.columns))
    for i, loss in enumerate(c for c in LOSS_COLOURS if c in means.columns):
        ax.barh(
            y + (i - (len(means.columns) - 1) / 2) * h,
            means[loss],
            height=h,
            color=LOSS_COLOURS[loss],
            label=LOSS_LABELS[loss],
        )
    ax.set_yticks(y, [f"{n}  → {a}" for n, a in means.index], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy at the nearest trained ancestor (prediction is it or a subtype)")
    cov = novel_meta.get("coverage", float("nan"))
    overall_txt = ", ".join(f"{a} {LOSS_LABELS.get(loss, loss)} {v:.2f}" for (a, loss), v in overall.items())
    ax.set_title(
        f"Novel OOD types: {novel_meta['n_cells_scored']} of {novel_meta['n_cells']} cells scored "
        f"(coverage {cov:.0%})\n{overall_txt}",
        fontsize=8,
    )
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def stratified_heatmaps(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Macro F1 (mean over seeds) per dataset / tissue / assay / disease, columns architecture × loss."""
    if table.empty:
        _no_data(path, f"no stratified metrics on the {split} split")
        return
    kinds = [k for k in ("dataset_id", "tissue", "assay", "disease") if (table["stratum_type"] == k).any()]
    wides = []
    for kind in kinds:
        sub = table[table["stratum_type"] == kind]
        wide = sub.pivot_table(index="stratum", columns=["architecture", "loss"], values="mean")
        wide.columns = [f"{a} {LOSS_LABELS.get(loss, loss)}" for a, loss in wide.columns]
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
