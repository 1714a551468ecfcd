"""The figures from the per-cell predictions and the stratified metrics: the hierarchical metric panel, back-off
curves, calibration per level, novel OOD types scored at their nearest trained ancestor, and the macro F1 heatmaps
per stratum."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from hcebench.report.figures.style import (
    COLUMN_MM,
    DECODED_HATCH,
    FONT_PT,
    PAGE_MM,
    SMALL_PT,
    control_style,
    legend_below,
    line_style,
    loss_colour,
    loss_handles,
    mm,
    no_data,
    panel_grid,
    panel_title,
    save,
    shorten,
    split_controls,
    split_label,
    text_width_pt,
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


def _line_width(loss: str) -> float:
    """A decoded model's line is thin (and dashed) over its loss's broad one: where propagation changes nothing
    (probabilities are the same) both stay visible."""
    return 0.8 if is_decoded(loss) else 1.6


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


def _depth_ticks(ax, labels: list[str]) -> None:
    """Tick labels that fit: all of them when there are few, else every other one."""
    step = 1 if len(labels) <= 8 else 2
    ax.set_xticks(np.arange(len(labels)), [lab if i % step == 0 else "" for i, lab in enumerate(labels)])


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
        ("hP / hR / hF", ["hP", "hR", "hF"], lambda m: m, ""),
        ("errors: mean distance", ["mean_error_distance"], lambda m: "", "Hasse edges"),
        (
            "accuracy by true depth",
            _numbered(present, "accuracy_depth"),
            lambda m: m.replace("accuracy_depth", ""),
            "depth",
        ),
        (
            "hop-F1 (within k edges)",
            _numbered(present, "hop_f1_k"),
            lambda m: m.replace("hop_f1_k", ""),
            "k",
        ),
    ]
    panels = [p for p in panels if set(p[1]) & present]
    archs = architecture_order(runs["architecture"])
    fig, axes = plt.subplots(
        len(archs),
        len(panels),
        figsize=mm(PAGE_MM, 36.0 * len(archs) + 16.0),
        squeeze=False,
        layout="constrained",
    )
    legend: dict[str, Line2D] = {}
    for r, (row, arch) in enumerate(zip(axes, archs, strict=True)):
        series = _series(sub, arch)
        width = 0.8 / max(1, len(series))
        for ax, (title, metrics, tick, xlabel) in zip(row, panels, strict=True):
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
                    capsize=1.2,
                    ms=2.5,
                    ls="-" if metrics[0].startswith("hop_f1") else "none",
                    lw=0.6,
                    elinewidth=0.5,
                )
                legend.setdefault(
                    style["label"],
                    Line2D([], [], marker=style["marker"], color=style["color"], ls="", label=style["label"]),
                )
            _depth_ticks(ax, [tick(m) for m in metrics])
            if r == 0:
                ax.set_title(title)
            if r == len(archs) - 1 and xlabel:
                ax.set_xlabel(xlabel)
        row[0].set_ylabel(f"{arch}\n{split_label(split)}, seeds pooled")
    controls = architecture_order(split_controls(sub)[1]["architecture"])
    order = [
        *(loss_label(loss) for loss in loss_order(runs["loss"])),
        *(f"control: {control_name(c)}" for c in controls),
    ]
    legend_below(fig, [legend[k] for k in order if k in legend])
    save(fig, path)


#: Back-off points marked on every curve, each with its own marker (named in the legend, not printed beside it).
TAU_MARKERS = {0.5: "s", 0.9: "^"}


def backoff_curves(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = "") -> None:
    """Back-off correctness (consistency with the truth) against specificity across τ, a line per loss (dashed
    for a model decoded by propagation), a panel per trained or reference architecture (wrapped into a grid) with
    the controls drawn in grey in each; points are τ values averaged over seeds, τ = 0.5 and 0.9 marked."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    runs, controls = split_controls(sub)
    archs = architecture_order(runs["architecture"])
    if not archs:
        no_data(path, note or "no trained model with probability vectors")
        return
    cols = min(len(archs), 4)
    fig, axes = panel_grid(
        len(archs),
        max_cols=4,
        width_mm=min(PAGE_MM, 26.0 + 40.0 * cols),
        panel_height_mm=46.0,
        sharex=True,
        sharey=True,
    )
    legend: dict[str, Line2D] = {}

    def curve(ax, frame, colour, ls, marker_every=True, lw=0.9):
        s = frame.groupby("tau")[["specificity", "consistency"]].mean()
        ax.plot(s["specificity"], s["consistency"], marker="o", ms=1.8, color=colour, ls=ls, lw=lw)
        for tau, marker in TAU_MARKERS.items():
            if marker_every and tau in s.index:
                ax.plot(
                    s.loc[tau, "specificity"],
                    s.loc[tau, "consistency"],
                    marker=marker,
                    ms=4,
                    mfc="white",
                    mec=colour,
                    mew=0.9,
                    ls="",
                    zorder=4,
                )

    for i, (ax, arch) in enumerate(zip(axes, archs, strict=True)):
        for loss in loss_order(runs.loc[runs["architecture"] == arch, "loss"]):
            colour = loss_colour(loss)
            lw = _line_width(loss)
            curve(
                ax,
                runs[(runs["architecture"] == arch) & (runs["loss"] == loss)],
                colour,
                line_style(loss),
                lw=lw,
            )
            legend.setdefault(
                loss, Line2D([], [], color=colour, ls=line_style(loss), lw=lw, label=loss_label(loss))
            )
        for c in architecture_order(controls["architecture"]):
            style = control_style(c)
            curve(
                ax, controls[controls["architecture"] == c], style["color"], style["ls"], marker_every=False
            )
            legend.setdefault(c, Line2D([], [], lw=0.9, label=f"control: {control_name(c)}", **style))
        panel_title(ax, arch, fig, cols)
        ax.set_xlabel("specificity (1 = finest)")
        if i % cols == 0:
            # Two lines: one would outgrow a short panel (the tiny configuration's legend leaves it ~30 mm).
            ax.set_ylabel(f"consistent with truth\n({split_label(split)})")
        ax.tick_params(labelleft=True, labelbottom=True)
    handles = [
        legend[k]
        for k in [
            *loss_order(k for k in legend if k in set(runs["loss"])),
            *architecture_order(controls["architecture"]),
        ]
        if k in legend
    ]
    handles += [
        Line2D([], [], marker=m, ms=4, mfc="white", mec="black", ls="", label=f"τ = {tau}")
        for tau, m in TAU_MARKERS.items()
    ]
    legend_below(fig, handles)
    if note:
        fig.suptitle(note, fontsize=SMALL_PT)
    save(fig, path)


