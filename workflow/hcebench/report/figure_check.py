"""The figure check: every figure the workflow writes must print legibly at its size.

``figure_problems(fig)`` draws the figure once with a renderer that records each text it draws, then measures
every drawn text (tick labels, titles, axis labels, annotations, legend entries, colour-bar labels; empty ones
ignored) with ``Text.get_window_extent`` at the figure's own renderer and reports

- **overlap**: two texts whose boxes overlap by more than ``OVERLAP_TOLERANCE_PT`` vertically and come closer
  than ``MIN_GAP_PT`` horizontally (words side by side need a visible gap);
- **clipped**: a text, a legend or an axes that leaves the canvas, or a text clipped by its axes' clip box;
- **too small**: a text set below ``MIN_FONT_PT`` (at the figure's print size);
- **too wide**: a canvas wider than a page, ``PAGE_WIDTH_MM``.

Only what is drawn is measured: tick labels outside the axis limits, axes switched off and invisible artists are
not. A text's box is its axis-aligned bounding box, so rotate labels by 0° or 90°; at other angles the box is
larger than the glyphs and neighbours may be reported although they do not touch.

``check_figure(fig, name)`` raises ``hcebench.errors.FigureCheckError`` listing every problem, naming the texts;
``hcebench.report.figures.style.save`` calls it before any figure is written, so a figure that fails is never
written and its rule fails with that message.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

from hcebench.errors import FigureCheckError

MM_PER_INCH = 25.4
#: The widest figure: a Nature Computational Science page (two columns) is 180 mm; a column is 88 mm.
PAGE_WIDTH_MM = 180.0
COLUMN_WIDTH_MM = 88.0
#: Smallest type at print size (Nature's figure guide: 5–7 pt; we keep every text at 6 pt or more).
MIN_FONT_PT = 6.0
#: Two texts collide when their boxes share more than this height and come closer than ``MIN_GAP_PT`` side by
#: side (lines of text may stack tightly; words side by side need a visible gap).
OVERLAP_TOLERANCE_PT = 0.75
MIN_GAP_PT = 1.5
#: How far a box may stray outside the canvas before it counts as clipped (rounding of the renderer).
CANVAS_TOLERANCE_PT = 0.5


class _RecordingRenderer(RendererAgg):
    """An Agg renderer that remembers every ``Text`` it is asked to draw (``mtext``), in drawing order."""

    def __init__(self, width: float, height: float, dpi: float) -> None:
        super().__init__(width, height, dpi)
        self.texts: dict[int, Text] = {}

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None:
            self.texts.setdefault(id(mtext), mtext)
        return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    def draw_tex(self, gc, x, y, s, prop, angle, *, mtext=None):
        if mtext is not None:
            self.texts.setdefault(id(mtext), mtext)
        return super().draw_tex(gc, x, y, s, prop, angle, mtext=mtext)


def _describe(text: Text) -> str:
    s = " ".join(text.get_text().split())
    return repr(s if len(s) <= 48 else s[:47] + "…")


def drawn_texts(fig: Figure) -> tuple[list[Text], RendererAgg]:
    """Every non-empty ``Text`` the figure draws, and the renderer that drew it (layout engines run too)."""
    width, height = fig.bbox.size
    renderer = _RecordingRenderer(width, height, fig.dpi)
    fig.draw(renderer)
    texts = [t for t in renderer.texts.values() if t.get_text().strip()]
    return texts, renderer


def colliding(box: np.ndarray, others: np.ndarray, px_per_pt: float) -> np.ndarray:
    """Which of ``others`` (n × ``[x0, y0, x1, y1]``, pixels) the ``box`` collides with as the check judges
    texts: sharing more than ``OVERLAP_TOLERANCE_PT`` of height and less than ``MIN_GAP_PT`` apart side by side.
    Figure code that places labels itself (Fig. 2d) uses it to keep them apart."""
    others = np.asarray(others, dtype=float).reshape(-1, 4)
    dx = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    dy = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return (dx > -MIN_GAP_PT * px_per_pt) & (dy > OVERLAP_TOLERANCE_PT * px_per_pt)


def _overlaps(boxes: np.ndarray, tol: float, gap: float) -> list[tuple[int, int]]:
    """Pairs (i < j) of boxes ``[x0, y0, x1, y1]`` that share more than ``tol`` in y and are less than ``gap``
    apart in x (or overlap there)."""
    pairs = []
    order = np.argsort(boxes[:, 0], kind="stable")
    b = boxes[order]
    for k in range(len(b) - 1):
        rest = b[k + 1 :]
        # sorted by x0: once a box starts ``gap`` right of this one's end, every later box does too
        stop = np.searchsorted(rest[:, 0], b[k, 2] + gap, side="left")
        cand = rest[:stop]
        dx = np.minimum(b[k, 2], cand[:, 2]) - np.maximum(b[k, 0], cand[:, 0])
        dy = np.minimum(b[k, 3], cand[:, 3]) - np.maximum(b[k, 1], cand[:, 1])
        for j in np.flatnonzero((dx > -gap) & (dy > tol)):
            i1, i2 = int(order[k]), int(order[k + 1 + j])
            pairs.append((min(i1, i2), max(i1, i2)))
    return sorted(pairs)


def figure_problems(fig: Figure) -> list[str]:
    """What would print badly in ``fig``, one line each (module docstring); empty when it is fine."""
    problems = []
    width_mm = fig.get_figwidth() * MM_PER_INCH
    if width_mm > PAGE_WIDTH_MM + 0.05:
        problems.append(f"too wide: {width_mm:.0f} mm (a page is {PAGE_WIDTH_MM:.0f} mm)")
    texts, renderer = drawn_texts(fig)
    px_per_pt = fig.dpi / 72.0
    canvas = fig.bbox
    edge = CANVAS_TOLERANCE_PT * px_per_pt

    def outside(box) -> bool:
        return (
            box.x0 < canvas.x0 - edge
            or box.y0 < canvas.y0 - edge
            or box.x1 > canvas.x1 + edge
            or box.y1 > canvas.y1 + edge
        )

    boxes = []
    for text in texts:
        box = text.get_window_extent(renderer)
        boxes.append([box.x0, box.y0, box.x1, box.y1])
        if text.get_fontsize() < MIN_FONT_PT - 1e-6:
            problems.append(
                f"too small: {_describe(text)} is {text.get_fontsize():.1f} pt (< {MIN_FONT_PT:g} pt)"
            )
        if outside(box):
            problems.append(f"clipped: {_describe(text)} leaves the canvas")
        elif text.get_clip_on() and text.get_clip_box() is not None:
            clip = text.get_clip_box()
            if (
                box.x0 < clip.x0 - edge
                or box.x1 > clip.x1 + edge
                or box.y0 < clip.y0 - edge
                or box.y1 > clip.y1 + edge
            ):
                problems.append(f"clipped: {_describe(text)} is cut by its axes")
    for artist in fig.findobj(lambda a: isinstance(a, Legend | Axes)):
        if (
            artist.get_visible()
            and (not isinstance(artist, Axes) or artist.axison)
            and outside(artist.get_window_extent(renderer))
        ):
            kind = "a legend" if isinstance(artist, Legend) else "an axes"
            problems.append(f"clipped: {kind} leaves the canvas")
    if boxes:
        for i, j in _overlaps(
            np.asarray(boxes, dtype=float), OVERLAP_TOLERANCE_PT * px_per_pt, MIN_GAP_PT * px_per_pt
        ):
            problems.append(f"overlap: {_describe(texts[i])} and {_describe(texts[j])}")
    return problems


def check_figure(fig: Figure, name: str = "figure") -> None:
    """Raise ``FigureCheckError`` naming ``name`` and every problem ``figure_problems`` finds."""
    problems = figure_problems(fig)
    if problems:
        shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
        raise FigureCheckError(
            f"{name} would print badly ({len(problems)} problem(s)); fix the figure function "
            "(hcebench.report.figures):\n  " + "\n  ".join(shown)
        )
