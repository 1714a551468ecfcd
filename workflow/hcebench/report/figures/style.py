"""The figures' shared look: each loss's colour, the controls' line styles, the placeholder drawn when there is no
data, and the helpers every figure module uses (models apart from controls, control reference lines, legend
handles, split names)."""

from __future__ import annotations

import os
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex, to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hcebench.report.losses import (
    ROLE_CONTROL,
    architecture_order,
    base_loss,
    control_bound,
    control_name,
    is_decoded,
    loss_label,
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


def no_data(path: str | os.PathLike, why: str) -> None:
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


def line_style(loss: str) -> str:
    """Line style of a loss's series: dashed for a model decoded by propagation, else solid."""
    return "--" if is_decoded(loss) else "-"


def _role_of(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [row_role(a, loss) for a, loss in zip(frame["architecture"], frame["loss"], strict=True)],
        index=frame.index,
        dtype=object,
    )


def split_controls(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame``'s model and reference rows, and its control rows."""
    control = _role_of(frame) == ROLE_CONTROL if len(frame) else pd.Series(dtype=bool)
    return frame[~control], frame[control]


def split_label(split: str) -> str:
    """A split's name on an axis: "OOD", "ID test", else the split itself."""
    return "OOD" if split == "ood" else "ID test" if split == "test" else split


def draw_controls(ax, controls: pd.DataFrame, *, vertical: bool = False) -> list[Line2D]:
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


def loss_handles(losses) -> list[Patch]:
    """Legend patches of ``losses`` as their bars are drawn: the loss's colour, hatched for a decoded model."""
    return [
        Patch(
            facecolor=loss_colour(loss),
            edgecolor="#404040",
            hatch=DECODED_HATCH if is_decoded(loss) else None,
            label=loss_label(loss),
        )
        for loss in losses
    ]