def calibration_levels(
    table: pd.DataFrame, path: str | os.PathLike, split: str = "ood", note: str = ""
) -> None:
    """ECE and Brier score at the leaf level and at each ancestor depth: for each trained or reference
    architecture a pair of panels (ECE, Brier), a line per loss (colour = loss, diamonds and dashes for a model
    decoded by propagation) and the controls in grey in every panel; mean over seeds."""
    sub = table[table["split"] == split] if len(table) else table
    if sub.empty:
        no_data(path, note or f"no probability vectors on the {split} split (evaluation.save_probabilities)")
        return
    levels = ["leaf"] + sorted((lv for lv in sub["level"].unique() if lv != "leaf"), key=lambda s: int(s[5:]))
    runs, controls = split_controls(sub)
    archs = architecture_order(runs["architecture"])
    if not archs:
        no_data(path, note or "no trained model with probability vectors")
        return
    cols = min(2 * len(archs), 4)
    fig, axes = panel_grid(2 * len(archs), max_cols=4, panel_height_mm=40.0)
    ticks = ["leaf", *(lv.replace("depth", "") for lv in levels[1:])]
    legend: dict[str, Line2D] = {}
    for a, arch in enumerate(archs):
        for m, metric in enumerate(("ece", "brier")):
            ax = axes[2 * a + m]
            for loss in loss_order(runs.loc[runs["architecture"] == arch, "loss"]):
                s = (
                    runs[(runs["architecture"] == arch) & (runs["loss"] == loss)]
                    .groupby("level")[metric]
                    .mean()
                )
                colour = loss_colour(loss)
                ax.plot(
                    range(len(levels)),
                    s.reindex(levels),
                    marker=_marker(loss),
                    ms=2.5,
                    color=colour,
                    ls=line_style(loss),
                    lw=_line_width(loss),
                )
                legend.setdefault(
                    loss,
                    Line2D(
                        [],
                        [],
                        marker=_marker(loss),
                        ms=2.5,
                        color=colour,
                        ls=line_style(loss),
                        lw=_line_width(loss),
                        label=loss_label(loss),
                    ),
                )
            for c in architecture_order(controls["architecture"]):
                s = controls[controls["architecture"] == c].groupby("level")[metric].mean()
                style = control_style(c)
                ax.plot(
                    range(len(levels)), s.reindex(levels), marker=_control_marker(c), ms=2.5, lw=0.8, **style
                )
                legend.setdefault(
                    c,
                    Line2D(
                        [],
                        [],
                        marker=_control_marker(c),
                        ms=2.5,
                        lw=0.8,
                        label=f"control: {control_name(c)}",
                        **style,
                    ),
                )
            _depth_ticks(ax, ticks)
            ax.set_xlabel("leaf, then ancestor depth")
            panel_title(ax, f"{'ECE' if metric == 'ece' else 'Brier score'}: {arch}", fig, cols)
            ax.set_ylabel(f"{'ECE' if metric == 'ece' else 'Brier'} ({split_label(split)})")
    order = [*loss_order(set(runs["loss"])), *architecture_order(controls["architecture"])]
    legend_below(fig, [legend[k] for k in order if k in legend])
    if note:
        fig.suptitle(note, fontsize=SMALL_PT)
    save(fig, path)


