"""Paired t-test and Holm–Bonferroni against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hcebench.evaluation.stats import holm_bonferroni, paired_test


def t3_two_sided_p(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, in closed form (no scipy)."""
    theta = math.atan(abs(t) / math.sqrt(3))
    return 1 - (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta))


def test_paired_t_by_hand():
    ce = [0.70, 0.72, 0.71, 0.69]
    hce = [0.73, 0.74, 0.74, 0.70]
    # d = hce - ce = 0.03 0.02 0.03 0.01; mean 0.0225; squared deviations sum to 2.75e-4
    sd = math.sqrt(2.75e-4 / 3)
    t = 0.0225 / (sd / math.sqrt(4))
    r = paired_test(ce, hce)
    assert r["n"] == 4
    assert r["mean_diff"] == pytest.approx(0.0225)
    assert r["sd_diff"] == pytest.approx(sd)
    assert r["t"] == pytest.approx(t)
    assert r["t"] == pytest.approx(4.7001, abs=1e-4)
    assert r["p"] == pytest.approx(t3_two_sided_p(t))
    # direction: b - a, so swapping flips the sign and keeps p
    s = paired_test(hce, ce)
    assert s["t"] == pytest.approx(-t) and s["p"] == pytest.approx(r["p"])


def test_paired_t_degenerate_cases():
    one = paired_test([0.5], [0.6])
    assert one["n"] == 1 and one["mean_diff"] == pytest.approx(0.1)
    assert math.isnan(one["sd_diff"]) and math.isnan(one["t"]) and math.isnan(one["p"])
    # constant differences: zero variance, no test (also when rounding leaves ~1e-17 of spread)
    const = paired_test([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert const["mean_diff"] == pytest.approx(0.1)
    assert math.isnan(const["t"]) and math.isnan(const["p"])
    equal = paired_test([0.4, 0.5], [0.4, 0.5])
    assert equal["mean_diff"] == 0 and math.isnan(equal["p"])
    empty = paired_test([], [])
    assert empty["n"] == 0 and math.isnan(empty["mean_diff"]) and math.isnan(empty["p"])
    # pairs with a missing side are dropped
    r = paired_test([0.70, np.nan, 0.72, 0.71, 0.69], [0.73, 0.9, 0.74, 0.74, 0.70])
    assert r["n"] == 4 and r["t"] == pytest.approx(
        paired_test([0.70, 0.72, 0.71, 0.69], [0.73, 0.74, 0.74, 0.70])["t"]
    )
    with pytest.raises(ValueError, match="equal length"):
        paired_test([1, 2], [1, 2, 3])


def test_holm_by_hand():
    # sorted: 0.005 0.01 0.03 0.04 -> x4 x3 x2 x1 = 0.02 0.03 0.06 0.04 -> running max 0.02 0.03 0.06 0.06
    adj = holm_bonferroni([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    # NaN passes through and does not count towards m
    adj = holm_bonferroni([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, np.nan, 0.06, 0.06, 0.02])
    # capped at 1
    np.testing.assert_allclose(holm_bonferroni([0.3, 0.6, 0.9]), [0.9, 1.0, 1.0])
    # a single test is not adjusted; empty input gives empty output
    np.testing.assert_allclose(holm_bonferroni([0.04]), [0.04])
    assert holm_bonferroni([]).shape == (0,)
    assert np.isnan(holm_bonferroni([np.nan])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_bonferroni([0.5, 1.5])


def test_holm_properties_on_random_pvalues():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(int(rng.integers(1, 30))) ** 3
        adj = holm_bonferroni(p)
        order = np.argsort(p)
        assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-values
        assert np.all(adj >= p) and np.all(adj <= 1)
        assert np.all(adj <= np.minimum(len(p) * p, 1) + 1e-15)  # never worse than Bonferroni
