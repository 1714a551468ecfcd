"""The per-cell predictions contract: the parquet file through which any method joins the benchmark.

One row per cell. Required columns (design.md): the cell, its strata, the true and predicted labels (CL term
ids from ``hierarchy/labels.tsv``) and the probability of the prediction. Optional: donor_id, tissue_general,
label names, and ``probs``, the full probability vector in the order of ``hierarchy/labels.tsv``. Provenance
(architecture, loss, seed, split, releases, reachability hash) travels in the parquet file's metadata.

This module needs only pandas and pyarrow, so scoring a predictions file never imports torch.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hcebench.io import atomic_path

REQUIRED_COLUMNS = [
    "cell_id",
    "dataset_id",
    "tissue",
    "assay",
    "disease",
    "true_label",
    "pred_label",
    "pred_prob",
]
OPTIONAL_COLUMNS = ["donor_id", "tissue_general", "true_label_name", "pred_label_name", "probs"]
CONTRACT_COLUMNS = REQUIRED_COLUMNS + [c for c in OPTIONAL_COLUMNS if c != "probs"]


def contract_table(
    obs: pd.DataFrame,
    labels: list[str],
    probs: np.ndarray,
    label_names: dict[str, str],
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """The contract table of cells ``obs`` (a store split's obs) given each cell's probabilities over ``labels``.

    The prediction is the most probable label; ``pred_prob`` its probability; ``probs`` the whole row.
    """
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)  # a split may hold no cells
    labels = np.asarray(labels)
    table = pd.DataFrame(
        {
            "cell_id": obs["soma_joinid"].to_numpy(np.int64),
            "dataset_id": obs["dataset_id"].astype(str).to_numpy(),
            "donor_id": obs["donor_id"].astype(str).to_numpy(),
            "tissue": obs["tissue"].astype(str).to_numpy(),
            "tissue_general": obs["tissue_general"].astype(str).to_numpy(),
            "assay": obs["assay"].astype(str).to_numpy(),
            "disease": obs["disease"].astype(str).to_numpy(),
            "true_label": obs["label"].astype(str).to_numpy(),
            "true_label_name": obs["label"].map(label_names).astype(str).to_numpy(),
            "pred_label": labels[pred],
            "pred_label_name": pd.Series(labels[pred]).map(label_names).astype(str).to_numpy(),
            "pred_prob": probs[np.arange(len(pred)), pred].astype(np.float32),
        }
    )
    if save_probabilities:
        table["probs"] = list(probs.astype(np.float32))
    return table


def write_predictions(table: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, object]) -> None:
    """Write the table as parquet, atomically, with ``metadata`` under ``hcebench.*`` keys of the file."""
    check_predictions(table, path)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta.update({f"hcebench.{k}".encode(): str(v).encode() for k, v in metadata.items()})
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(meta), tmp)


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a predictions parquet (ours or an external method's) and check it honours the contract."""
    table = pd.read_parquet(path)
    check_predictions(table, path)
    return table


def read_provenance(path: str | os.PathLike) -> dict[str, str]:
    """The ``hcebench.*`` metadata a predictions file was written with."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode()[len("hcebench.") :]: v.decode() for k, v in meta.items() if k.startswith(b"hcebench.")}


def check_predictions(table: pd.DataFrame, source: object = "predictions") -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source} misses contract column(s) {missing}; required: {REQUIRED_COLUMNS} (hcebench.evaluation.contract)"
        )
    if len(table) and not table["pred_prob"].between(0, 1).all():
        raise ValueError(f"{source}: pred_prob must be a probability in [0, 1]")
