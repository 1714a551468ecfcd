"""Hierarchy-aware scores beside the paper's: hierarchical precision/recall/F1, error distance, accuracy per depth.

All of them work inside the label set, through the reachability matrix ``R`` of
``hcebench.hierarchy.ontology.LabelHierarchy`` (``R[i, j] = 1`` iff ``j == i`` or ``j`` is a subtype of ``i``):

- **Hierarchical precision / recall / F1** (Kiritchenko et al. 2005): a label ``j`` stands for its reflexive
  ancestor set ``A(j) = {i : R[i, j] = 1}`` (column ``j`` of ``R``). Over cells ``n`` with truth ``t_n`` and
  prediction ``p_n``, ``hP = Σ|A(t_n) ∩ A(p_n)| / Σ|A(p_n)|`` and ``hR = Σ|A(t_n) ∩ A(p_n)| / Σ|A(t_n)|``
  (micro-averaged over cells), ``hF = 2 hP hR / (hP + hR)``. No artificial root is added: the sets hold only
  labels of the label set, so two predictions in disjoint branches share nothing. A prediction outside the
  label set (negative index) has an empty ancestor set.
- **Error distance**: for the predictions the paper's rule counts as wrong (``R[t, p] = 0``), the number of edges
  on the shortest undirected path between ``t`` and ``p`` in the label set's Hasse diagram (its transitive
  reduction: an edge ``i — j`` iff ``j`` is a subtype of ``i`` with no label in between). Distances are measured
  among the trained labels only, not through the full Cell Ontology, so they are comparable across models of one
  run but not across label sets. Pairs in different connected components have no path; they are counted apart.
- **Accuracy per depth**: hierarchy-corrected accuracy of the cells whose true label has ``d`` strict ancestors in
  the label set.
- **Hop-F1** (SOCAM, "A supervised ontology-aware cell annotation method", ICML 2026 workshop): macro F1 over the
  true labels present when a prediction within ``k`` undirected edges of the truth in the same Hasse diagram counts
  as correct (``hcebench.evaluation.metrics.hop_correct``). ``k = 0`` is exact-match macro F1; each extra hop can
  only turn wrong predictions right, so the score never decreases with ``k``. Unlike the paper's rule it credits
  near misses in both directions: a parent of the truth and a sibling (two hops, through the parent) count at
  ``k = 1`` and ``k = 2``, while a subtype three levels down only counts at ``k = 3``.

``cluster_bootstrap`` resamples whole groups (datasets) with replacement, the unit the OOD question is about.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from hcebench.evaluation.metrics import HOP_RADII, f1_summary, hop_correct
from hcebench.hierarchy.hasse import hasse_distances


def hierarchical_counts(y_true, y_pred, reachability) -> dict[str, np.ndarray]:
    """Per-cell ``overlap = |A(t) ∩ A(p)|``, ``n_pred = |A(p)|``, ``n_true = |A(t)|`` (see module docstring)."""
    r = np.asarray(reachability).astype(np.int64)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    sizes = r.sum(axis=0)
    shared = r.T @ r  # shared[a, b] = number of labels that are ancestors-or-self of both a and b
    known = p >= 0
    overlap = np.zeros(t.shape, dtype=np.int64)
    overlap[known] = shared[t[known], p[known]]
    n_pred = np.where(known, sizes[np.where(known, p, 0)], 0)
    return {"overlap": overlap, "n_pred": n_pred, "n_true": sizes[t]}


def hprf_from_sums(overlap: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> dict[str, np.ndarray]:
    """hP, hR, hF from summed counts (scalars or arrays of equal shape); 0 where a denominator is 0."""
    overlap, n_pred, n_true = (np.asarray(x, dtype=float) for x in (overlap, n_pred, n_true))
    with np.errstate(divide="ignore", invalid="ignore"):
        hp = np.where(n_pred > 0, overlap / n_pred, 0.0)
        hr = np.where(n_true > 0, overlap / n_true, 0.0)
        hf = np.where(hp + hr > 0, 2 * hp * hr / (hp + hr), 0.0)
    return {"hP": hp, "hR": hr, "hF": hf}


def hierarchical_prf(y_true, y_pred, reachability) -> dict[str, float]:
    """Micro-averaged hierarchical precision ``hP``, recall ``hR`` and ``hF`` (module docstring)."""
    c = hierarchical_counts(y_true, y_pred, reachability)
    out = hprf_from_sums(c["overlap"].sum(), c["n_pred"].sum(), c["n_true"].sum())
    return {k: float(v) for k, v in out.items()}


def error_distance(y_true, y_pred, reachability, distances: np.ndarray | None = None) -> dict[str, float]:
    """Mean Hasse distance of the wrong predictions (module docstring).

    Returns ``mean_error_distance`` (over wrong predictions with a path; NaN if none), ``n_errors``,
    ``n_errors_unconnected`` (wrong predictions in another component, or outside the label set).
    """
    r = np.asarray(reachability).astype(bool)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    d = hasse_distances(r) if distances is None else distances
    known = p >= 0
    wrong = ~known.copy()
    wrong[known] = ~r[t[known], p[known]]
    dist = np.full(t.shape, np.inf)
    dist[known] = d[t[known], p[known]]
    finite = wrong & np.isfinite(dist)
    return {
        "mean_error_distance": float(dist[finite].mean()) if finite.any() else float("nan"),
        "n_errors": int(wrong.sum()),
        "n_errors_unconnected": int((wrong & ~np.isfinite(dist)).sum()),
    }


def hop_f1(
    y_true, y_pred, reachability, hops: Sequence[int] = HOP_RADII, distances: np.ndarray | None = None
) -> dict[int, float]:
    """Hop-F1 (module docstring) at each radius in ``hops``: ``{k: macro F1}``, NaN for no cells.

    ``distances`` (``hasse_distances(reachability)``) may be passed to score many prediction sets on one label set.
    """
    d = hasse_distances(reachability) if distances is None else distances
    return {int(h): f1_summary(y_true, hop_correct(y_true, y_pred, d, int(h)))["macro_f1"] for h in hops}


def accuracy_by_depth(y_true, y_pred, reachability) -> pd.DataFrame:
    """Hierarchy-corrected accuracy per depth of the true label: columns ``depth, accuracy, n_cells``."""
    r = np.asarray(reachability).astype(bool)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    depth = r.sum(axis=0).astype(np.int64) - 1
    known = p >= 0
    ok = np.zeros(t.shape, dtype=bool)
    ok[known] = r[t[known], p[known]]
    d = depth[t]
    n = np.bincount(d, minlength=depth.max() + 1)
    hits = np.bincount(d, weights=ok.astype(float), minlength=depth.max() + 1)
    present = np.flatnonzero(n)
    return pd.DataFrame({"depth": present, "accuracy": hits[present] / n[present], "n_cells": n[present]})


def cluster_bootstrap(
    group_sums: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``statistic`` when whole groups are resampled with replacement.

    ``group_sums`` has one row per group (e.g. dataset) of additive sufficient statistics (e.g. summed overlap,
    n_pred, n_true); ``statistic`` maps summed rows, shape ``(n_boot, m)``, to one value per row. Fewer than two
    groups, or ``n_boot < 1``, give ``(nan, nan)``: there is nothing to resample.
    """
    g = np.asarray(group_sums, dtype=float)
    if g.ndim != 2 or g.shape[0] < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, g.shape[0], size=(n_boot, g.shape[0]))
    weights = np.zeros((n_boot, g.shape[0]))
    np.add.at(weights, (np.repeat(np.arange(n_boot), g.shape[0]), picks.ravel()), 1.0)
    values = np.asarray(statistic(weights @ g), dtype=float)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)
