"""The figures' shared look: print sizes and type, each loss's colour, the controls' line styles, the placeholder
drawn when there is no data, the one function that writes a figure (``save``: checked, then written atomically),
and the helpers every figure module uses (panel grids, a legend below the panels, names that fit, models apart
from controls, control reference lines, legend handles, split names).

Every figure is at most a page wide (``PAGE_MM``, 180 mm) or a column (``COLUMN_MM``, 88 mm), its type 6–7 pt at
that size in DejaVu Sans (matplotlib's own font, so text measures the same on every machine and the figure check
gives the same verdict everywhere), and written at ``DPI``.
"""

from __future__ import annotations

import math
import os
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex, to_rgb
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath

from hcebench.io import atomic_path
from hcebench.report.figure_check import COLUMN_WIDTH_MM, PAGE_WIDTH_MM, check_figure
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


#: Print sizes (mm): a page's width, a column's; figures are sized in mm with ``mm(...)``.
PAGE_MM = PAGE_WIDTH_MM
COLUMN_MM = COLUMN_WIDTH_MM
#: Resolution of the written PNGs (print quality).
DPI = 300
#: Type sizes (pt) at print size: titles and axis labels, tick labels, legends and annotations.
FONT_PT = 7.0
SMALL_PT = 6.0
#: The figures' matplotlib settings, applied when this module is imported (``figures`` imports it first).
RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "axes.linewidth": 0.6,
    "axes.titlepad": 4.0,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": SMALL_PT,
    "legend.frameon": False,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.5,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
mpl.rcParams.update(RC)

#: PNG "Title" of the placeholder a figure function writes when its inputs hold nothing to draw.
NO_DATA_TITLE = "hcebench: no data"


def mm(width: float, height: float) -> tuple[float, float]:
    """A figure size in inches from millimetres."""
    return width / 25.4, height / 25.4


def save(fig, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Check ``fig`` (``hcebench.report.figure_check``: nothing overlaps, nothing leaves the canvas, type ≥ 6 pt,
    at most a page wide), then write it to ``path`` as PNG atomically and close it. A figure that fails the check
    is closed unwritten and its ``FigureCheckError`` names every offending text."""
    try:
        check_figure(fig, Path(path).name)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png", metadata=metadata)
    finally:
        plt.close(fig)


def no_data(path: str | os.PathLike, why: str) -> None:
    """A small image that says why there is no figure (the rule's output must exist); tagged ``NO_DATA_TITLE``.
    400 × 200 pixels, so a test tells it apart from a figure by its size as well."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, textwrap.fill(why, 60), ha="center", va="center", fontsize=FONT_PT)
    ax.axis("off")
    try:
        check_figure(fig, Path(path).name)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png", metadata={"Title": NO_DATA_TITLE})
    finally:
        plt.close(fig)


_TEXT_TO_PATH = TextToPath()


def text_width_pt(text: str, size: float = SMALL_PT) -> float:
    """Width of ``text`` set in the figures' font at ``size`` pt, in points (what the renderer will draw)."""
    prop = FontProperties(family=RC["font.sans-serif"], size=size)
    width, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(text, prop, ismath=False)
    return float(width)


def shorten(name: str, max_pt: float, size: float = SMALL_PT) -> str:
    """``name`` cut and ended with "…" so that it is at most ``max_pt`` wide: at a word boundary when that
    loses little, else mid-word."""
    if text_width_pt(name, size) <= max_pt:
        return name
    n = len(name) - 1
    while n > 0 and text_width_pt(name[:n].rstrip() + "…", size) > max_pt:
        n -= 1
    if n <= 0:
        return "…"
    space = name.rfind(" ", 0, n + 1)
    if space >= max(1, n - 8):
        return name[:space].rstrip(",;:-– ") + "…"
    return name[:n].rstrip() + "…"


def panel_grid(
    n: int,
    *,
    width_mm: float = PAGE_MM,
    panel_height_mm: float = 45.0,
    max_cols: int = 4,
    extra_height_mm: float = 12.0,
    sharex: bool = False,
    sharey: bool = False,
):
    """A figure with ``n`` panels wrapped into rows of at most ``max_cols`` (never a long strip), ``width_mm``
    wide, constrained layout; the unused cells of the last row are removed. Returns ``(fig, axes)`` with
    ``axes`` a flat list of the ``n`` panels in reading order."""
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    fig, grid = plt.subplots(
        rows,
        cols,
        figsize=mm(width_mm, panel_height_mm * rows + extra_height_mm),
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
        layout="constrained",
    )
    flat = list(grid.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def panel_title(ax, text: str, fig, cols: int) -> None:
    """``text`` as the panel's title, shortened with "…" to the width of one of ``cols`` panels of ``fig``."""
    ax.set_title(shorten(text, fig.get_figwidth() * 72.0 / cols - 42.0, FONT_PT))  # less the y axis


def legend_below(fig, handles: Sequence, *, max_cols: int | None = None, title: str | None = None):
    """A legend under every panel of ``fig`` (constrained layout makes room for it), in as many columns as fit the
    figure's width; never over the data, never clipped."""
    if not handles:
        return None
    usable = fig.get_figwidth() * 72.0 - 12.0  # points, less the layout's pads
    widest = max(text_width_pt(h.get_label()) for h in handles) + 30.0  # marker, gap, column spacing
    ncol = max(1, min(len(handles), max_cols or len(handles), int(usable // widest)))
    return fig.legend(
        handles=list(handles),
        loc="outside lower center",
        ncol=ncol,
        frameon=False,
        fontsize=SMALL_PT,
        title=title,
        handlelength=1.8,
        columnspacing=1.2,
    )


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
    """One reference line per control at its mean over seeds (``axhline``, or ``axvline`` when ``vertical``), named
    by the legend handles it returns ("control: random (0.04)"), never by text beside the line: two controls
    close together would print their names over each other."""
    handles = []
    for arch in architecture_order(controls["architecture"]):
        mean = controls.loc[controls["architecture"] == arch, "value"].mean()
        if not np.isfinite(mean):
            continue
        style = control_style(arch)
        if vertical:
            ax.axvline(mean, lw=0.9, zorder=1, **style)
        else:
            ax.axhline(mean, lw=0.9, zorder=1, **style)
        label = f"control: {control_name(arch)} ({mean:.2f})"
        handles.append(Line2D([], [], lw=0.9, label=label, **style))
    return handles


def loss_handles(losses) -> list[Patch]:
    """Legend patches of ``losses`` as their bars are drawn: the loss's colour, hatched for a decoded model."""
    return [
        Patch(
            facecolor=loss_colour(loss),
            edgecolor="#404040",
            lw=0.5,
            hatch=DECODED_HATCH if is_decoded(loss) else None,
            label=loss_label(loss),
        )
        for loss in losses
    ]
