"""Figures from the metrics table. Each function writes one image and returns nothing."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # rules run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .aggregate import headline  # noqa: E402

LOSS_COLOURS = {"ce": "#8c8c8c", "hce": "#d95f02"}
LOSS_LABELS = {"ce": "CE", "hce": "HCE"}


def _no_data(path: str | os.PathLike, why: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, why, ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _loss_order(values: pd.DataFrame) -> list[str]:
    return [loss for loss in LOSS_COLOURS if loss in set(values["loss"])]


def macro_f1_by_architecture(metrics: pd.DataFrame, path: str | os.PathLike, split: str = "ood", title: str = "") -> None:
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
    sns.barplot(data=values, x="architecture", y="value", hue="loss", order=archs, hue_order=losses,
                palette=palette, errorbar=None, alpha=0.55, ax=ax)
    sns.stripplot(data=values, x="architecture", y="value", hue="loss", order=archs, hue_order=losses,
                  palette=palette, dodge=True, jitter=0.12, size=5, edgecolor="black", linewidth=0.5,
                  legend=False, ax=ax)
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
    ax.legend(handles[: len(losses)], [LOSS_LABELS[loss] for loss in losses], frameon=False, loc="lower right")
    ax.set_title(title or f"{'Out-of-distribution' if split == 'ood' else 'In-distribution'} macro F1, CE vs HCE")
    sns.despine(ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def id_versus_ood(metrics: pd.DataFrame, path: str | os.PathLike) -> None:
    """ID-test vs OOD macro F1 per architecture and loss: the generalisation gap, one line per seed pair."""
    values = headline(metrics)
    wide = values.pivot_table(index=["architecture", "loss", "seed"], columns="split", values="value").reset_index()
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
            ax.plot([0, 1], [s["test"].mean(), s["ood"].mean()], color=LOSS_COLOURS[loss], lw=2.5,
                    marker="o", label=LOSS_LABELS[loss])
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
