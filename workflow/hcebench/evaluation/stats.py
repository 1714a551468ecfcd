"""Seed-paired comparisons of HCE against CE, and Holm–Bonferroni adjustment across cell types.

The paper trains four seeds per model and loss and compares the two losses seed by seed (Fig. 2c:
a paired t-test per cell type, Holm–Bonferroni across cell types). With so few seeds the test has
little power; report the mean difference beside the p-value.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _sps

#: Differences whose sample standard deviation is at most this (relative to max(1, |mean|)) count
#: as constant: a t statistic from rounding noise would be meaningless.
ZERO_VARIANCE_RTOL = 1e-12


def paired_test(a, b) -> dict[str, float]:
    """Two-sided paired t-test of ``b - a`` (e.g. ``a`` = CE, ``b`` = HCE, paired by seed).

    Returns ``mean_diff`` (mean of ``b - a``), ``sd_diff`` (its sample standard deviation, ddof=1),
    ``t`` and ``p`` (``scipy.stats.ttest_rel(b, a)``) and ``n`` (pairs used). Pairs with a NaN on
    either side are dropped first. The test is undefined, and ``t`` and ``p`` are NaN, when fewer
    than two pairs remain or the differences are constant (zero variance, including all-equal
    pairs); ``mean_diff`` is still reported then (NaN only for ``n == 0``; ``sd_diff`` NaN for ``n < 2``).
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have equal length, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = b[keep] - a[keep]
    n = int(d.size)
    mean = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n >= 2 else float("nan")
    t = p = float("nan")
    if n >= 2 and sd > ZERO_VARIANCE_RTOL * max(1.0, abs(mean)):
        res = _sps.ttest_rel(b[keep], a[keep])
        t, p = float(res.statistic), float(res.pvalue)
    return {"mean_diff": mean, "sd_diff": sd, "t": t, "p": p, "n": n}


def holm_bonferroni(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input's order and shape.

    With the ``m`` non-NaN p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value
    is ``max_{j <= i} min(1, (m - j + 1) p_(j))``: monotone in the raw p-values and capped at 1.
    Rejecting where the adjusted value is ``<= alpha`` controls the family-wise error rate at
    ``alpha``. NaN entries (untestable comparisons) stay NaN and do not count towards ``m``.
    """
    p = np.asarray(pvalues, dtype=float)
    flat = p.ravel()
    out = np.full(flat.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(flat))
    m = ok.size
    if m:
        if (flat[ok] < 0).any() or (flat[ok] > 1).any():
            raise ValueError("p-values must lie in [0, 1]")
        order = ok[np.argsort(flat[ok], kind="stable")]
        scaled = (m - np.arange(m)) * flat[order]
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.reshape(p.shape)
