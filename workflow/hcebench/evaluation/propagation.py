"""Propagation decoding: predict the deepest label whose subtree holds at least ``τ`` of the probability.

A softmax over the label set spreads a cell's probability over labels that overlap: "T cell" and its subtypes
are all ways of being a T cell. Summing each label's subtree, ``q = probs @ R.T`` (``q[n, i]`` = probability that
cell ``n`` is an ``i``, its label or any subtype), makes the predictions consistent with the ontology, and
the decoding answers with the finest label that is still likely (SOCAM, "A supervised ontology-aware cell
annotation method", ICML 2026 workshop, applies such a propagation to trained models without retraining):

- candidates are the labels with ``q ≥ τ``; the prediction is the deepest (most strict ancestors in the label
  set), ties broken by the larger ``q``, then the lower index;
- when no label reaches ``τ`` the prediction falls back to the root-most labels (depth 0) and takes the one with
  the largest ``q``. With a single root holding all the mass this happens only when ``τ`` exceeds the root's
  ``q`` (1 up to float32 rounding), so the fallback is the limit the decoding tends to anyway: the coarsest answer.

Reading ``τ``. As ``τ`` grows the candidate set only shrinks, so answers only get coarser (never deeper). Let
``a`` be the argmax label with probability ``m = max probs``. For ``1 − m < τ ≤ m`` the decoding *is* the argmax:
every label outside ``a``'s ancestors holds at most ``1 − m < τ``, and ``a`` is the deepest of its own ancestors.
So a confident argmax (``m > 1/2``) is kept by every ``τ`` in ``(1 − m, m]``, leaf or not. ``τ > m`` (``τ`` at or
above the top probability, "1.0-ish") does *not* give the argmax: no single label suffices, the answer backs off
to a label collecting several labels' mass, and at ``τ = 1`` it is the coarsest label (the root). ``τ ≤ 1 − m``
lets another branch's deeper label win with little mass. On a label set with no subtype pairs every ``τ`` gives
the argmax. Comparisons allow ``ROUNDING`` so that ``τ = 1`` accepts a root whose float32 mass sums to
``0.99999994``.

``τ`` is chosen on the validation split by ``choose_threshold``; ``decode_table`` applies it to a predictions
contract table. Both need the ``probs`` column (``evaluation.save_probabilities: true``). Cells are processed in
chunks of ``CHUNK_CELLS``, so memory stays at a few ``chunk × K`` arrays (no ``K × K × N`` tensor) for 10^6 cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hcebench.evaluation.contract import CHUNK_CELLS as CONTRACT_CHUNK_CELLS
from hcebench.evaluation.metrics import f1_summary

#: Default ``τ`` grid: fine steps over the useful range, and 0.99 and 1.0, where the answers are the coarsest.
DEFAULT_GRID = (
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    0.99,
    1.0,
)
#: Cells decoded at once: 65,536 × 164 labels is ~43 MB per float32 array (the contract's streaming chunk).
CHUNK_CELLS = CONTRACT_CHUNK_CELLS
#: Tolerance on ``q ≥ τ``: float32 probabilities summed over a subtree miss 1 by a few ulp.
ROUNDING = 1e-6
#: Columns of ``choose_threshold``'s table.
THRESHOLD_COLUMNS = [
    "tau",
    "macro_f1",
    "macro_f1_flat",
    "mean_depth",
    "fallback_fraction",
    "n_cells",
    "selected",
]


def propagate(probs, reachability) -> np.ndarray:
    """``probs @ R.T``: per cell, the probability of each label or any of its subtypes."""
    p = np.asarray(probs)
    dtype = np.float32 if p.dtype == np.float32 else np.float64
    return p.astype(dtype, copy=False) @ np.asarray(reachability, dtype=dtype).T


def decode_propagated(q: np.ndarray, depth: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Label index per cell from propagated probabilities ``q`` (cells × labels) at threshold ``tau``.

    ``depth`` is ``LabelHierarchy.depth()``. Returns the predictions and a mask of the cells that fell back
    (no label reached ``tau``; module docstring). For several ``τ`` over the same ``q``, build ``LevelMaxima`` once.
    """
    return LevelMaxima(q, depth).decode(tau)


