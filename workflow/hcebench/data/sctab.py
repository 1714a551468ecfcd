"""Import scTab's preprocessed store (the paper's exact training data) into an hcebench store.

scTab's store, as its data module reads it::

    train/ val/ test/                 parquet parts; column ``X`` list<float32> (one dense row of
                                      len(var) values per cell) and int64-coded obs columns: id (or idx),
                                      assay_sc, tech_sample, cell_type, cell_type_ontology_term_id,
                                      disease, development_stage, organ
    categorical_lookup/<col>.parquet  code -> label for each coded column (a ``label`` column, row = code)
    var.parquet                       the gene order of ``X`` (Ensembl ids and symbols)
    class_weights.npy                 balanced weights in cell_type code order
    cell_type_hierarchy/child_matrix.npy
                                      child_matrix[i, j] = 1 when type j is a subtype of type i
    augmentations.npy                 (optional) scTab's augmentation bank

scTab's models feed ``X`` to the network unchanged and clamp augmented values to [0, 9], so ``X`` holds
log1p(counts / row sum × 10⁴) already; ``x_values="counts"`` normalises raw counts instead. Labels keep
scTab's code order, so its class weights and child matrix apply unchanged; the child matrix is checked
against the Cell Ontology closure and the disagreements are recorded.

Every batch of ``X`` is checked as it is read (``hcebench.data.checks``): NaN, infinite or negative values, and with
``x_values="counts"`` fractional ones, are an error naming the dataset (from the tech_sample) and the count; all-zero
cells are counted per dataset (the store meta's ``data_checks``), an error past ``max_zero_cell_fraction``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from hcebench.data.checks import CountChecks
from hcebench.data.store import Store, StoreWriter, normalise
from hcebench.errors import ScTabStoreError
from hcebench.hierarchy.ontology import Ontology
from hcebench.io import atomic_path
from hcebench.layout import STORE_SPLITS
from hcebench.settings import ScTabImportSettings

#: The files of scTab's own merlin store this module reads (scTab's format, not hcebench's: ``hcebench.data.store``).
SCTAB_FILES = {
    "genes": "var.parquet",
    "class_weights": "class_weights.npy",
    "child_matrix": "cell_type_hierarchy/child_matrix.npy",
    "bank": "augmentations.npy",
}

#: scTab obs column -> hcebench obs column (strata the scoring reads).
OBS_MAP = {"assay_sc": "assay", "disease": "disease", "organ": "tissue", "tech_sample": "tech_sample"}


def read_lookup(store: Path, column: str) -> np.ndarray:
    """Labels of ``column`` indexed by code, from ``categorical_lookup/<column>.parquet``."""
    path = store / "categorical_lookup" / f"{column}.parquet"
    if not path.exists():
        raise ScTabStoreError(f"{path} is missing: a scTab store has one lookup per coded obs column")
    table = pd.read_parquet(path)
    values = table["label"] if "label" in table.columns else table.iloc[:, 0]
    if pd.api.types.is_integer_dtype(table.index) and not table.index.equals(pd.RangeIndex(len(table))):
        out = np.empty(int(table.index.max()) + 1, dtype=object)
        out[table.index.to_numpy()] = values.astype(str).to_numpy()
        return out
    return values.astype(str).to_numpy(dtype=object)


def read_genes(store: Path) -> pd.DataFrame:
    """The store's genes in ``X`` order as (feature_id, feature_name)."""
    var = pd.read_parquet(store / SCTAB_FILES["genes"])
    if "feature_id" in var.columns:
        ids = var["feature_id"].astype(str)
    elif var.index.astype(str).str.startswith("ENS").all():
        ids = pd.Series(var.index.astype(str))
    else:
        raise ScTabStoreError(
            f"{store / SCTAB_FILES['genes']} has neither a feature_id column nor Ensembl ids as index"
        )
    names = var["feature_name"] if "feature_name" in var.columns else var.get("gene_names", ids)
    return pd.DataFrame(
        {"feature_id": ids.to_numpy(), "feature_name": pd.Series(names).astype(str).to_numpy()}
    )


def dataset_of(tech_sample: str) -> str:
    """Dataset id of a scTab tech_sample ("<dataset_id>_<donor_id>"): the part before the first underscore."""
    return tech_sample.split("_", 1)[0]


