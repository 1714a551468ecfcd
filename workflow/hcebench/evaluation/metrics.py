"""Hierarchy-corrected and exact-match F1 scores, overall, per stratum and per cell type.

The paper scores a prediction as correct when it is the true label or a subtype of it: predicting
"CD8 T cell" for a cell annotated "T cell" is right (the annotation was just coarser), predicting
"T cell" for a cell annotated "CD8 T cell" is wrong (it is less specific than the truth). In terms
of the reachability matrix ``R`` of ``hcebench.hierarchy.ontology.LabelHierarchy`` (``R[i, j] = 1`` iff
``j == i`` or ``j`` is a subtype of ``i``) a prediction ``j`` for truth ``i`` is correct iff
``R[i, j] == 1``. ``hierarchy_correct`` rewrites every correct prediction to its true label, after
which ordinary F1 scores apply.

F1 follows ``sklearn.metrics.f1_score(y_true, y_pred, labels=<labels present in y_true>,
average=..., zero_division=0)`` exactly (the tests check it against sklearn), but is computed from
per-group ``bincount`` confusion counts, so scoring millions of cells over hundreds of strata takes
seconds. Consequences of the label list that are easy to miss: predictions of a label absent from
``y_true`` count against the true label's recall but are nobody's false positive, so they lower
micro F1 only through recall; and a stratum's scores use the labels present in that stratum.

The paper's own tables average differently: hce-classification's ``model_evaluation_sctab.py`` calls sklearn's
``classification_report`` without ``labels=``, so its macro F1 is over the *union* of true and predicted labels
(a label only predicted scores 0), and torchmetrics' ``MulticlassF1Score(average="macro")``, the paper's selection
metric, drops only classes with tp + fp + fn = 0: the same union. ``macro_f1_union`` computes it (a row
``macro_f1_union`` of ``metrics_table``); ``macro_f1_over`` averages over a given label list, as the paper's
80-type subset does (``report.aggregate`` adds ``macro_f1_ood_subset`` for the test split).

``hop_correct`` is the other correction rule, SOCAM's hop-F1 ("A supervised ontology-aware cell annotation
method", ICML 2026 workshop): a prediction within ``k`` undirected edges of the truth in the label set's Hasse
diagram counts as correct, whichever direction (an ancestor one edge up counts at ``k = 1``, which the paper's rule
never credits). ``k = 0`` is exact match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hcebench.hierarchy.hasse import hasse_distances

STRATA = ("dataset_id", "tissue", "tissue_general", "assay", "disease")
SUMMARY_METRICS = ("macro_f1", "micro_f1", "weighted_f1")
#: Hop radii of the hop-F1 rows of ``metrics_table`` (``hop_f1_k0`` ... ``hop_f1_k3``); SOCAM reports k = 0 to 3.
HOP_RADII = (0, 1, 2, 3)
#: Stratum value written for cells whose stratum column is missing (NaN/None).
MISSING_STRATUM = "NA"


def hierarchy_correct(y_true, y_pred, reachability) -> np.ndarray:
    """``y_pred`` with every prediction of the true label or a subtype of it replaced by the true label.

    A prediction ``j`` for truth ``i`` becomes ``i`` iff ``reachability[i, j] == 1``; predictions of an
    ancestor or an unrelated label are left as they are (and stay wrong). Labels are integer indices
    into ``reachability``; a negative prediction means "no label in the set" and is never correct.
    """
    r = np.asarray(reachability).astype(bool, copy=False)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"reachability must be square, got shape {r.shape}")
    return _replace_where_correct(y_true, y_pred, r)


def hop_correct(y_true, y_pred, distances, hops: int) -> np.ndarray:
    """``y_pred`` with every prediction at most ``hops`` Hasse-diagram edges from the true label replaced by it.

    ``distances`` is ``hcebench.hierarchy.hasse.hasse_distances(R)`` (undirected shortest paths, ``inf`` between
    components). Direction does not matter: the parent of the truth is one hop away, as is a child. A negative
    prediction (outside the label set) is never corrected. ``hops = 0`` leaves ``y_pred`` unchanged.
    """
    d = np.asarray(distances, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square label × label matrix, got shape {d.shape}")
    if hops < 0:
        raise ValueError(f"hops must be a non-negative number of Hasse-diagram edges, got {hops}")
    return _replace_where_correct(y_true, y_pred, d <= hops)


def _replace_where_correct(y_true, y_pred, counts_as_correct: np.ndarray) -> np.ndarray:
    """``y_pred`` with each prediction ``j`` of truth ``i`` replaced by ``i`` where ``counts_as_correct[i, j]``;
    negative predictions (no label in the set) are never correct."""
    y_true, y_pred = _as_labels(y_true, y_pred)
    k = counts_as_correct.shape[0]
    if y_true.size and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(
            f"true labels must be indices in [0, {k}), got range [{y_true.min()}, {y_true.max()}]"
        )
    if y_pred.size and y_pred.max() >= k:
        raise ValueError(f"predicted labels must be < {k}, got {y_pred.max()}")
    known = y_pred >= 0
    ok = np.zeros(y_true.shape, dtype=bool)
    ok[known] = counts_as_correct[y_true[known], y_pred[known]]
    return np.where(ok, y_true, y_pred)


def f1_summary(y_true, y_pred, reachability=None) -> dict[str, float]:
    """Macro, micro and weighted F1 over the labels present in ``y_true`` (hierarchy-corrected if
    ``reachability`` is given). Keys ``macro_f1``, ``micro_f1``, ``weighted_f1``; NaN for no cells."""
    y_true, y_pred = _prepare(y_true, y_pred, reachability)
    s = _grouped_scores(np.zeros(y_true.size, dtype=np.int64), 1, y_true, y_pred)
    return {m: float(s[m][0]) for m in SUMMARY_METRICS}


def macro_f1_union(y_true, y_pred, reachability=None) -> float:
    """Macro F1 over the union of the labels in ``y_true`` and in ``y_pred`` (hierarchy-corrected if
    ``reachability`` is given): sklearn's ``f1_score(average="macro")`` without ``labels=``, and torchmetrics'
    macro ``MulticlassF1Score`` (classes with tp + fp + fn = 0 dropped). A label only predicted scores 0; a
    negative prediction (outside the label set) is no label. NaN for no cells."""
    y_true, y_pred = _prepare(y_true, y_pred, reachability)
    if not y_true.size:
        return float("nan")
    s = _grouped_scores(np.zeros(y_true.size, dtype=np.int64), 1, y_true, y_pred)
    union = np.union1d(y_true, y_pred[y_pred >= 0]).size
    return float(s["f1"][0].sum() / union)


def macro_f1_over(y_true, y_pred, labels, reachability=None) -> float:
    """Macro F1 over exactly ``labels`` (indices), each label's F1 computed over all cells: sklearn's
    ``f1_score(labels=labels, average="macro", zero_division=0)``, so a listed label absent from ``y_true`` scores 0
    (the paper's 80-type subset of the test split, hce-classification's ``SUBSET_INDICES``)."""
    y_true, y_pred = _prepare(y_true, y_pred, reachability)
    labels = np.asarray(labels, dtype=np.int64)
    if not labels.size:
        return float("nan")
    k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1), labels.max())) + 1
    s = _grouped_scores(np.zeros(y_true.size, dtype=np.int64), 1, y_true, y_pred, k)
    return float(s["f1"][0][labels].mean())


def per_class_f1(y_true, y_pred, reachability=None) -> pd.DataFrame:
    """One row per label present in ``y_true`` (ascending): ``label, f1, precision, recall, support``.

    Hierarchy-corrected if ``reachability`` is given. Precision is 0 for a label never predicted.
    """
    y_true, y_pred = _prepare(y_true, y_pred, reachability)
    s = _grouped_scores(np.zeros(y_true.size, dtype=np.int64), 1, y_true, y_pred)
    present = s["support"][0] > 0
    return pd.DataFrame(
        {
            "label": np.flatnonzero(present),
            "f1": s["f1"][0][present],
            "precision": s["precision"][0][present],
            "recall": s["recall"][0][present],
            "support": s["support"][0][present].astype(np.int64),
        }
    )


def metrics_table(pred: pd.DataFrame, hierarchy, strata: Sequence[str] = STRATA) -> pd.DataFrame:
    """Score a predictions table into a long table ``stratum_type, stratum, metric, value``.

    ``pred`` holds ``true_label`` and ``pred_label`` as term ids of ``hierarchy.term_ids``, plus any
    of the ``strata`` columns (absent ones are skipped). Rows produced:

    - ``stratum_type="all"``, ``stratum="all"``, and for each present stratum column ``c`` and each
      of its values ``v``: ``stratum_type=c``, ``stratum=str(v)`` (``"NA"`` for missing values), with
      metrics ``macro_f1, micro_f1, weighted_f1`` (hierarchy-corrected, the paper's numbers),
      ``macro_f1_flat, micro_f1_flat, weighted_f1_flat`` (exact match), ``n_cells`` and
      ``accuracy`` (hierarchy-corrected);
    - ``stratum_type="all"`` only: ``macro_f1_union`` (hierarchy-corrected, over the union of true and predicted
      labels: the paper's tables' average, ``macro_f1_union``) and ``hop_f1_k0`` … ``hop_f1_k3``, macro F1 when a prediction within ``k`` edges
      of the truth in the label set's Hasse diagram counts as correct (``hop_correct``; ``k = 0`` equals
      ``macro_f1_flat``), non-decreasing in ``k``;
    - ``stratum_type="cell_type"``, ``stratum=<term id>`` for each label present in ``true_label``,
      with metrics ``f1, precision, recall, support`` (hierarchy-corrected) and ``f1_flat``.

    A ``true_label`` outside the hierarchy is a ``ValueError``; a ``pred_label`` outside it (or
    missing) is scored as a wrong prediction that is nobody's false positive.
    """
    for col in ("true_label", "pred_label"):
        if col not in pred.columns:
            raise ValueError(f"predictions table lacks the column {col!r}; it has {list(pred.columns)}")
    index = {t: i for i, t in enumerate(hierarchy.term_ids)}
    true_codes, true_uniques = pd.factorize(pred["true_label"], use_na_sentinel=False)
    true_map = np.array(
        [index.get(t, -1) if isinstance(t, str) else -1 for t in true_uniques], dtype=np.int64
    )
    if (true_map < 0).any():
        bad = [str(t) for t, m in zip(true_uniques, true_map, strict=True) if m < 0]
        raise ValueError(
            f"true labels not in the label set (CL {hierarchy.release}, {hierarchy.k} labels): {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}; predictions must be filtered to the training labels"
        )
    pred_codes, pred_uniques = pd.factorize(pred["pred_label"], use_na_sentinel=False)
    pred_map = np.array(
        [index.get(t, -1) if isinstance(t, str) else -1 for t in pred_uniques], dtype=np.int64
    )
    y_true = true_map[true_codes] if len(pred) else np.zeros(0, dtype=np.int64)
    y_flat = pred_map[pred_codes] if len(pred) else np.zeros(0, dtype=np.int64)
    y_corr = hierarchy_correct(y_true, y_flat, hierarchy.reachability)
    k = hierarchy.k

    frames = [_stratum_rows("all", ["all"], np.zeros(len(pred), dtype=np.int64), y_true, y_corr, y_flat, k)]
    distances = hasse_distances(hierarchy.reachability)
    hop_scores = {
        f"hop_f1_k{h}": f1_summary(y_true, hop_correct(y_true, y_flat, distances, h))["macro_f1"]
        for h in HOP_RADII
    }
    # The paper's own average (hce-classification): over the union of true and predicted labels.
    hop_scores["macro_f1_union"] = macro_f1_union(y_true, y_corr)
    frames.append(
        pd.DataFrame(
            {
                "stratum_type": "all",
                "stratum": "all",
                "metric": list(hop_scores),
                "value": list(hop_scores.values()),
            }
        )
    )
    for col in strata:
        if col not in pred.columns:
            continue
        values = pred[col].astype(object).where(pred[col].notna(), MISSING_STRATUM).astype(str)
        codes, uniques = pd.factorize(values, sort=True)
        frames.append(_stratum_rows(col, list(uniques), codes.astype(np.int64), y_true, y_corr, y_flat, k))

    zero = np.zeros(len(pred), dtype=np.int64)
    corr = _grouped_scores(zero, 1, y_true, y_corr, k)
    flat = _grouped_scores(zero, 1, y_true, y_flat, k)
    present = np.flatnonzero(corr["support"][0] > 0)
    terms = np.asarray(hierarchy.term_ids, dtype=object)[present]
    per_type = {
        "f1": corr["f1"][0][present],
        "precision": corr["precision"][0][present],
        "recall": corr["recall"][0][present],
        "support": corr["support"][0][present],
        "f1_flat": flat["f1"][0][present],
    }
    frames.append(
        pd.DataFrame(
            {
                "stratum_type": "cell_type",
                "stratum": np.tile(terms, len(per_type)),
                "metric": np.repeat(list(per_type), len(present)),
                "value": np.concatenate(list(per_type.values())).astype(float),
            }
        )
    )
    return pd.concat(frames, ignore_index=True)


# -- internals -----------------------------------------------------------------------------------
def _stratum_rows(stratum_type, names, groups, y_true, y_corr, y_flat, k) -> pd.DataFrame:
    g = len(names)
    corr = _grouped_scores(groups, g, y_true, y_corr, k)
    flat = _grouped_scores(groups, g, y_true, y_flat, k)
    metrics = {m: corr[m] for m in SUMMARY_METRICS}
    metrics.update({f"{m}_flat": flat[m] for m in SUMMARY_METRICS})
    metrics["n_cells"] = corr["n"]
    metrics["accuracy"] = corr["accuracy"]
    return pd.DataFrame(
        {
            "stratum_type": stratum_type,
            "stratum": np.tile(np.asarray(names, dtype=object), len(metrics)),
            "metric": np.repeat(list(metrics), g),
            "value": np.concatenate([np.asarray(v, dtype=float) for v in metrics.values()]),
        }
    )


def _as_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-d of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name} must hold integer label indices, got dtype {y.dtype}")
    return y_true.astype(np.int64, copy=False), y_pred.astype(np.int64, copy=False)


def _prepare(y_true, y_pred, reachability) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _as_labels(y_true, y_pred)
    if y_true.size and y_true.min() < 0:
        raise ValueError("true labels must be non-negative label indices")
    if reachability is not None:
        y_pred = hierarchy_correct(y_true, y_pred, reachability)
    return y_true, y_pred


def _grouped_scores(groups: np.ndarray, n_groups: int, y_true, y_pred, k: int | None = None) -> dict:
    """Per-group, per-label confusion counts and the F1 scores sklearn computes from them.

    Returns arrays: ``f1, precision, recall, support`` of shape ``(n_groups, k)`` (0 where a label is
    absent from a group's ``y_true``) and ``macro_f1, micro_f1, weighted_f1, accuracy, n`` of shape
    ``(n_groups,)`` (NaN for an empty group). Negative predictions are wrong and no label's positive.
    """
    if k is None:
        k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    size = n_groups * k
    hit = y_true == y_pred
    support = np.bincount(groups * k + y_true, minlength=size).reshape(n_groups, k).astype(float)
    tp = np.bincount(groups[hit] * k + y_true[hit], minlength=size).reshape(n_groups, k).astype(float)
    known = y_pred >= 0
    predicted = (
        np.bincount(groups[known] * k + y_pred[known], minlength=size).reshape(n_groups, k).astype(float)
    )
    present = support > 0
    predicted = np.where(present, predicted, 0.0)  # only labels present in y_true are scored

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(present, tp / support, 0.0)
        denom = predicted + support  # = 2 tp + fp + fn, > 0 wherever the label is present
        f1 = np.where(present, 2 * tp / denom, 0.0)
        n_labels = present.sum(axis=1)
        n = support.sum(axis=1)
        macro = f1.sum(axis=1) / n_labels
        micro = 2 * tp.sum(axis=1) / (predicted.sum(axis=1) + n)
        weighted = (f1 * support).sum(axis=1) / n
        accuracy = np.bincount(groups, weights=hit.astype(float), minlength=n_groups) / n
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "support": support,
        "macro_f1": macro,
        "micro_f1": micro,
        "weighted_f1": weighted,
        "accuracy": accuracy,
        "n": n,
    }