class LevelMaxima:
    """Per cell and depth level, the largest ``q`` and its label (the lowest index among equals): the decoding at
    any ``τ`` from these (cells × levels) arrays, without another pass over the (cells × labels) ``q``.

    The decoding's answer is the best label of the deepest level whose best label reaches ``τ``: every label of
    that level that reaches ``τ`` is a candidate, and the level's best is one of them whenever any is, so the
    tie-breaks (larger ``q``, then lower index) pick it. With no level reached, the answer is the best label of
    the shallowest level, the fallback.
    """

    def __init__(self, q: np.ndarray, depth: np.ndarray):
        q = np.asarray(q)
        depth = np.asarray(depth).astype(np.int64)
        levels = np.unique(depth)
        rows = np.arange(q.shape[0])
        self.best = np.empty((q.shape[0], len(levels)), dtype=np.int64)
        self.best_q = np.empty((q.shape[0], len(levels)), dtype=q.dtype)
        for j, level in enumerate(levels):
            labels = np.flatnonzero(depth == level)
            at_level = q[:, labels]
            top = at_level.argmax(axis=1)
            self.best[:, j] = labels[top]
            self.best_q[:, j] = at_level[rows, top]

    def decode(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """``decode_propagated`` at ``tau``: the predictions and the mask of cells that fell back."""
        reached = self.best_q >= tau - ROUNDING
        n_levels = reached.shape[1]
        fell_back = ~reached.any(axis=1)
        deepest = np.where(fell_back, 0, n_levels - 1 - reached[:, ::-1].argmax(axis=1))
        return self.best[np.arange(len(deepest)), deepest], fell_back


class ThresholdSearch:
    """``choose_threshold`` fed chunk by chunk: ``add`` each chunk of the validation split's cells (their
    ``true_label`` and float32 probabilities) in order, then ``result``. What stays per cell is the truth (int64,
    8 bytes) and one decoded label per ``τ`` of the grid (int16 at up to 32,767 labels: 42 bytes for the default
    21 ``τ``); the chunk's probabilities are dropped after decoding, so no split-sized matrix is ever held."""

    def __init__(self, hierarchy, n_cells: int, grid: Sequence[float] | None = None):
        self.grid = DEFAULT_GRID if grid is None else tuple(float(t) for t in grid)
        if not self.grid:
            raise ValueError(
                "choose_threshold: the τ grid is empty; pass thresholds in (0, 1] or None for the default"
            )
        bad = [t for t in self.grid if not 0 < t <= 1]
        if bad:
            raise ValueError(f"choose_threshold: τ must lie in (0, 1], got {bad}")
        if n_cells == 0:
            raise ValueError(
                "choose_threshold: the validation predictions table has no cells; τ cannot be chosen"
            )
        self.hierarchy, self.n_cells = hierarchy, n_cells
        self.r = np.asarray(hierarchy.reachability).astype(bool)
        self.depth = self.r.sum(axis=0).astype(np.int64) - 1
        # One row of predictions per τ, in the narrowest integer type: 21 τ × 3.5 million cells is 147 MB as int16.
        index_type = np.int16 if hierarchy.k <= np.iinfo(np.int16).max else np.int32
        self.preds = np.empty((len(self.grid), n_cells), dtype=index_type)
        self.y_true = np.empty(n_cells, dtype=np.int64)
        self.n_fell_back = np.zeros(len(self.grid), dtype=np.int64)
        self.filled = 0

    def add(self, true_labels: pd.Series, probs: np.ndarray) -> None:
        """The next chunk's truth (term ids) and probabilities (cells × labels, in label order)."""
        start, stop = self.filled, self.filled + len(probs)
        if len(true_labels) != len(probs) or stop > self.n_cells:
            raise ValueError(
                f"choose_threshold: a chunk of {len(true_labels)} labels and {len(probs)} probability rows "
                f"at cell {start} of {self.n_cells}"
            )
        self.y_true[start:stop] = _label_indices(pd.Series(true_labels), self.hierarchy, "true_label")
        maxima = LevelMaxima(propagate(probs, self.r), self.depth)
        for i, tau in enumerate(self.grid):
            chunk_pred, fell_back = maxima.decode(tau)
            self.preds[i, start:stop] = chunk_pred
            self.n_fell_back[i] += int(fell_back.sum())
        self.filled = stop

    def result(self) -> tuple[float, pd.DataFrame]:
        """``τ`` and the per-``τ`` table, as ``choose_threshold`` returns them."""
        if self.filled != self.n_cells:
            raise ValueError(f"choose_threshold: {self.filled} of {self.n_cells} validation cells were added")
        y_true, preds, r, depth = self.y_true, self.preds, self.r, self.depth
        rows = [
            {
                "tau": tau,
                "macro_f1": f1_summary(y_true, preds[i], r)["macro_f1"],
                "macro_f1_flat": f1_summary(y_true, preds[i])["macro_f1"],
                "mean_depth": float(depth[preds[i]].mean()),
                "fallback_fraction": self.n_fell_back[i] / self.n_cells,
                "n_cells": self.n_cells,
            }
            for i, tau in enumerate(self.grid)
        ]
        table = pd.DataFrame(rows)
        best = table["macro_f1"].max()
        chosen = table.loc[table["macro_f1"] == best, "tau"].max()
        table["selected"] = table["tau"] == chosen
        return float(chosen), table[THRESHOLD_COLUMNS]


def choose_threshold(
    val_table: pd.DataFrame, hierarchy, grid: Sequence[float] | None = None
) -> tuple[float, pd.DataFrame]:
    """``τ`` of ``grid`` (default ``DEFAULT_GRID``) that maximises the validation hierarchy-corrected macro F1.

    ``val_table`` is the validation split's predictions contract table, with ``probs``. Returns ``τ`` and one row
    per grid value (``THRESHOLD_COLUMNS``): ``macro_f1`` (hierarchy-corrected, the selection criterion),
    ``macro_f1_flat``, ``mean_depth`` of the decoded labels, ``fallback_fraction``, ``n_cells`` and ``selected``.
    Ties go to the largest ``τ``: the coarsest decoding with the best score. ``ThresholdSearch`` is the same
    search fed chunk by chunk (a split streamed from the model).

    Why this criterion: it is the score the suite reports and the training loop selects epochs on (a prediction
    of the truth or of a subtype counts as correct), so a decoded model is compared with its argmax on the very
    number that was optimised. It does not reward backing off for its own sake (an ancestor of the truth counts as
    wrong), so it picks the ``τ`` that moves predictions into the right branch without giving up depth. A score
    that credits coarser answers (hierarchical F1, SOCAM's hop-F1) would pick larger ``τ`` and coarser answers,
    and the headline metric would then judge a decoding tuned for something else; hop-F1 is reported beside it.
    """
    search = ThresholdSearch(hierarchy, len(val_table), grid)
    _label_indices(val_table["true_label"], hierarchy, "true_label")
    for start, probs in _probability_chunks(val_table, hierarchy):
        search.add(val_table["true_label"].iloc[start : start + len(probs)], probs)
    return search.result()


def decode_table(table: pd.DataFrame, hierarchy, tau: float) -> pd.DataFrame:
    """A copy of the contract ``table`` with ``pred_label``, ``pred_label_name`` and ``pred_prob`` decoded at ``tau``.

    ``pred_prob`` becomes the decoded label's propagated probability ``q`` (clipped to [0, 1]); ``probs`` stays
    the model's, so the argmax can always be recomputed from the file. ``decode_chunk`` decodes a chunk of a
    streamed split given its probabilities.
    """
    if not 0 < tau <= 1:
        raise ValueError(f"decode_table: τ must lie in (0, 1], got {tau}")
    out = table.copy()
    pred = np.zeros(len(table), dtype=np.int64)
    prob = np.zeros(len(table), dtype=np.float32)
    for start, probs in _probability_chunks(table, hierarchy):
        stop = start + len(probs)
        pred[start:stop], prob[start:stop] = _decode(probs, hierarchy, tau)
    return _with_decoded(out, pred, prob, hierarchy)


def decode_chunk(table: pd.DataFrame, probs: np.ndarray, hierarchy, tau: float) -> pd.DataFrame:
    """``decode_table`` of one chunk of a contract table whose probabilities (cells × labels, float32) are given
    apart (the table may have no ``probs`` column: ``evaluation.save_probabilities: false``)."""
    if not 0 < tau <= 1:
        raise ValueError(f"decode_table: τ must lie in (0, 1], got {tau}")
    pred, prob = (
        _decode(np.asarray(probs, dtype=np.float32), hierarchy, tau)
        if len(table)
        else (
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )
    )
    return _with_decoded(table.copy(), pred, prob, hierarchy)


def _decode(probs: np.ndarray, hierarchy, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Decoded label index and its clipped propagated probability, per cell of a probability chunk."""
    r = np.asarray(hierarchy.reachability).astype(bool)
    depth = r.sum(axis=0).astype(np.int64) - 1
    q = propagate(probs, r)
    pred, _ = decode_propagated(q, depth, tau)
    return pred, np.clip(q[np.arange(len(q)), pred], 0.0, 1.0).astype(np.float32)


def _with_decoded(out: pd.DataFrame, pred: np.ndarray, prob: np.ndarray, hierarchy) -> pd.DataFrame:
    terms = np.asarray(hierarchy.term_ids, dtype=object)
    names = np.asarray(hierarchy.names, dtype=object)
    out["pred_label"] = terms[pred]
    out["pred_label_name"] = names[pred]
    out["pred_prob"] = prob
    return out


def _probability_chunks(table: pd.DataFrame, hierarchy):
    """``(first row, probs)`` per chunk of ``CHUNK_CELLS`` cells, probs a float32 (cells × labels) array."""
    if "probs" not in table.columns:
        raise ValueError(
            "propagation decoding needs the per-cell probability vectors, but the predictions table has no "
            "'probs' column; set evaluation.save_probabilities: true in the config and predict again"
        )
    column = table["probs"].to_numpy()
    for start in range(0, len(column), CHUNK_CELLS):
        probs = np.stack(column[start : start + CHUNK_CELLS]).astype(np.float32, copy=False)
        if probs.ndim != 2 or probs.shape[1] != hierarchy.k:
            raise ValueError(
                f"'probs' vectors have {probs.shape[1:]} entries but the label set has {hierarchy.k} labels "
                f"(CL {hierarchy.release}): the predictions were written for another hierarchy/labels.tsv"
            )
        yield start, probs


def _label_indices(terms: pd.Series, hierarchy, column: str) -> np.ndarray:
    index = pd.Index(hierarchy.term_ids).get_indexer(terms.astype(str))
    if (index < 0).any():
        bad = sorted(set(terms.astype(str)[index < 0]))
        raise ValueError(
            f"{column} holds labels outside the label set (CL {hierarchy.release}, {hierarchy.k} labels): "
            f"{bad[:10]}{' ...' if len(bad) > 10 else ''}"
        )
    return index.astype(np.int64)
