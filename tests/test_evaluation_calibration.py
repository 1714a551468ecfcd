"""hcebench.evaluation.calibration: ECE, Brier, and calibration after collapsing to ancestor depths."""

from __future__ import annotations

import numpy as np
import pytest
from dag_fixtures import R_DAG, D
from hcebench.evaluation.calibration import brier, calibration_by_level, ece


# -- calibration ----------------------------------------------------------------------------------------
def test_ece_known_case():
    # bin (0.6, 0.7]: 2 cells at 0.65, 1 right -> |0.5 - 0.65| = 0.15, weight 2/4
    # bin (0.8, 0.9]: 2 cells at 0.85, 2 right -> |1.0 - 0.85| = 0.15, weight 2/4
    assert ece([0.65, 0.65, 0.85, 0.85], [1, 0, 1, 1], n_bins=10) == pytest.approx(0.15)
    # perfectly calibrated: confidence 0.5, half right
    assert ece([0.5, 0.5], [1, 0], n_bins=10) == pytest.approx(0.0)
    # always sure and always wrong
    assert ece([1.0, 1.0], [0, 0]) == pytest.approx(1.0)


def test_brier_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    # cell 0 truth 0: 0.09 + 0.04 + 0.01 = 0.14; cell 1 truth 1: 0.01 + 0.81 + 0.64 = 1.46
    assert brier(probs, [0, 1]) == pytest.approx((0.14 + 1.46) / 2)


def test_calibration_levels_on_five_node_dag():
    # one cell, truth D, probabilities on D 0.6 and E 0.4.
    probs = np.array([[0.0, 0.0, 0.0, 0.6, 0.4]])
    table = calibration_by_level(probs, [D], R_DAG, n_bins=10).set_index("level")
    # leaf: top 0.6 on D, right -> ECE 0.4; Brier 0.16 + 0.16
    assert table.loc["leaf", "ece"] == pytest.approx(0.4)
    assert table.loc["leaf", "brier"] == pytest.approx(0.32)
    # depth 0: q[A] = 1, truth A is an ancestor of D -> calibrated
    assert table.loc["depth0", "ece"] == pytest.approx(0.0)
    # depth 1: q[B] = 1.0, q[C] = 0.4; top B right -> ECE 0; Brier (1-1)^2 + (0.4-0)^2
    assert table.loc["depth1", "brier"] == pytest.approx(0.16)
    # depth 2: only D; q[D] = 0.6, truth -> ECE 0.4
    assert table.loc["depth2", "ece"] == pytest.approx(0.4)
    # depth 3 (E): the cell's label D has depth 2 < 3, so the level scores no cell
    assert "depth3" not in table.index
