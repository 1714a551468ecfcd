"""hcebench.report.figures: Fig. 2d's node colours and sizes as the paper draws them."""

from __future__ import annotations

import numpy as np
import pytest
from dag_fixtures import TERMS, five_node_dag
from hcebench.report import figures
from hcebench.report.dag_layout import layered_layout
from hcebench.report.figures import (
    ABSENT_COLOUR,
    MAX_NODE_AREA,
    MIN_NODE_AREA,
    dag_node_areas,
    dag_node_colours,
)
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba

GREEN, RED, WHITE = np.array(to_rgba("#1a9850")), np.array(to_rgba("#d73027")), np.ones(4)


def test_fig2d_colours_green_gain_red_loss_white_zero_grey_absent():
    gain, loss, zero, absent = dag_node_colours(np.array([0.2, -0.2, 0.0, np.nan]))
    np.testing.assert_allclose(gain, GREEN, atol=1e-6)
    np.testing.assert_allclose(loss, RED, atol=1e-6)
    np.testing.assert_allclose(zero, WHITE, atol=1e-2)
    np.testing.assert_allclose(absent, to_rgba(ABSENT_COLOUR))


def test_fig2d_scale_is_symmetric_about_zero():
    # The largest |ΔF1| (a gain of 0.2) sets both ends: a loss of 0.1 is half-way from white to red.
    gain, half_loss = dag_node_colours(np.array([0.2, -0.1]))
    np.testing.assert_allclose(gain, GREEN, atol=1e-6)
    np.testing.assert_allclose(half_loss[:3], ((WHITE + RED) / 2)[:3], atol=0.02)
    # Only absent types: all grey, no scale needed.
    np.testing.assert_allclose(dag_node_colours(np.array([np.nan, np.nan])), [to_rgba(ABSENT_COLOUR)] * 2)


def test_fig2d_node_area_is_proportional_to_training_cells():
    areas = dag_node_areas(np.array([1000, 500, 250, 1, 0]))
    assert areas[0] == MAX_NODE_AREA
    assert areas[0] / areas[1] == pytest.approx(2.0) and areas[1] / areas[2] == pytest.approx(2.0)
    assert areas[3] == areas[4] == MIN_NODE_AREA  # too few cells to see: drawn at the floor


def test_fig2d_draws_each_node_with_its_own_colour_and_area(tmp_path, monkeypatch):
    drawn = []
    scatter = Axes.scatter

    def record(self, *args, **kwargs):
        drawn.append(kwargs)
        return scatter(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", record)
    hierarchy = five_node_dag()
    delta = {"A": 0.1, "B": -0.1, "C": 0.0, "E": 0.05}  # D is absent from the OOD set
    counts = {"A": 400, "B": 200, "C": 100, "D": 100, "E": 50}
    path = tmp_path / "fig2d.png"
    figures.ontology_dag(hierarchy, layered_layout(hierarchy.reachability), counts, delta, path)
    assert path.stat().st_size > 0
    (nodes,) = [kw for kw in drawn if "c" in kw]
    expected = dag_node_colours(np.array([delta.get(t, np.nan) for t in TERMS]))
    np.testing.assert_allclose(nodes["c"], expected)
    np.testing.assert_allclose(nodes["c"][TERMS.index("A")], GREEN, atol=1e-6)
    np.testing.assert_allclose(nodes["c"][TERMS.index("B")], RED, atol=1e-6)
    np.testing.assert_allclose(nodes["c"][TERMS.index("D")], to_rgba(ABSENT_COLOUR))
    np.testing.assert_allclose(nodes["s"], dag_node_areas(np.array([counts[t] for t in TERMS])))
