"""Scoring runs: one predictions file to its long metrics table, and all runs to the summary.

Every metrics row carries what identifies it (architecture, loss, seed, split) and what it depends on
(census releases, CL release, reachability hash), so tables from different runs never mix silently. A file is
scored only through the contract's gate (``contract.scored_table``): its predictions are joined to the split's own
cells, and the truth and strata come from the split's obs in the store or OOD set, never from the file. Nothing on
this path imports torch, so scoring runs in any environment that can read parquet.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from hcebench.data.store import Store
from hcebench.evaluation.contract import (
    NOVEL_COLUMNS,
    SUITE_COLUMNS,
    open_scored_columns,
    probs_problems,
    scored_table,
)
from hcebench.evaluation.metrics import metrics_table
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path
from hcebench.layout import ID_COLUMNS, split_home

#: The split obs columns scoring reads: the cell ids, the truth and strata, and the novel types of ``ood_novel``.
SCORED_OBS_COLUMNS = ["soma_joinid", *dict.fromkeys(SUITE_COLUMNS.values()), *NOVEL_COLUMNS]


def read_split_obs(data_dir: str | os.PathLike | Store, split: str) -> pd.DataFrame:
    """The obs of ``split`` in ``data_dir`` (the store or the OOD set, whose ``<split>/`` holds it): the cells a
    predictions file of that split must cover, with their truth (``label``) and strata; only those columns
    (``SCORED_OBS_COLUMNS``) are read."""
    store = data_dir if isinstance(data_dir, Store) else Store(data_dir)
    if not store.has_split(split):
        raise FileNotFoundError(
            f"{store.dir} holds no split {split!r} ({store.split_dir(split)} is missing): split {split!r} lives in "
            f"the run's {split_home(split)}/ directory (hcebench.layout.split_home); pass that as data_dir"
        )
    present = set(pq.read_schema(store.obs_source(split)).names)
    return store.obs(split, columns=[c for c in SCORED_OBS_COLUMNS if c in present])


def score_predictions(
    predictions: str | os.PathLike,
    hierarchy_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    architecture: str,
    loss: str,
    seed: int,
    split: str,
    output: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Long metrics of one predictions file of ``split``, with identity and provenance columns; written if
    ``output``. ``data_dir`` is the store or the OOD set whose ``<split>/`` holds the split's cells; a file that
    breaks the contract against them is a ``hcebench.errors.PredictionsError`` and nothing is written.

    Memory: the file is read without its ``probs`` (checked chunk by chunk) and the obs by column, so what is held
    is per-cell labels and strata (``contract.scored_table``, ``metrics.metrics_table``), never the probability
    vectors: ~0.85 KB per cell at the peak, measured (peak RSS 0.44 GB at 250,000 cells, 1.06 GB at 1,000,000, 60
    datasets, 400 donors; 3.2 GB for the paper's 3.45 M test cells)."""
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    store = Store(data_dir)
    columns = open_scored_columns(predictions)
    labels_source = Path(hierarchy_dir) / "labels.tsv"
    table = scored_table(
        columns,
        read_split_obs(store, split),
        hierarchy.term_ids,
        label_names=dict(zip(hierarchy.term_ids, hierarchy.names, strict=True)),
        source=f"predictions file {predictions} (split {split!r})",
        split_source=store.obs_source(split),
        labels_source=labels_source,
        file_problems=probs_problems(predictions, hierarchy.k, labels_source),
    )
    table = metrics_table(table, hierarchy)
    ident = {"architecture": architecture, "loss": loss, "seed": seed, "split": split}
    provenance = {
        "train_release": store.train_release,
        "ood_release": store.ood_release,
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    table = table.assign(**ident, **provenance)
    table = table[ID_COLUMNS + ["stratum_type", "stratum", "metric", "value", *provenance]]
    if output is not None:
        with atomic_path(output) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    return table
