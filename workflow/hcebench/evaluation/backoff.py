"""Back-off prediction: answer with the deepest label the model is sure enough of.

With propagated probabilities ``q = probs @ R.T`` (``q[n, i]`` = probability that cell ``n`` is an ``i``: its
label is ``i`` or a subtype), the back-off prediction at threshold ``τ`` is the label of greatest depth (strict
ancestors within the label set) among those with ``q ≥ τ``, ties broken by the larger ``q`` and then the lower
index; when no label reaches ``τ`` the model abstains (``-1``). Because ``q`` never increases from a label to its
subtypes, the candidate set only loses labels as ``τ`` grows, so each cell's back-off depth is non-increasing in
``τ``.

A back-off answer ``b`` for truth ``t`` is *consistent* when ``b`` is ``t``, an ancestor of ``t`` (correct but
coarser) or a subtype of ``t`` (the paper's rule); an abstention claims nothing and counts as consistent.
*Specificity* is ``(depth(b) + 1) / (max depth + 1)``, 0 for an abstention: 1 means the finest level the label
set has. Sweeping ``τ`` traces how much specificity a model trades for correctness.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hcebench.evaluation.propagation import LevelMaxima, decode_propagated, propagate

DEFAULT_TAUS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def backoff_predict(probs, reachability, tau: float) -> np.ndarray:
    """Back-off label index per cell at threshold ``tau`` (module docstring); ``-1`` where none reaches it.

    The decoding is the propagation decoder's (``hcebench.evaluation.propagation.decode_propagated``), which
    falls back to a root where no label reaches ``tau``; the curve counts those cells as abstentions instead.
    """
    r = np.asarray(reachability).astype(bool)
    pred, fell_back = decode_propagated(propagate(probs, r), r.sum(axis=0) - 1, tau)
    return np.where(fell_back, -1, pred)


def backoff_curve(probs, y_true, reachability, taus=DEFAULT_TAUS) -> pd.DataFrame:
    """Per ``τ``: ``consistency``, ``specificity``, ``exact_or_finer`` (back-off is the truth or a subtype) and
    ``abstained`` (fraction of cells with no label at ``τ``), each averaged over cells. ``BackoffCurve`` computes
    the same table from chunks of cells."""
    curve = BackoffCurve(reachability, taus)
    curve.add(probs, y_true)
    return curve.result()


class BackoffCurve:
    """``backoff_curve`` fed chunk by chunk (``add`` each chunk's probabilities and true label indices, in order;
    then ``result``): each cell's back-off answer at every ``τ`` is kept (int16 at up to 32,767 labels: 2 bytes
    per ``τ``, 24 for the default 12) with its truth (8 bytes), and the averages are taken at the end exactly as
    over the whole array; the chunk's probabilities are dropped."""

    def __init__(self, reachability, taus=DEFAULT_TAUS):
        self.r = np.asarray(reachability).astype(bool)
        self.taus = tuple(taus)
        self.depth = self.r.sum(axis=0) - 1
        self.index_type = np.int16 if len(self.r) <= np.iinfo(np.int16).max else np.int32
        self.answers: list[np.ndarray] = []  # per chunk: (taus × cells) back-off label, -1 abstained
        self.truths: list[np.ndarray] = []

    def add(self, probs, y_true) -> None:
        y = np.asarray(y_true, dtype=np.int64)
        maxima = LevelMaxima(propagate(probs, self.r), self.depth)
        answers = np.empty((len(self.taus), len(y)), dtype=self.index_type)
        for i, tau in enumerate(self.taus):
            pred, fell_back = maxima.decode(tau)
            answers[i] = np.where(fell_back, -1, pred)
        self.answers.append(answers)
        self.truths.append(y)

    def result(self) -> pd.DataFrame:
        r, depth = self.r, self.depth
        y = np.concatenate(self.truths) if self.truths else np.zeros(0, np.int64)
        answers = np.concatenate(self.answers, axis=1) if self.answers else np.zeros((len(self.taus), 0), int)
        top = depth.max() + 1 if depth.size else 1
        rows = []
        for i, tau in enumerate(self.taus):
            b = answers[i].astype(np.int64)
            known = b >= 0
            finer = np.zeros(len(y), dtype=bool)
            coarser = np.zeros(len(y), dtype=bool)
            finer[known] = r[y[known], b[known]]
            coarser[known] = r[b[known], y[known]]
            spec = np.where(known, (depth[np.where(known, b, 0)] + 1) / top, 0.0)
            rows.append(
                {
                    "tau": float(tau),
                    "consistency": float(np.mean(finer | coarser | ~known)) if len(y) else np.nan,
                    "specificity": float(spec.mean()) if len(y) else np.nan,
                    "exact_or_finer": float(finer.mean()) if len(y) else np.nan,
                    "abstained": float((~known).mean()) if len(y) else np.nan,
                }
            )
        return pd.DataFrame(rows)
