"""The figures of the grid's headline numbers, from the metrics table and the training histories: macro F1 per
architecture and loss (Fig. 2b), the losses ranked, the coarse-annotation sweep, ID test against OOD, and the
training curves."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from hcebench.report.aggregate import headline, sweep_gains
from hcebench.report.figures.style import (
    DECODED_HATCH,
    control_style,
    draw_controls,
    line_style,
    loss_colour,
    loss_handles,
    no_data,
    split_controls,
    split_label,
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


def macro_f1_by_architecture(
    metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood", title: str = ""
) -> None:
    """Fig. 2b: macro F1 per architecture and loss; mean as a bar (hatched for a model decoded by propagation),
    one dot per seed, the relative gain over CE of the same architecture printed above each other bar. Reference
    methods (CellTypist) stand right of a dotted divider; controls are horizontal reference lines."""
    values = headline(metrics)
    values = values[values["split"] == split]
    if values.empty:
        no_data(path, f"no {split} split in evaluation.splits")
        return
    bars, controls = split_controls(values)
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
    control_handles = draw_controls(ax, controls)
    ax.set_xticks(range(len(archs)), archs)
    ax.set_xlim(-0.6, len(archs) - 0.4)
    ax.set_ylim(0, min(1.12, top * 1.2) if top > 0 else 1.0)
    ax.set_ylabel(f"{split_label(split)} macro F1 (hierarchy-corrected)")
    ax.legend(
        handles=[*loss_handles(losses), *control_handles],
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
    ranked, controls = split_controls(values)
    if ranked.empty:
        no_data(path, f"no trained model on the {split} split")
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
        handles = draw_controls(ax, controls, vertical=True) or handles
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel(f"{split_label(split)} macro F1", fontsize=8)
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
        no_data(path, "no loss compared with CE at any share")
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
                ls=line_style(loss),
                marker="D" if is_decoded(loss) else "o",
                ms=4,
                capsize=2,
                lw=1.4,
            )
        ax.axhline(0, color="black", lw=0.7)
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel("share of training studies annotated coarsely")
        sns.despine(ax=ax)
    axes[0][0].set_ylabel(f"{split_label(split)} macro F1 gain over CE")
    handles = [
        Line2D(
            [],
            [],
            color=loss_colour(loss),
            ls=line_style(loss),
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
        no_data(path, "needs both the test and ood splits in evaluation.splits")
        return
    runs, controls = split_controls(wide)
    archs = architecture_order(runs["architecture"])
    if not archs:
        no_data(path, "no trained model or reference method to draw")
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
                    ls=line_style(loss),
                )
            ax.plot(
                [0, 1],
                [s["test"].mean(), s["ood"].mean()],
                color=loss_colour(loss),
                lw=2.5,
                marker="o",
                ls=line_style(loss),
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
        Line2D([], [], color=loss_colour(loss), lw=2.5, ls=line_style(loss), label=loss_label(loss))
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
        no_data(path, "no training history")
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
