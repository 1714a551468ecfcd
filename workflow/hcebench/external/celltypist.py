"""CellTypist as an external reference method: trained on the training store, scored through the contract.

CellTypist (Domínguez Conde et al., 2022) is a one-vs-rest logistic regression on log1p expression
normalised to 10,000 counts per cell — exactly what the store holds, so its training split is handed over
unchanged (genes by Ensembl id, labels as CL term ids). For millions of cells CellTypist recommends
stochastic gradient descent on mini-batches and a subsample of the cells; both are settings here
(``celltypist:`` in the config). It has no hierarchy-aware loss, so it joins the tables as architecture
``celltypist`` with loss ``ce`` only.

Probabilities: CellTypist scores each type by its own logistic model (``expit`` of a decision score),
so the scores do not sum to 1. The contract's ``probs`` holds them normalised over the label set, and
``pred_prob`` the normalised score of the predicted (highest-scoring) type. Labels without training
cells get probability 0.

Imports only numpy, pandas, anndata and celltypist (no torch), so the rule runs in its own small
environment (envs/celltypist.yaml).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from hcebench.data.store import SplitData, Store
from hcebench.evaluation.contract import OBS_COLUMNS, contract_table
from hcebench.settings import CellTypistSettings

log = logging.getLogger(__name__)


def subsample(y: np.ndarray, max_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of at most ``max_cells`` cells, drawn per label in proportion to its count.

    Every label keeps at least one cell, so no training type disappears from the model.
    """
    if len(y) <= max_cells:
        return np.arange(len(y))
    fraction = max_cells / len(y)
    keep = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n = max(1, int(round(len(rows) * fraction)))
        keep.append(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))


def _anndata(data: SplitData, rows: np.ndarray, genes: list[str]):
    """Rows ``rows`` (ascending) of a store split as an AnnData, read from the memory map: only these rows'
    values are copied (never ``SplitData.x``, whose int64 index copy on a split of more than 2³¹ stored values
    would be the whole split's size)."""
    import anndata

    x = data.sparse_rows(rows).to_scipy()
    obs = pd.DataFrame(index=pd.Index(rows).astype(str))
    return anndata.AnnData(X=x.astype(np.float32, copy=False), obs=obs, var=pd.DataFrame(index=genes))


def train_celltypist(store: str | os.PathLike, settings: CellTypistSettings, seed: int):
    """Fit CellTypist on the store's training split with ``seed`` (its subsample and mini-batches); returns the
    ``celltypist.models.Model``.

    Memory: the subsample (``settings.max_cells`` cells; scTab trained CellTypist on 1.5 M) as a CSR matrix and
    its labels; of the whole split only the label index of each cell (8 bytes per cell)."""
    import celltypist

    store = Store(store)
    genes = store.gene_ids
    train = store.split("train", store.labels)
    rng = np.random.default_rng(seed)
    rows = subsample(train.y, settings.max_cells, rng)
    adata = _anndata(train, rows, genes)
    labels = np.asarray(store.labels, dtype=object)[
        train.y[rows]
    ]  # Python strings, as obs["label"] gives them
    log.info(
        "CellTypist: %d of %d training cells, %d genes, %d labels",
        len(rows),
        len(train),
        len(genes),
        len(np.unique(labels)),
    )
    # CellTypist shuffles its mini-batches with numpy's global generator; seed it for a reproducible fit.
    np.random.seed(seed)
    return celltypist.train(
        adata,
        labels=labels,
        use_SGD=settings.use_SGD,
        mini_batch=settings.mini_batch,
        batch_size=settings.batch_size,
        batch_number=settings.batch_number,
        epochs=settings.epochs,
        alpha=settings.alpha,
        feature_selection=settings.feature_selection,
        n_jobs=1,
    )


def predict_celltypist(
    model,
    split_dir: str | os.PathLike,
    labels: list[str],
    label_names: dict[str, str],
    *,
    chunk_size: int = 100_000,
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """Annotate every cell of a store split with ``model``; the contract table over ``labels`` (K columns), whole.
    For splits of millions of cells write ``predict_celltypist_chunks`` chunk by chunk instead."""
    tables = list(
        predict_celltypist_chunks(
            model,
            split_dir,
            labels,
            label_names,
            chunk_size=chunk_size,
            save_probabilities=save_probabilities,
        )
    )
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def predict_celltypist_chunks(
    model,
    split_dir: str | os.PathLike,
    labels: list[str],
    label_names: dict[str, str],
    *,
    chunk_size: int = 100_000,
    save_probabilities: bool = True,
) -> Iterator[pd.DataFrame]:
    """``predict_celltypist``'s table one chunk of ``chunk_size`` consecutive cells at a time: memory is the
    chunk's rows, CellTypist's dense matrices for them and their K probabilities (float64), whatever the split's
    size. An empty split gives one empty table."""
    import celltypist

    split_dir = Path(split_dir)
    store = Store.holding(split_dir)
    genes = store.gene_ids
    data = store.split(split_dir.name, labels)
    column = {t: i for i, t in enumerate(labels)}
    start = 0
    for obs in data.obs_chunks(chunk_size, OBS_COLUMNS):
        rows = np.arange(start, start + len(obs))
        start += len(obs)
        probs = np.zeros((len(rows), len(labels)), dtype=np.float64)
        if len(rows):
            result = celltypist.annotate(_anndata(data, rows, genes), model=model, mode="best match")
            scores = result.decision_matrix
            # CellTypist's probability is expit(score); normalise in log space, where a cell far from every type
            # (all expit underflowing to 0) still gets a proper distribution.
            log_p = -np.logaddexp(0.0, -scores.to_numpy(np.float64))
            log_p -= np.logaddexp.reduce(log_p, axis=1, keepdims=True)
            probs[:, [column[str(t)] for t in scores.columns]] = np.exp(log_p)
        yield contract_table(obs, labels, probs, label_names, save_probabilities)
