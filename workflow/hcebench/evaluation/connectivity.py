"""How connected each cell type is within the label set, and whether HCE's gain follows it.

The paper's closing lesson is that HCE helps most where the hierarchy gives it something to share. Per label
``i`` of the label set (``R`` as in ``hcebench.hierarchy.ontology``):

- ``n_ancestors`` / ``n_descendants``: strict ancestors / subtypes of ``i`` among the labels;
  ``connectivity`` is their sum;
- ``is_coarse``: ``i`` has a subtype in the label set, so cells labelled ``i`` carry a coarse annotation;
- ``n_train``: training cells labelled ``i``;
- ``subtree_coarse_fraction``: among training cells labelled ``i`` or one of its subtypes, the fraction whose
  label is itself coarse. Near 1, this branch of the atlas is mostly annotated at coarse levels; 0 for a leaf
  whose cells are all labelled at the leaf.

``spearman_with_ci`` correlates ΔF1 with a connectivity measure across cell types and bootstraps cell types
for a percentile confidence interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _sps


def connectivity_table(reachability, term_ids, train_counts: dict[str, int]) -> pd.DataFrame:
    """One row per label (label-set order) with the columns of the module docstring plus ``term_id``."""
    r = np.asarray(reachability).astype(bool)
    n_anc = r.sum(axis=0) - 1
    n_desc = r.sum(axis=1) - 1
    counts = np.array([int(train_counts.get(t, 0)) for t in term_ids], dtype=float)
    coarse = n_desc > 0
    in_subtree = r @ counts  # cells labelled i or a subtype of i
    coarse_in_subtree = r @ (counts * coarse)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(in_subtree > 0, coarse_in_subtree / in_subtree, np.nan)
    return pd.DataFrame(
        {
            "term_id": list(term_ids),
            "n_ancestors": n_anc.astype(int),
            "n_descendants": n_desc.astype(int),
            "connectivity": (n_anc + n_desc).astype(int),
            "is_coarse": coarse,
            "n_train": counts.astype(np.int64),
            "subtree_coarse_fraction": frac,
        }
    )


def spearman_with_ci(x, y, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Spearman's rho of ``x`` and ``y`` (NaN pairs dropped), its p-value, and a percentile bootstrap CI over
    pairs. Fewer than three pairs, or a constant side, give NaN throughout (``n`` is still reported)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    out = {"rho": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = _sps.spearmanr(x, y)
    out["rho"], out["p"] = float(res.statistic), float(res.pvalue)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    # Spearman's rho is Pearson's r on ranks; rank each resample (ties averaged) then correlate row-wise.
    rx = _sps.rankdata(x[idx], axis=1)
    ry = _sps.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    alpha = (1 - level) / 2
    out["ci_low"], out["ci_high"] = (float(v) for v in np.nanquantile(rho, [alpha, 1 - alpha]))
    return out