def import_sctab_store(
    directory: str | os.PathLike, ontology: Ontology, settings: ScTabImportSettings, *, batch_rows: int = 4096
) -> dict:
    """Convert scTab's store at ``settings.path`` into an hcebench store at ``directory`` (atomically), reading
    ``batch_rows`` rows of a parquet part at a time.

    ``settings.max_zero_cell_fraction`` is ``filters.max_zero_cell_fraction``: the share of all-zero cells past
    which the import fails (module docstring).
    """
    source, x_values, target_sum = settings.path, settings.x_values, settings.target_sum
    max_zero_cell_fraction = settings.max_zero_cell_fraction
    src = Path(source)
    for required in (
        SCTAB_FILES["genes"],
        SCTAB_FILES["class_weights"],
        SCTAB_FILES["child_matrix"],
        "train",
    ):
        if not (src / required).exists():
            raise ScTabStoreError(f"{src / required} is missing: is {src} scTab's merlin store?")
    if x_values not in ("normalised", "counts"):
        raise ScTabStoreError(f"x_values must be 'normalised' or 'counts', not {x_values!r}")
    genes = read_genes(src)
    type_names = read_lookup(src, "cell_type")
    labels = [ontology.id_of(name) for name in type_names]
    weights = np.load(src / SCTAB_FILES["class_weights"]).astype(np.float32)
    child = np.load(src / SCTAB_FILES["child_matrix"])
    if weights.shape != (len(labels),) or child.shape != (len(labels), len(labels)):
        raise ScTabStoreError(
            f"{src}: class_weights {weights.shape} / child_matrix {child.shape} do not match "
            f"the {len(labels)} cell types of categorical_lookup/cell_type.parquet"
        )
    lookups = {col: read_lookup(src, col) for col in OBS_MAP}
    raw = x_values == "counts"
    checks = CountChecks(
        f"scTab store {src}",
        integer=raw,
        fix=(
            "training_store.sctab_x_values: counts expects raw integer counts; set it to normalised if X holds "
            "log1p-normalised values (scTab's released store does)"
            if raw
            else "X must hold log1p-normalised values; check training_store.sctab_path and re-export the store"
        ),
    )
    counts = {}
    with atomic_path(directory, is_dir=True) as tmp:
        store = StoreWriter(tmp)
        store.write_genes(genes)
        for split in STORE_SPLITS:
            parts = sorted((src / split).glob("*.parquet")) if (src / split).is_dir() else []
            if not parts:
                raise ScTabStoreError(f"{src / split} holds no parquet parts")
            writer = store.split_writer(split, len(genes))
            for part in parts:
                checks.what = f"scTab store {part}"
                for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows):
                    x, obs = _convert_batch(batch, len(genes), labels, lookups, part)
                    checks.check(x, obs["dataset_id"].to_numpy())
                    writer.append(normalise(x, target_sum) if raw else x, obs)
            counts[split] = writer.close()
        checks.what = f"scTab store {src}"
        data_checks = checks.zero_cell_report(max_zero_cell_fraction)
        store.write_class_weights(weights)
        store.write_child_matrix(child)  # the paper's R (hierarchy.source: sctab)
        if (src / SCTAB_FILES["bank"]).exists():
            store.write_shipped_bank(np.load(src / SCTAB_FILES["bank"]).astype(np.float32))
        closure = ontology.closure(labels).reachability.astype(bool)
        sctab = child.astype(bool) | np.eye(len(labels), dtype=bool)
        disagree = np.argwhere(closure != sctab)
        meta = {
            "census_release": "2023-05-15",
            "source": f"scTab store {src}",
            "x_values": x_values,
            "n_genes": int(len(genes)),
            "labels": labels,
            "n_cells": counts,
            "labels_without_training_cells": [labels[i] for i in np.flatnonzero(weights == 0)],
            "child_matrix_has_diagonal": bool(np.diagonal(child).all()),
            "child_matrix_vs_ontology_disagreements": [
                {
                    "ancestor": labels[i],
                    "descendant": labels[j],
                    "sctab": bool(sctab[i, j]),
                    "ontology": bool(closure[i, j]),
                }
                for i, j in disagree
            ],
            "cl_release": ontology.release,
            # X checked as read (hcebench.data.checks): all-zero cells per dataset, and the limit.
            "data_checks": data_checks,
        }
        store.write_meta(meta)
    return meta


def _convert_batch(batch: pa.RecordBatch, n_genes: int, labels: list[str], lookups: dict, part: Path):
    column = batch.column("X")
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if values.size != batch.num_rows * n_genes:
        raise ScTabStoreError(
            f"{part}: X rows do not all hold {n_genes} values (the gene count of {SCTAB_FILES['genes']})"
        )
    x = sp.csr_matrix(values.reshape(batch.num_rows, n_genes))
    table = batch.drop_columns(["X"]).to_pandas()
    id_column = "id" if "id" in table.columns else "idx"
    codes = table["cell_type"].to_numpy(np.int64)
    obs = pd.DataFrame({"soma_joinid": table[id_column].to_numpy(np.int64)})
    for sctab_col, ours in OBS_MAP.items():
        obs[ours] = (
            lookups[sctab_col][table[sctab_col].to_numpy(np.int64)] if sctab_col in table else "unknown"
        )
    obs["dataset_id"] = obs["tech_sample"].map(dataset_of)
    obs["donor_id"] = [
        ts[len(ds) + 1 :] for ts, ds in zip(obs["tech_sample"], obs["dataset_id"], strict=True)
    ]
    obs["tissue_general"] = obs["tissue"]
    obs["label"] = np.asarray(labels, dtype=object)[codes]
    obs["label_index"] = codes
    return x, obs


def selection_from_store(directory: str | os.PathLike, meta: dict) -> tuple[pd.DataFrame, dict]:
    """The selection files (cells with their split, and a report) that an imported store stands for."""
    store = Store(directory)
    frames = [store.obs(split).assign(split=split) for split in STORE_SPLITS]
    cells = pd.concat(frames, ignore_index=True)
    report = {
        "source": meta["source"],
        "census_release": meta["census_release"],
        "cl_release": meta["cl_release"],
        "cells_selected": int(len(cells)),
        "n_labels": len(meta["labels"]),
        "n_tech_samples": int(cells["tech_sample"].nunique()),
        "splits": {s: {"cells": int(n)} for s, n in meta["n_cells"].items()},
        "child_matrix_vs_ontology_disagreements": len(meta["child_matrix_vs_ontology_disagreements"]),
    }
    return cells, report
