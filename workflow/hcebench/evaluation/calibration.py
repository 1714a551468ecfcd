"""Calibration of predicted probabilities: expected calibration error (ECE) and Brier score, per ontology level.

**Leaf level** (the labels themselves): the usual multi-class definitions on exact labels. ECE bins the top
probability (the confidence) into ``n_bins`` equal-width bins ``(b/n, (b+1)/n]`` (a confidence of exactly 0
goes to the first bin) and returns ``Σ_b (n_b / N) |accuracy_b − confidence_b|``, where accuracy is exact
match. Brier is ``mean_n Σ_k (p_nk − 1[k = y_n])²`` (0 is perfect, 2 the worst).

**Ancestor level d**: probabilities are propagated up the hierarchy, ``q = probs @ R.T`` so ``q[n, c]`` is the
model's probability that cell ``n`` is a ``c`` (its label is ``c`` or a subtype). The classes of level ``d`` are
the labels with exactly ``d`` strict ancestors in the label set; a cell takes part if its true label lies at depth
``≥ d`` (a coarser annotation says nothing about level ``d``), and its level-``d`` truth is "``c`` is an ancestor
or self of the true label". ECE uses the top ``q`` among the level's classes as confidence; Brier sums the squared
errors over the level's classes. In a DAG a label can lie below two level-``d`` classes, so the level's ``q``
need not sum to one and its Brier score is a sum of one-vs-rest scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ece(confidence, correct, n_bins: int = 15) -> float:
    """Expected calibration error of top-label ``confidence`` against 0/1 ``correct`` (module docstring)."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError(
            f"confidence and correct must be 1-d of equal length, got {conf.shape} and {ok.shape}"
        )
    if conf.size == 0:
        return float("nan")
    if (conf < 0).any() or (conf > 1 + 1e-6).any():
        raise ValueError("confidences must lie in [0, 1]")
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.bincount(bins, weights=ok - conf, minlength=n_bins)  # Σ (correct − confidence) per bin
    return float(np.abs(gap).sum() / conf.size)


def brier(probs, y_true) -> float:
    """Multi-class Brier score ``mean_n Σ_k (p_nk − 1[k = y_n])²``."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(y_true, dtype=np.int64)
    if p.size == 0:
        return float("nan")
    sq = (p**2).sum(axis=1) - 2 * p[np.arange(len(y)), y] + 1.0
    return float(sq.mean())


def calibration_by_level(probs, y_true, reachability, n_bins: int = 15) -> pd.DataFrame:
    """ECE and Brier at the leaf level and at every ancestor depth (module docstring).

    Columns ``level`` (``"leaf"`` or ``"depth<d>"``), ``ece``, ``brier``, ``n_cells``. ``CalibrationByLevel``
    computes the same table from chunks of cells.
    """
    levels = CalibrationByLevel(reachability, n_bins)
    levels.add(probs, y_true)
    return levels.result()


class CalibrationByLevel:
    """``calibration_by_level`` fed chunk by chunk (``add`` each chunk's probabilities and true label indices, in
    order; then ``result``): the same numbers, since the per-cell terms are kept and reduced at the end exactly as
    over the whole array. What stays per cell, per level it takes part in (the leaf and each depth at or above its
    label's): its confidence (8 bytes), whether it is correct (1) and its Brier term (8), so ~17 bytes × (levels
    + 1); the chunk's probabilities are dropped."""

    def __init__(self, reachability, n_bins: int = 15):
        self.r = np.asarray(reachability).astype(bool)
        self.n_bins = n_bins
        self.depth = self.r.sum(axis=0).astype(np.int64) - 1
        self.n_levels = int(self.depth.max()) + 1 if self.depth.size else 0
        # Per level (None: the leaf), lists of per-chunk arrays: confidence, correct, Brier term.
        self.parts = {level: ([], [], []) for level in [None, *range(self.n_levels)]}

    def add(self, probs, y_true) -> None:
        p = np.asarray(probs, dtype=float)
        y = np.asarray(y_true, dtype=np.int64)
        conf, ok, sq = self.parts[None]
        if len(y):
            conf.append(p.max(axis=1))
            ok.append(p.argmax(axis=1) == y)
            sq.append((p**2).sum(axis=1) - 2 * p[np.arange(len(y)), y] + 1.0)
        q = p @ self.r.T.astype(float)
        for d in range(self.n_levels):
            classes = np.flatnonzero(self.depth == d)
            cells = np.flatnonzero(self.depth[y] >= d)
            if classes.size == 0 or cells.size == 0:
                continue
            qd = np.clip(q[np.ix_(cells, classes)], 0.0, 1.0)
            truth = self.r[np.ix_(classes, y[cells])].T  # truth[n, c]: c is an ancestor-or-self of n's label
            top = qd.argmax(axis=1)
            conf, ok, sq = self.parts[d]
            conf.append(qd[np.arange(len(cells)), top])
            ok.append(truth[np.arange(len(cells)), top])
            sq.append(((qd - truth) ** 2).sum(axis=1))

    def result(self) -> pd.DataFrame:
        conf, ok, sq = (np.concatenate(x) if x else np.zeros(0) for x in self.parts[None])
        rows = [
            {
                "level": "leaf",
                "ece": ece(conf, ok, self.n_bins) if len(conf) else np.nan,
                "brier": float(sq.mean()) if len(sq) else float("nan"),
                "n_cells": int(len(conf)),
            }
        ]
        for d in range(self.n_levels):
            if not self.parts[d][0]:
                continue
            conf, ok, sq = (np.concatenate(x) for x in self.parts[d])
            rows.append(
                {
                    "level": f"depth{d}",
                    "ece": ece(conf, ok, self.n_bins),
                    "brier": float(sq.mean()),
                    "n_cells": int(len(conf)),
                }
            )
        return pd.DataFrame(rows)