def novel_types(
    table: pd.DataFrame, novel_meta: dict | None, path: str | os.PathLike, names: dict[str, str] | None = None
) -> None:
    """Novel OOD cell types scored at their nearest trained ancestor (named through ``names``, term id → name):
    (a) accuracy per novel type and loss, mean over the trained and reference architectures and their seeds;
    (b) over all novel cells, per loss, a dot per architecture and the mean as a bar; controls left out. The
    coverage (cells scored / novel cells) heads the figure."""
    if table.empty or not novel_meta:
        no_data(path, "no novel OOD cell types to score")
        return
    runs, _ = split_controls(table)
    if runs.empty:
        no_data(path, "no trained model scored the novel OOD cell types")
        return
    names = names or {}
    sub = runs[runs["novel_label"] != "all"]
    means = sub.groupby(["novel_label_name", "nearest_trained_ancestor", "loss"])[
        "accuracy_at_ancestor"
    ].mean()
    means = means.unstack("loss")
    overall = (
        runs[runs["novel_label"] == "all"].groupby(["loss", "architecture"])["accuracy_at_ancestor"].mean()
    )
    losses = loss_order(means.columns)
    n = len(means)
    row_mm = max(5.0, 1.3 * len(losses) + 1.5)
    fig, (ax, bx) = plt.subplots(
        1,
        2,
        figsize=mm(PAGE_MM, 26.0 + row_mm * max(n, 3)),
        width_ratios=(2.2, 1.0),
        layout="constrained",
    )
    y = np.arange(n)
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
        )
    label_pt = 0.3 * PAGE_MM / 25.4 * 72.0
    labels = [
        f"{shorten(str(novel), label_pt)}\n→ {shorten(str(names.get(anc, anc)), label_pt - 8.0)}"
        for novel, anc in means.index
    ]
    ax.set_yticks(y, labels)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy at the nearest trained ancestor (the prediction is it or a subtype)")
    ax.set_title("a   per novel type (→ nearest trained ancestor)", loc="left")
    yl = np.arange(len(losses))
    rng = np.random.default_rng(0)
    for j, loss in enumerate(losses):
        if loss not in overall.index.get_level_values(0):
            continue
        v = overall.loc[loss].to_numpy(dtype=float)
        bx.barh(
            j,
            v.mean(),
            height=0.6,
            color=loss_colour(loss),
            alpha=0.6,
            hatch=DECODED_HATCH if is_decoded(loss) else None,
            edgecolor="#404040",
            lw=0.4,
        )
        bx.scatter(v, j + rng.uniform(-0.15, 0.15, len(v)), s=6, color="black", zorder=3)
    bx.set_yticks(yl, [loss_label(loss) for loss in losses])
    bx.set_ylim(len(losses) - 0.5, -0.5)
    bx.set_xlim(0, 1)
    bx.set_xlabel("accuracy at the ancestor")
    bx.set_title("b   all novel cells", loc="left")
    cov = novel_meta.get("coverage", float("nan"))
    fig.suptitle(
        f"Novel OOD cell types: {novel_meta['n_cells_scored']:,} of {novel_meta['n_cells']:,} cells scored "
        f"(coverage {cov:.0%})",
        fontsize=FONT_PT,
    )
    dot = Line2D([], [], marker="o", ms=2.5, ls="", color="black", label="one architecture (b)")
    legend_below(fig, [*loss_handles(losses), dot])
    save(fig, path)


