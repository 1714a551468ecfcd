"""The figures from the per-cell predictions and the stratified metrics: the hierarchical metric panel, back-off
curves, calibration per level, novel OOD types scored at their nearest trained ancestor, and the macro F1 heatmaps
per stratum."""

from __future__ import annotations

import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from hcebench.report.figures.style import (
    DECODED_HATCH,
    control_style,
    line_style,
    loss_colour,
    no_data,
    split_controls,
    split_label,
)
from hcebench.report.losses import (
    ROLE_CONTROL,
    architecture_order,
    control_bound,
    control_name,
    is_decoded,
    loss_label,
    loss_order,
    row_role,
)


#: Marker of each series in the prediction-level panels: a trained loss, its decoded variant, a control.
def _marker(loss: str) -> str:
    return "D" if is_decoded(loss) else "o"


def _control_marker(arch: str) -> str:
    return "*" if control_bound(arch) == "upper" else "x"


def _series(frame: pd.DataFrame, arch: str) -> list[tuple[str, str, dict]]:
    """The series one architecture's panels draw: each of its losses, then every control (the same in each row),
    as ``(architecture, loss, matplotlib style)``."""
    runs, controls = split_controls(frame)
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
    runs, _ = split_controls(sub)
    if runs.empty:
        no_data(path, f"no predictions on the {split} split")
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
        row[0].set_ylabel(f"{arch}\n{split_label(split)}, seeds pooled", fontsize=9)
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
        no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
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
            ax.plot(s["specificity"], s["consistency"], marker="o", ms=3, color=colour, ls=line_style(loss))
            legend.setdefault(loss, Line2D([], [], color=colour, ls=line_style(loss), label=loss_label(loss)))
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
    axes[0][0].set_ylabel(f"consistent with truth ({split_label(split)})")
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
        no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
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
        ax.set_ylabel(f"{metric.upper() if metric == 'ece' else 'Brier'} ({split_label(split)})")
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
        no_data(path, "no novel OOD cell types to score")
        return
    runs, _ = split_controls(table)
    if runs.empty:
        no_data(path, "no trained model scored the novel OOD cell types")
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
    # Wrapped to the figure's width (a title over the axes alone was clipped where the labels are long).
    overall_txt = "\n".join(
        textwrap.wrap(", ".join(f"{a} {loss_label(loss)} {v:.2f}" for (a, loss), v in overall.items()), 100)
    )
    fig.suptitle(
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


def _short(text: str, limit: int) -> str:
    """``text`` cut to its first ``limit`` characters and an ellipsis when it is longer than 28."""
    return text if len(text) <= 28 else text[:limit] + "…"


def stratified_heatmaps(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Macro F1 (mean over seeds) per dataset / tissue / assay / disease, columns architecture × loss (controls
    last, as references)."""
    if table.empty:
        no_data(path, f"no stratified metrics on the {split} split")
        return
    kinds = [k for k in ("dataset_id", "tissue", "assay", "disease") if (table["stratum_type"] == k).any()]
    wides = []
    for kind in kinds:
        sub = table[table["stratum_type"] == kind]
        wide = sub.pivot_table(index="stratum", columns=["architecture", "loss"], values="mean")
        wide = wide[_display_columns(wide.columns)]
        wide.columns = [f"{a} {loss_label(loss)}" for a, loss in wide.columns]
        cells = sub.groupby("stratum")["n_cells"].max()
        # A Census dataset id (a 36-character UUID) by its first 8 characters; a short id whole.
        wide.index = [
            f"{_short(s, 8 if kind == 'dataset_id' else 28)} (n={int(cells[s])})" for s in wide.index
        ]
        wides.append((kind, wide))
    # One column order for every panel (a run missing from a stratum type is a blank cell), so the column names
    # under the last panel name every panel's columns.
    order = list(dict.fromkeys(c for _, w in wides for c in w.columns))
    wides = [(kind, wide.reindex(columns=order)) for kind, wide in wides]
    heights = [max(0.6, 0.32 * len(w) + 0.3) for _, w in wides]
    # The column names are written once, under the last panel: room for them below it.
    labels_in = 0.075 * max(len(c) for _, w in wides for c in w.columns)
    fig, axes = plt.subplots(
        len(wides),
        1,
        figsize=(7, sum(heights) + 0.5 + labels_in),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        sharex=True,
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
        ax.tick_params(axis="y", rotation=0)
        ax.set_xlabel("")
        if ax is not axes[-1, 0]:
            ax.tick_params(axis="x", bottom=False, labelbottom=False)
    axes[0, 0].set_title(
        f"{'OOD' if split == 'ood' else split} macro F1 (hierarchy-corrected) per stratum", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
