"""Analyses of the per-cell predictions of every run: the hierarchical metric panel, calibration, back-off
curves and the scoring of novel OOD cell types at their nearest trained ancestor.

Each predictions file is read once and reduced to small per-dataset sums before the next is read, so memory
stays at one file's worth whatever the number of runs; of a file only the columns used are read
(``ANALYSED_COLUMNS``, ~50 bytes per cell), and its probability vectors one chunk at a time. Calibration and
back-off need them (``probs``, written when ``evaluation.save_probabilities`` is true); files without them are
listed in ``missing_probs`` and those analyses skip them. Per cell they keep a few numbers until the file is done
(``CalibrationByLevel``: ~17 bytes per ontology level; ``BackoffCurve``: 2 bytes per ``τ``).

Statistics pooled over seeds use every seed's cells; their confidence intervals resample datasets (the unit of
the OOD question: a new study) with ``hierarchical.cluster_bootstrap``. Hop-F1 (``hop_f1_k0`` … ``hop_f1_k3``, as in
the metrics table) is a macro F1, not a ratio of two sums, so each dataset keeps its per-label counts at every
radius (cells of the label, cells predicted as it after hop correction, and the hits); the macro average is taken
after summing, which makes the pooled value and every bootstrap replicate an exact macro F1 over their cells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hcebench.evaluation.backoff import DEFAULT_TAUS, BackoffCurve
from hcebench.evaluation.calibration import CalibrationByLevel
from hcebench.evaluation.contract import CHUNK_CELLS
from hcebench.evaluation.hierarchical_metrics import cluster_bootstrap, hierarchical_counts, hprf_from_sums
from hcebench.evaluation.metrics import HOP_RADII, hop_correct
from hcebench.hierarchy.hasse import hasse_distances
from hcebench.layout import ID_COLUMNS, NOVEL_SPLIT

log = logging.getLogger(__name__)


@dataclass
class PredictionAnalyses:
    hierarchical: pd.DataFrame
    calibration: pd.DataFrame
    backoff: pd.DataFrame
    novel: pd.DataFrame
    missing_probs: list[str] = field(default_factory=list)


def label_indices(values: pd.Series, term_ids) -> np.ndarray:
    """Label-set index of each term id; ``-1`` for anything outside the label set."""
    index = {t: i for i, t in enumerate(term_ids)}
    return values.map(index).fillna(-1).to_numpy(np.int64)


def hop_label_counts(
    dataset: np.ndarray, n_datasets: int, t: np.ndarray, p: np.ndarray, distances: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Per dataset (rows, codes ``dataset``) and label (``_l<i>`` suffix), the counts hop-F1 is computed from:
    ``true_l<i>`` cells of label ``i``, and per radius ``h`` in ``HOP_RADII`` ``hop<h>_pred_l<i>`` (cells predicted
    as ``i`` once predictions within ``h`` edges of the truth count as the truth) and ``hop<h>_hit_l<i>``."""

    def per_label(labels: np.ndarray, rows: np.ndarray, weights=None) -> np.ndarray:
        flat = np.bincount(rows * k + labels, weights=weights, minlength=n_datasets * k)
        return flat.reshape(n_datasets, k).astype(float)

    counts = {"true": per_label(t, dataset)}
    for h in HOP_RADII:
        corrected = hop_correct(t, p, distances, h)
        known = corrected >= 0
        counts[f"hop{h}_pred"] = per_label(corrected[known], dataset[known])
        counts[f"hop{h}_hit"] = per_label(t, dataset, (corrected == t).astype(float))
    return {f"{name}_l{i}": block[:, i] for name, block in counts.items() for i in range(k)}