def _display_columns(columns) -> list[tuple[str, str]]:
    """(architecture, loss) pairs in display order: architectures as ``architecture_order``, losses as
    ``loss_order`` within each."""
    pairs = list(columns)
    archs = architecture_order(a for a, _ in pairs)
    return [(a, loss) for a in archs for loss in loss_order(x for b, x in pairs if b == a)]


#: The stratum kinds of the stratified heatmaps, in order, with the name each block is labelled by.
STRATUM_KINDS = {"dataset_id": "dataset", "tissue": "tissue", "assay": "assay", "disease": "disease"}
#: Colour scale of the stratified heatmaps (macro F1).
HEATMAP_CMAP = "viridis"


def stratified_heatmaps(table: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Macro F1 (mean over seeds) per dataset / tissue / assay / disease: a block of rows per kind, one column
    per architecture × loss (controls last, as references), the columns named once under the last block, a
    colour bar; each cell's value is printed in it when it fits."""
    if table.empty:
        no_data(path, f"no stratified metrics on the {split} split")
        return
    kinds = [k for k in STRATUM_KINDS if (table["stratum_type"] == k).any()]
    if not kinds:
        no_data(path, f"no stratified metrics on the {split} split")
        return
    columns = _display_columns(
        table[["architecture", "loss"]].drop_duplicates().itertuples(index=False, name=None)
    )
    label_pt = 120.0
    wides = []
    for kind in kinds:
        sub = table[table["stratum_type"] == kind]
        wide = sub.pivot_table(index="stratum", columns=["architecture", "loss"], values="mean")
        wide = wide.reindex(columns=pd.MultiIndex.from_tuples(columns))
        cells = sub.groupby("stratum")["n_cells"].max()
        # A Census dataset id (a 36-character UUID) by its first 8 characters; a short id (an .h5ad's) whole.
        short = (lambda s: s if len(s) <= 12 else s[:8] + "…") if kind == "dataset_id" else (lambda s: s)
        wide.index = [
            shorten(f"{short(str(s))}", label_pt - text_width_pt(f" (n={int(cells[s]):,})"))
            + f" (n={int(cells[s]):,})"
            for s in wide.index
        ]
        wides.append((kind, wide))
    n_cols = len(columns)
    cell_mm = min(9.0, max(2.8, (PAGE_MM - 75.0) / n_cols))
    width_mm = min(PAGE_MM, max(COLUMN_MM, 75.0 + cell_mm * n_cols))
    col_labels = [
        f"{a} · {loss_label(loss)}" if row_role(a, loss) != ROLE_CONTROL else f"control: {control_name(a)}"
        for a, loss in columns
    ]
    label_h_mm = max(text_width_pt(c) for c in col_labels) / 72.0 * 25.4 + 4.0
    heights = [len(w) for _, w in wides]
    row_mm = max(3.4, 18.0 / sum(heights))  # a colour bar needs ~18 mm however few strata there are
    fig, axes = plt.subplots(
        len(wides),
        1,
        figsize=mm(width_mm, row_mm * sum(heights) + 4.0 * len(wides) + label_h_mm + 12.0),
        squeeze=False,
        height_ratios=heights,
        sharex=True,
        layout="constrained",
    )
    annotate = cell_mm / 25.4 * 72.0 >= text_width_pt("0.00") + 3.0
    norm = Normalize(0.0, 1.0)
    for i, (ax, (kind, wide)) in enumerate(zip(axes[:, 0], wides, strict=True)):
        sns.heatmap(
            wide.to_numpy(dtype=float),
            ax=ax,
            vmin=0,
            vmax=1,
            cmap=HEATMAP_CMAP,
            annot=annotate,
            fmt=".2f",
            annot_kws={"size": SMALL_PT},
            cbar=False,
            xticklabels=False,
            yticklabels=list(wide.index),
        )
        ax.set_ylabel(STRATUM_KINDS[kind])
        ax.tick_params(axis="y", rotation=0, length=0)
        ax.tick_params(axis="x", length=0)
        if i == len(wides) - 1:
            ax.set_xticks(np.arange(n_cols) + 0.5, col_labels, rotation=90)
    fig.align_ylabels(list(axes[:, 0]))
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=HEATMAP_CMAP),
        ax=list(axes[:, 0]),
        shrink=min(1.0, 40.0 / max(1.0, row_mm * sum(heights))),
        aspect=15,
        label=f"{split_label(split)} macro F1",
    )
    fig.suptitle(
        f"{split_label(split)} macro F1 per stratum, mean over seeds"
        + ("" if annotate else " (values in stratified_macro_f1.tsv)"),
        fontsize=FONT_PT,
    )
    save(fig, path)
