"""Figures from the metrics table. Each function writes one image and returns nothing.

Losses are drawn from ``hcebench.report.losses``: any loss of the grid gets a colour (``loss_colour``), a name and
a place; a model decoded by propagation (``<loss>_prop``) shares its loss's hue, lighter, hatched or dashed; control
methods are reference lines, not bars.

Every figure is written by ``style.save``, which first runs the figure check (``hcebench.report.figure_check``:
no text overlaps another or leaves the canvas, type ≥ 6 pt, at most a page wide) and refuses a figure that fails.

The figures by role: ``style`` (print sizes and type, colours, line styles, the no-data placeholder, ``save``,
panel grids, the legend below, control lines and legend handles),
``grid`` (from the metrics table and the training histories: Fig. 2b, the loss ranking, the coarse-annotation sweep,
ID test against OOD, training curves), ``ontology`` (per cell type and on the hierarchy: Fig. 2c, Fig. 2d,
connectivity) and ``predictions`` (from the per-cell predictions and the strata: hierarchical panel, back-off,
calibration, novel OOD types, stratified heatmaps). This package re-exports each module's public names.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # rules run headless; set here, before any figure module imports pyplot
# ``figures.plt`` is pyplot, as when this package was one module (tests wrap ``figures.plt.close``).
import matplotlib.pyplot as plt  # noqa: E402, F401

from hcebench.report.figures.grid import (  # noqa: E402
    coarse_share_sweep,
    id_versus_ood,
    loss_ranking,
    macro_f1_by_architecture,
    training_curves,
)
from hcebench.report.figures.ontology import (  # noqa: E402
    ABSENT_COLOUR,
    DELTA_CMAP,
    MAX_NODE_AREA,
    MIN_NODE_AREA,
    SIGNIFICANCE,
    celltype_delta,
    connectivity_scatter,
    dag_node_areas,
    dag_node_colours,
    delta_norm,
    ontology_dag,
)
from hcebench.report.figures.predictions import (  # noqa: E402
    TAU_MARKERS,
    backoff_curves,
    calibration_levels,
    hierarchical_panel,
    novel_types,
    stratified_heatmaps,
)
from hcebench.report.figures.style import (  # noqa: E402
    BOUND_STYLES,
    COLUMN_MM,
    CONTROL_STYLES,
    DECODED_HATCH,
    DECODED_LIGHTEN,
    LOSS_COLOURS,
    NO_DATA_TITLE,
    PAGE_MM,
    SPARE_COLOURS,
    control_style,
    loss_colour,
    save,
)

__all__ = [
    "ABSENT_COLOUR",
    "BOUND_STYLES",
    "COLUMN_MM",
    "CONTROL_STYLES",
    "DECODED_HATCH",
    "DECODED_LIGHTEN",
    "DELTA_CMAP",
    "LOSS_COLOURS",
    "MAX_NODE_AREA",
    "MIN_NODE_AREA",
    "NO_DATA_TITLE",
    "PAGE_MM",
    "SIGNIFICANCE",
    "SPARE_COLOURS",
    "TAU_MARKERS",
    "backoff_curves",
    "calibration_levels",
    "celltype_delta",
    "coarse_share_sweep",
    "connectivity_scatter",
    "control_style",
    "dag_node_areas",
    "dag_node_colours",
    "delta_norm",
    "hierarchical_panel",
    "id_versus_ood",
    "loss_colour",
    "loss_ranking",
    "macro_f1_by_architecture",
    "novel_types",
    "ontology_dag",
    "save",
    "stratified_heatmaps",
    "training_curves",
]
