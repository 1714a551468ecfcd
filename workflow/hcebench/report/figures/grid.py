"""The figures of the grid's headline numbers, from the metrics table and the training histories: macro F1 per
architecture and loss (Fig. 2b), the losses ranked, the coarse-annotation sweep, ID test against OOD, and the
training curves. Panels per architecture wrap into a grid (``style.panel_grid``); the legend sits below."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from hcebench.report.aggregate import headline, sweep_gains
from hcebench.report.figures.style import (
    COLUMN_MM,
    DECODED_HATCH,
    PAGE_MM,
    SMALL_PT,
    control_style,
    draw_controls,
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
    BASELINE_LOSS,
    REFERENCE_ARCHITECTURES,
    architecture_order,
    control_name,
    is_decoded,
    loss_label,
    loss_order,
)

#: Width of one bar in Fig. 2b at print size (mm): the same for every architecture, whatever its number of losses.
BAR_MM = 3.2


def macro_f1_by_architecture(
    metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood", title: str = ""
) -> None:
    """Fig. 2b: macro F1 per architecture and loss; mean as a bar (hatched for a model decoded by propagation),
    one dot per seed, the relative gain over CE of the same architecture printed above each other bar. Every bar
    has the same width; an architecture with fewer losses has a narrower group. Reference methods (CellTypist)
    stand right of a dotted divider; controls are horizontal reference lines named in the legend."""
    values = headline(metrics)
    values = values[values["split"] == split]
    if values.empty:
        no_data(path, f"no {split} split in evaluation.splits")
        return
    bars, controls = split_controls(values)
    archs = architecture_order(bars["architecture"])
    losses = loss_order(bars["loss"])
    present = {
        a: [loss for loss in losses if (bars["architecture"].eq(a) & bars["loss"].eq(loss)).any()]
        for a in archs
    }
    # Each group is its bars plus a gap of one bar, wider where its name needs it; x is in bar widths.
    name_units = {a: (text_width_pt(a) / 72.0 * 25.4 + 1.5) / BAR_MM for a in archs}
    slots = {a: max(len(present[a]) + 1.0, name_units[a]) for a in archs}
    width_mm = min(PAGE_MM, max(COLUMN_MM, 22.0 + BAR_MM * sum(slots.values())))
    unit_mm = (width_mm - 22.0) / sum(slots.values())  # a bar's width once the figure is at most a page
    starts, edges, x0 = [], [], 0.0  # first bar of each group; left edge of each slot
    for a in archs:
        edges.append(x0 - 0.5)
        starts.append(x0 + (slots[a] - len(present[a])) / 2)
        x0 += slots[a]
    fig, ax = plt.subplots(figsize=mm(width_mm, 72.0), layout="constrained")
    rng = np.random.default_rng(0)
    top = float(bars["value"].max()) if len(bars) else 1.0
    gains = []
    for arch, start in zip(archs, starts, strict=True):
        sub = bars[bars["architecture"] == arch]
        ce = sub.loc[sub["loss"] == BASELINE_LOSS, "value"].mean()
        for j, loss in enumerate(present[arch]):
            x = start + j
            v = sub.loc[sub["loss"] == loss, "value"].to_numpy(dtype=float)
            colour = loss_colour(loss)
            ax.bar(
                x,
                v.mean(),
                0.9,
                color=colour,
                alpha=0.6,
                edgecolor="#404040",
                lw=0.5,
                hatch=DECODED_HATCH if is_decoded(loss) else None,
                zorder=2,
            )
            ax.scatter(
                x + rng.uniform(-0.22, 0.22, len(v)),
                v,
                s=6,
                color=colour,
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
            if loss != BASELINE_LOSS and np.isfinite(ce) and ce > 0:
                gains.append((x, float(v.max()), f"{100.0 * (v.mean() - ce) / ce:+.1f}%"))
    # The gains read upwards from each bar's highest seed; the axis leaves room for the longest (the axes are
    # at least ~110 pt high at this figure size).
    longest = max((text_width_pt(g, SMALL_PT) for _, _, g in gains), default=0.0)
    ymax = max(top, 0.05) / max(0.4, 1.0 - (longest + 6.0) / 110.0) if gains else max(top, 0.05) * 1.08
    for x, y, g in gains:
        ax.annotate(
            g,
            (x, y),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            rotation=90,
            fontsize=SMALL_PT,
            # over a control's line (truth at 1.0) the text keeps a white ground
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=5,
        )
    refs = [e for a, e in zip(archs, edges, strict=True) if a in REFERENCE_ARCHITECTURES]
    if refs and len(refs) < len(archs):
        ax.axvline(min(refs), color="#909090", lw=0.6, ls=":")
    control_handles = draw_controls(ax, controls)
    centres = [s + (len(present[a]) - 1) / 2 for a, s in zip(archs, starts, strict=True)]
    ax.set_xticks(centres, [shorten(a, slots[a] * unit_mm / 25.4 * 72.0 - 2.0) for a in archs])
    ax.set_xlim(-0.5, x0 - 0.5)
    ax.set_ylim(0, max(ymax, float(values["value"].max()) * 1.03))
    if ax.get_ylim()[1] > 1.0:  # room for the gains above 1, but no tick past the largest possible F1
        ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_ylabel(f"{split_label(split)} macro F1\n(hierarchy-corrected)")
    ax.set_title(
        title
        or f"{'Out-of-distribution' if split == 'ood' else 'In-distribution'} macro F1 (% = gain over CE)"
    )
    legend_below(fig, [*loss_handles(losses), *control_handles])
    save(fig, path)


def loss_ranking(metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood") -> None:
    """Per architecture, its losses ranked by mean macro F1 on ``split`` (best on top): a dot per seed, the mean
    as a black bar, controls as vertical reference lines across every panel."""
    values = headline(metrics)
    values = values[values["split"] == split]
    ranked, controls = split_controls(values)
    if ranked.empty:
        no_data(path, f"no trained model on the {split} split")
        return
    archs = architecture_order(ranked["architecture"])
    most = max(ranked[ranked["architecture"] == a]["loss"].nunique() for a in archs)
    cols = min(len(archs), 3)
    fig, axes = panel_grid(len(archs), max_cols=3, panel_height_mm=14.0 + 4.0 * most, sharex=True)
    rng = np.random.default_rng(0)
    handles = []
    for ax, arch in zip(axes, archs, strict=True):
        sub = ranked[ranked["architecture"] == arch]
        means = sub.groupby("loss")["value"].mean()
        order = sorted(means.index, key=lambda loss: (-means[loss], loss_order(means.index).index(loss)))
        for y, loss in enumerate(reversed(order)):
            v = sub.loc[sub["loss"] == loss, "value"].to_numpy(dtype=float)
            ax.scatter(
                v,
                y + rng.uniform(-0.12, 0.12, len(v)),
                s=10,
                color=loss_colour(loss),
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
                marker="D" if is_decoded(loss) else "o",
            )
            ax.plot([means[loss]] * 2, [y - 0.3, y + 0.3], color="black", lw=1.6, zorder=4)
        ax.set_yticks(range(len(order)), [loss_label(loss) for loss in reversed(order)])
        ax.set_ylim(-0.6, most - 0.4)  # one row height in every panel
        handles = draw_controls(ax, controls, vertical=True) or handles
        panel_title(ax, arch, fig, cols)
        ax.set_xlabel(f"{split_label(split)} macro F1")
        ax.tick_params(labelbottom=True)
    mean_handle = Line2D([], [], color="black", lw=1.6, label="mean over seeds")
    seed_handle = Line2D(
        [], [], marker="o", ls="", color="#bbbbbb", markeredgecolor="black", label="one seed"
    )
    legend_below(fig, [seed_handle, mean_handle, *handles])
    save(fig, path)


def coarse_share_sweep(
    points: Sequence[tuple[float, pd.DataFrame]], path: str | os.PathLike, split: str = "ood"
) -> None:
    """The mechanism sweep: each loss's macro-F1 gain over CE (mean ± sd of the seed-paired differences) against
    the share of training studies annotated coarsely; a panel per architecture. ``points`` are
    ``(coarse_study_share, metrics.tsv or summary.tsv of that run)`` pairs, reduced by ``aggregate.sweep_gains``."""
    gains = sweep_gains(points, split=split)
    if gains.empty:
        no_data(path, "no loss compared with CE at any share")
        return
    archs = architecture_order(gains["architecture"])
    fig, axes = panel_grid(len(archs), max_cols=3, panel_height_mm=48.0, sharey=True)
    cols = min(len(archs), 3)
    for i, (ax, arch) in enumerate(zip(axes, archs, strict=True)):
        sub = gains[gains["architecture"] == arch]
        for loss in loss_order(sub["loss"]):
            s = sub[sub["loss"] == loss].sort_values("share")
            ax.errorbar(
                s["share"].to_numpy(float),
                s["gain_mean"].to_numpy(float),
                yerr=s["gain_sd"].fillna(0.0).to_numpy(float),
                color=loss_colour(loss),
                ls=line_style(loss),
                marker="D" if is_decoded(loss) else "o",
                ms=3,
                capsize=1.5,
                lw=1.0,
                elinewidth=0.6,
            )
        ax.axhline(0, color="black", lw=0.6)
        panel_title(ax, arch, fig, cols)
        ax.set_xlabel("share of studies annotated coarsely")
        if i % cols == 0:
            ax.set_ylabel(f"{split_label(split)} macro F1 gain over CE")
        ax.tick_params(labelleft=True)
    handles = [
        Line2D(
            [],
            [],
            color=loss_colour(loss),
            ls=line_style(loss),
            marker="D" if is_decoded(loss) else "o",
            ms=3,
            label=loss_label(loss),
        )
        for loss in loss_order(gains["loss"])
    ]
    legend_below(fig, handles)
    save(fig, path)


def id_versus_ood(metrics: pd.DataFrame, path: str | os.PathLike) -> None:
    """ID-test vs OOD macro F1 per architecture and loss: the generalisation gap, one line per seed, the mean
    bold (dashed for a model decoded by propagation); controls in grey in every panel."""
    values = headline(metrics)
    wide = values.pivot_table(
        index=["architecture", "loss", "seed"], columns="split", values="value"
    ).reset_index()
    if not {"test", "ood"} <= set(wide.columns):
        no_data(path, "needs both the test and ood splits in evaluation.splits")
        return
    runs, controls = split_controls(wide)
    archs = architecture_order(runs["architecture"])
    if not archs:
        no_data(path, "no trained model or reference method to draw")
        return
    cols = min(len(archs), 4)
    fig, axes = panel_grid(
        len(archs), max_cols=4, width_mm=min(PAGE_MM, 24.0 + 38.0 * cols), panel_height_mm=48.0, sharey=True
    )
    for i, (ax, arch) in enumerate(zip(axes, archs, strict=True)):
        sub = runs[runs["architecture"] == arch]
        for loss in loss_order(sub["loss"]):
            s = sub[sub["loss"] == loss]
            for _, r in s.iterrows():
                ax.plot(
                    [0, 1],
                    [r["test"], r["ood"]],
                    color=loss_colour(loss),
                    alpha=0.4,
                    lw=0.6,
                    ls=line_style(loss),
                )
            ax.plot(
                [0, 1],
                [s["test"].mean(), s["ood"].mean()],
                color=loss_colour(loss),
                lw=1.6,
                marker="o",
                ms=3,
                ls=line_style(loss),
            )
        for arch_c in architecture_order(controls["architecture"]):
            c = controls[controls["architecture"] == arch_c]
            ax.plot([0, 1], [c["test"].mean(), c["ood"].mean()], lw=0.9, **control_style(arch_c))
        ax.set_xticks([0, 1], ["ID test", "OOD"])
        ax.set_xlim(-0.3, 1.3)
        panel_title(ax, arch, fig, cols)
        if i % cols == 0:
            ax.set_ylabel("macro F1 (hierarchy-corrected)")
        ax.tick_params(labelleft=True)
    handles = [
        Line2D([], [], color=loss_colour(loss), lw=1.6, ls=line_style(loss), label=loss_label(loss))
        for loss in loss_order(runs["loss"])
    ]
    handles += [
        Line2D([], [], lw=0.9, label=f"control: {control_name(a)}", **control_style(a))
        for a in architecture_order(controls["architecture"])
    ]
    # The axis spans the controls too: they bracket the models from below and above.
    lo = np.nanmin(wide[["test", "ood"]].to_numpy())
    axes[0].set_ylim(max(0.0, lo - 0.05), 1.02)
    legend_below(fig, handles)
    save(fig, path)


def training_curves(histories: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validation hierarchy-corrected macro F1 per epoch (counted from 1, as the training log counts), one line
    per run, a panel per architecture."""
    archs = architecture_order(histories["architecture"].unique()) if len(histories) else []
    if not archs:
        no_data(path, "no training history")
        return
    cols = min(len(archs), 4)
    fig, axes = panel_grid(
        len(archs), max_cols=4, width_mm=min(PAGE_MM, 24.0 + 38.0 * cols), panel_height_mm=42.0, sharey=True
    )
    for i, (ax, arch) in enumerate(zip(axes, archs, strict=True)):
        sub = histories[histories["architecture"] == arch]
        for (loss, _seed), run in sub.groupby(["loss", "seed"]):
            ax.plot(run["epoch"], run["val_macro_f1"], color=loss_colour(loss), alpha=0.75, lw=0.8)
        panel_title(ax, arch, fig, cols)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        if i % cols == 0:
            ax.set_ylabel("validation macro F1")
        ax.tick_params(labelleft=True)
    handles = [
        Line2D([], [], color=loss_colour(loss), label=loss_label(loss))
        for loss in loss_order(histories["loss"])
    ]
    legend_below(fig, handles)
    save(fig, path)
