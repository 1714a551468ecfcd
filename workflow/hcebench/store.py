"""The on-disk expression store: normalised CSR per split, obs as parquet, read back as minibatches.

Layout of a store directory (training store or OOD set)::

    meta.json           genes, labels, cell counts, provenance
    var.parquet         feature_id, feature_name — the column order of every X
    class_weights.npy   training store only: balanced weights in label order
    <split>/obs.parquet one row per cell, row i of X
    <split>/X.data.f32  CSR values: log1p(counts / row_sum · target_sum), float32
    <split>/X.indices.i32, <split>/X.indptr.i64

Values are stored already normalised and sparse, so a minibatch costs a row gather and a densify, no
arithmetic; raw little-endian arrays are memory-mapped, so a split larger than RAM still reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

X_FILES = {"data": ("X.data.f32", np.float32), "indices": ("X.indices.i32", np.int32), "indptr": ("X.indptr.i64", np.int64)}


def normalise(counts: sp.csr_matrix, target_sum: float) -> sp.csr_matrix:
    """Scale each row to ``target_sum`` counts, then log1p; float32. A row sum of 0 is treated as 1."""
    counts = counts.astype(np.float32, copy=True).tocsr()
    row_sum = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    row_sum[row_sum == 0] = 1.0
    scale = (target_sum / row_sum).astype(np.float32)
    counts.data *= np.repeat(scale, np.diff(counts.indptr))
    np.log1p(counts.data, out=counts.data)
    counts.sort_indices()
    return counts


class SplitWriter:
    """Append normalised CSR chunks and their obs to ``directory``; ``close`` writes indptr and obs."""

    def __init__(self, directory: str | os.PathLike, n_genes: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_genes = n_genes
        self._files = {k: open(self.dir / name, "wb") for k, (name, _) in X_FILES.items() if k != "indptr"}
        self._indptr = [np.zeros(1, dtype=np.int64)]
        self._nnz = 0
        self._obs: list[pd.DataFrame] = []

    def append(self, x: sp.csr_matrix, obs: pd.DataFrame) -> None:
        if x.shape != (len(obs), self.n_genes):
            raise ValueError(f"chunk shape {x.shape} does not match {len(obs)} obs rows × {self.n_genes} genes")
        x.data.astype(np.float32, copy=False).tofile(self._files["data"])
        x.indices.astype(np.int32, copy=False).tofile(self._files["indices"])
        self._indptr.append(x.indptr[1:].astype(np.int64) + self._nnz)
        self._nnz += x.nnz
        self._obs.append(obs.reset_index(drop=True))

    def close(self) -> int:
        for f in self._files.values():
            f.close()
        np.concatenate(self._indptr).tofile(self.dir / X_FILES["indptr"][0])
        obs = pd.concat(self._obs, ignore_index=True) if self._obs else pd.DataFrame()
        obs.to_parquet(self.dir / "obs.parquet", index=False)
        return len(obs)


def write_split_from_census(
    census,
    obs: pd.DataFrame,
    var_joinids: np.ndarray,
    columns: np.ndarray,
    n_genes: int,
    directory: str | os.PathLike,
    *,
    target_sum: float,
    chunk_size: int,
    organism: str,
) -> int:
    """Stream ``obs``'s cells from SOMA into a split directory, ``chunk_size`` cells at a time.

    ``var_joinids[c]`` is read into store column ``columns[c]``; store columns that no var maps to stay zero
    (genes the release lacks). Normalisation uses the row sum over the store's genes, so training and OOD
    cells are scaled the same way whatever else their release measured.
    """
    from .census import iter_counts

    writer = SplitWriter(directory, n_genes)
    obs = obs.sort_values("soma_joinid").reset_index(drop=True)
    joinids = obs["soma_joinid"].to_numpy(np.int64)
    start = 0
    for ids, counts in iter_counts(census, joinids, var_joinids, chunk_size, organism=organism):
        chunk_obs = obs.iloc[start : start + len(ids)]
        if not np.array_equal(chunk_obs["soma_joinid"].to_numpy(), ids):
            raise RuntimeError("census reader returned cells out of the requested order")
        start += len(ids)
        counts = counts.tocoo()
        aligned = sp.csr_matrix(
            (counts.data, (counts.row, columns[counts.col])), shape=(len(ids), n_genes), dtype=np.float32
        )
        writer.append(normalise(aligned, target_sum), chunk_obs)
    if start != len(obs):
        raise RuntimeError(f"census reader returned {start} of {len(obs)} cells")
    return writer.close()


@dataclass
class SplitData:
    """A split read back: ``x`` (CSR, memory-mapped values), ``obs`` and integer labels."""

    x: sp.csr_matrix
    obs: pd.DataFrame
    y: np.ndarray  # label index per cell, -1 where the label is outside the label set

    @classmethod
    def open(cls, directory: str | os.PathLike, n_genes: int, labels: list[str] | None = None) -> SplitData:
        directory = Path(directory)
        arrays = {}
        for key, (name, dtype) in X_FILES.items():
            path = directory / name
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: the store is incomplete; delete {directory.parent} to rebuild")
            arrays[key] = np.fromfile(path, dtype=dtype) if path.stat().st_size else np.zeros(0, dtype)
        obs = pd.read_parquet(directory / "obs.parquet")
        x = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(len(obs), n_genes))
        y = np.full(len(obs), -1, dtype=np.int64)
        if labels is not None and "label" in obs:
            index = {t: i for i, t in enumerate(labels)}
            y = obs["label"].map(index).fillna(-1).to_numpy(np.int64)
        return cls(x=x, obs=obs, y=y)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batches(self, batch_size: int, *, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (dense float32 batch, label indices); shuffled when ``rng`` is given, in order otherwise."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            rows = np.sort(order[start : start + batch_size])  # sorted rows read CSR sequentially
            yield self.x[rows].toarray(), self.y[rows]


def resolve_genes(source: str, var: pd.DataFrame) -> pd.DataFrame:
    """The store's genes in order, as (feature_id, feature_name), from ``genes.source`` and the release's var.

    ``all`` takes every gene of the release ordered by feature_id; ``bundled:sctab_protein_coding`` or a
    parquet path takes that list's order, keeping the genes the release measures (scTab: 19,331 of 19,357).
    """
    if source == "all":
        genes = var[["feature_id", "feature_name"]].sort_values("feature_id")
        return genes.reset_index(drop=True)
    if source == "bundled:sctab_protein_coding":
        from importlib import resources

        path = Path(str(resources.files("hcebench") / "data" / "sctab_features_protein_coding.parquet"))
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"genes.source {source!r} does not exist; give a parquet indexed by Ensembl id")
    wanted = pd.read_parquet(path)
    ids = pd.Index(wanted.index.astype(str))
    present = ids[ids.isin(var["feature_id"])]
    if len(present) == 0:
        raise ValueError(f"none of the {len(ids)} genes of genes.source {source!r} is in the census var (feature_id)")
    names = var.set_index("feature_id")["feature_name"]
    return pd.DataFrame({"feature_id": present, "feature_name": names.loc[present].to_numpy()})


def build_training_store(
    source: dict,
    cells: pd.DataFrame,
    labels: list[str],
    config: dict,
    directory: str | os.PathLike,
) -> dict:
    """Write the training store (train/val/test splits of the selected cells) into ``directory`` atomically."""
    from .census import census_release, open_census, read_var
    from .io import atomic_path, write_json
    from .selection import SPLITS, balanced_class_weights

    census_cfg = config["census"]
    with open_census(source) as census, atomic_path(directory, is_dir=True) as tmp:
        var = read_var(census, organism=census_cfg["organism"])
        genes = resolve_genes(config["genes"]["source"], var)
        joinid_of = var.set_index("feature_id")["soma_joinid"]
        var_joinids = joinid_of.loc[genes["feature_id"]].to_numpy(np.int64)
        columns = np.arange(len(genes))
        genes.to_parquet(tmp / "var.parquet", index=False)
        counts = {}
        label_index = {t: i for i, t in enumerate(labels)}
        keep = [c for c in cells.columns if c != "is_primary_data"]
        for split in SPLITS:
            obs = cells.loc[cells["split"] == split, keep].copy()
            obs["label_index"] = obs["label"].map(label_index).astype(np.int64)
            counts[split] = write_split_from_census(
                census, obs, var_joinids, columns, len(genes), tmp / split,
                target_sum=config["normalisation"]["target_sum"],
                chunk_size=census_cfg["chunk_size"],
                organism=census_cfg["organism"],
            )
        train_y = cells.loc[cells["split"] == "train", "label"].map(label_index).to_numpy(np.int64)
        weights = balanced_class_weights(train_y, len(labels))
        np.save(tmp / "class_weights.npy", weights)
        meta = {
            "census_release": census_release(source, census),
            "n_genes": int(len(genes)),
            "labels": list(labels),
            "n_cells": counts,
            "labels_without_training_cells": [labels[i] for i in np.flatnonzero(weights == 0)],
            "target_sum": config["normalisation"]["target_sum"],
            "genes_source": config["genes"]["source"],
        }
        write_json(tmp / "meta.json", meta)
    return meta