def hop_f1_from_sums(true: np.ndarray, pred: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Macro F1 per row from per-label counts (rows × labels): F1 of a label = 2·hits / (true + predicted), averaged
    over the labels present (``true > 0``), as ``metrics.f1_summary`` does; NaN for a row with no cells."""
    true, pred, hit = (np.atleast_2d(np.asarray(x, dtype=float)) for x in (true, pred, hit))
    present = true > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2.0 * hit / (true + pred), 0.0)
        return np.where(present.any(axis=1), f1.sum(axis=1) / present.sum(axis=1), np.nan)


def dataset_sums(table: pd.DataFrame, hierarchy, distances: np.ndarray) -> pd.DataFrame:
    """Per dataset, the additive sums the hierarchical panel is computed from.

    Columns: ``overlap, n_pred, n_true`` (``hierarchical.hierarchical_counts``), ``dist_sum, dist_n`` (Hasse
    distances of connected wrong predictions), ``hits_d<d>, n_d<d>`` per true-label depth ``d``, and the per-label
    hop-F1 counts of ``hop_label_counts``.
    """
    r = hierarchy.reachability.astype(bool)
    t = label_indices(table["true_label"], hierarchy.term_ids)
    if (t < 0).any():
        raise ValueError(
            "true labels outside the label set; predictions must be filtered to the training labels"
        )
    p = label_indices(table["pred_label"], hierarchy.term_ids)
    c = hierarchical_counts(t, p, r)
    known = p >= 0
    ok = np.zeros(len(t), dtype=bool)
    ok[known] = r[t[known], p[known]]
    dist = np.full(len(t), np.inf)
    dist[known] = distances[t[known], p[known]]
    connected_error = ~ok & np.isfinite(dist)
    depth = hierarchy.depth()[t]
    frame = {
        "dataset_id": table["dataset_id"].astype(str).to_numpy(),
        "overlap": c["overlap"],
        "n_pred": c["n_pred"],
        "n_true": c["n_true"],
        "dist_sum": np.where(connected_error, dist, 0.0),
        "dist_n": connected_error.astype(float),
    }
    for d in range(int(hierarchy.depth().max()) + 1):
        frame[f"hits_d{d}"] = (ok & (depth == d)).astype(float)
        frame[f"n_d{d}"] = (depth == d).astype(float)
    sums = pd.DataFrame(frame).groupby("dataset_id").sum()
    codes = sums.index.get_indexer(frame["dataset_id"])
    hops = hop_label_counts(codes, len(sums), t, p, distances, hierarchy.k)
    return pd.concat([sums, pd.DataFrame(hops, index=sums.index)], axis=1)


def panel_statistics(sums: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """hP, hR, hF, mean error distance, accuracy per depth and hop-F1 per radius from per-dataset ``sums``, with
    dataset-bootstrap 95 % CIs; one dict per metric (``metric, value, ci_low, ci_high, n_datasets``)."""
    cols = list(sums.columns)
    g = sums.to_numpy(dtype=float)
    col = {c: i for i, c in enumerate(cols)}

    def ratio(num, den):
        def f(x):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(x[:, col[den]] > 0, x[:, col[num]] / x[:, col[den]], np.nan)

        return f

    def hprf(key):
        return lambda x: hprf_from_sums(x[:, col["overlap"]], x[:, col["n_pred"]], x[:, col["n_true"]])[key]

    stats = {k: hprf(k) for k in ("hP", "hR", "hF")}
    stats["mean_error_distance"] = ratio("dist_sum", "dist_n")
    for c in cols:
        if c.startswith("hits_d") and sums[f"n_d{c[6:]}"].sum() > 0:
            stats[f"accuracy_depth{c[6:]}"] = ratio(c, f"n_d{c[6:]}")

    def hop_f1(h):
        def label_columns(name):
            return [col[c] for c in cols if c.startswith(f"{name}_l")]

        true, pred, hit = label_columns("true"), label_columns(f"hop{h}_pred"), label_columns(f"hop{h}_hit")
        return lambda x: hop_f1_from_sums(x[:, true], x[:, pred], x[:, hit])

    for h in HOP_RADII:
        if f"hop{h}_hit_l0" in col:
            stats[f"hop_f1_k{h}"] = hop_f1(h)
    total = g.sum(axis=0, keepdims=True)
    rows = []
    for name, fn in stats.items():
        lo, hi = cluster_bootstrap(g, fn, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "metric": name,
                "value": float(fn(total)[0]),
                "ci_low": lo,
                "ci_high": hi,
                "n_datasets": int(g.shape[0]),
            }
        )
    return rows


#: The columns of a predictions file the analyses read whole; ``probs`` is read in chunks (``probability_chunks``).
ANALYSED_COLUMNS = ["cell_id", "dataset_id", "true_label", "pred_label"]


def read_analysed_columns(path) -> tuple[pd.DataFrame, bool]:
    """The ``ANALYSED_COLUMNS`` of a predictions file (no other column is read: ~50 bytes per cell, label strings
    shared), and whether it has the ``probs`` column."""
    names = pq.read_schema(path).names
    table = pq.read_table(path, columns=[c for c in ANALYSED_COLUMNS if c in names]).to_pandas()
    return table, "probs" in names


def probability_chunks(path, chunk_cells: int | None = None):
    """``(first row, probs)`` per chunk of a predictions file's ``probs`` column, as ``stack_probs`` stacks them
    (float32, cells × labels): one chunk (``CHUNK_CELLS`` cells, ~43 MB at 164 labels) in memory at a time."""
    first = 0
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=chunk_cells or CHUNK_CELLS, columns=["probs"]):
        probs = stack_probs(batch.to_pandas())
        if len(probs):
            yield first, probs
        first += len(probs)


def stack_probs(table: pd.DataFrame) -> np.ndarray | None:
    """The ``probs`` column as a (cells × labels) float32 array, or ``None`` when the file has none."""
    if "probs" not in table.columns:
        return None
    if len(table) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(table["probs"].to_numpy()).astype(np.float32, copy=False)


def novel_scores(table: pd.DataFrame, novel_obs: pd.DataFrame, hierarchy) -> pd.DataFrame:
    """Novel-type cells scored at their nearest trained ancestor (``true_label`` of the ``ood_novel`` split).

    Per novel label and overall (``novel_label == "all"``): ``n_cells``, ``accuracy_at_ancestor`` (prediction is
    the ancestor or a subtype of it), ``exact_ancestor`` (prediction is the ancestor itself).
    """
    r = hierarchy.reachability.astype(bool)
    joined = table.merge(
        novel_obs[["soma_joinid", "novel_label", "novel_label_name"]],
        left_on="cell_id",
        right_on="soma_joinid",
        how="left",
    )
    t = label_indices(joined["true_label"], hierarchy.term_ids)
    p = label_indices(joined["pred_label"], hierarchy.term_ids)
    known = p >= 0
    ok = np.zeros(len(t), dtype=bool)
    ok[known] = r[t[known], p[known]]
    joined = joined.assign(ok=ok, exact=(p == t))
    rows = [
        {
            "novel_label": "all",
            "novel_label_name": "all novel types",
            "nearest_trained_ancestor": "",
            "n_cells": len(joined),
            "accuracy_at_ancestor": ok.mean() if len(ok) else np.nan,
            "exact_ancestor": joined["exact"].mean() if len(ok) else np.nan,
        }
    ]
    for (label, name, anc), g in joined.groupby(["novel_label", "novel_label_name", "true_label"], sort=True):
        rows.append(
            {
                "novel_label": label,
                "novel_label_name": name,
                "nearest_trained_ancestor": anc,
                "n_cells": len(g),
                "accuracy_at_ancestor": g["ok"].mean(),
                "exact_ancestor": g["exact"].mean(),
            }
        )
    return pd.DataFrame(rows)


def analyse_predictions(
    runs: list[dict],
    hierarchy,
    *,
    novel_obs: pd.DataFrame | None = None,
    taus=DEFAULT_TAUS,
    n_boot: int = 1000,
) -> PredictionAnalyses:
    """All prediction-level analyses over ``runs`` (dicts with ``architecture, loss, seed, split, path``).

    ``split == "ood_novel"`` runs are scored with ``novel_scores`` (needs ``novel_obs``, the split's obs);
    the others feed the hierarchical panel, calibration and back-off tables.
    """
    distances = hasse_distances(hierarchy.reachability)
    per_seed: list[dict] = []
    pooled: dict[tuple, pd.DataFrame] = {}
    calib, curves, novel, missing = [], [], [], []
    for run in runs:
        ident = {k: run[k] for k in ID_COLUMNS}
        table, has_probs = read_analysed_columns(run["path"])
        if run["split"] == NOVEL_SPLIT:
            if novel_obs is not None:
                novel.append(novel_scores(table, novel_obs, hierarchy).assign(**ident))
            continue
        sums = dataset_sums(table, hierarchy, distances)
        key = (run["architecture"], run["loss"], run["split"])
        pooled[key] = sums if key not in pooled else pooled[key].add(sums, fill_value=0.0)
        for row in panel_statistics(sums, n_boot=0):
            per_seed.append({**ident, "metric": row["metric"], "value": row["value"]})
        if not has_probs:
            missing.append(str(run["path"]))
            continue
        if len(table) == 0:
            continue
        y = label_indices(table["true_label"], hierarchy.term_ids)
        levels = CalibrationByLevel(hierarchy.reachability)
        curve = BackoffCurve(hierarchy.reachability, taus)
        for start, probs in probability_chunks(run["path"]):
            levels.add(probs, y[start : start + len(probs)])
            curve.add(probs, y[start : start + len(probs)])
        calib.append(levels.result().assign(**ident))
        curves.append(curve.result().assign(**ident))
    seeds = pd.DataFrame(per_seed, columns=[*ID_COLUMNS, "metric", "value"])
    rows = []
    for (arch, loss, split), sums in sorted(pooled.items()):
        s = seeds[(seeds["architecture"] == arch) & (seeds["loss"] == loss) & (seeds["split"] == split)]
        spread = s.groupby("metric")["value"].agg(["std", "count"])
        for row in panel_statistics(sums, n_boot=n_boot):
            m = row["metric"]
            rows.append(
                {
                    "architecture": arch,
                    "loss": loss,
                    "split": split,
                    **row,
                    "seed_sd": spread.loc[m, "std"] if m in spread.index else np.nan,
                    "n_seeds": int(spread.loc[m, "count"]) if m in spread.index else 0,
                }
            )
    hier = pd.DataFrame(
        rows,
        columns=[
            "architecture",
            "loss",
            "split",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "n_datasets",
            "seed_sd",
            "n_seeds",
        ],
    )
    cat = lambda frames, cols: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)  # noqa: E731
    return PredictionAnalyses(
        hierarchical=hier,
        calibration=cat(calib, [*ID_COLUMNS, "level", "ece", "brier", "n_cells"]),
        backoff=cat(
            curves, [*ID_COLUMNS, "tau", "consistency", "specificity", "exact_or_finer", "abstained"]
        ),
        novel=cat(
            novel,
            [
                *ID_COLUMNS,
                "novel_label",
                "novel_label_name",
                "nearest_trained_ancestor",
                "n_cells",
                "accuracy_at_ancestor",
                "exact_ancestor",
            ],
        ),
        missing_probs=missing,
    )
