"""A data set hcebench wrote to disk — the training store or the OOD set — and the only code that knows its files.

Layout of a store directory::

    meta.json           genes, labels, cell counts, releases, data checks (``Store.meta``)
    var.parquet         feature_id, feature_name: the column order of every split's X (``Store.genes``)
    class_weights.npy   training store only: balanced weights in label order (``Store.class_weights``)
    augmentations.npy   a store imported from scTab only: scTab's own augmentation bank (``Store.shipped_bank``)
    child_matrix.npy    a store imported from scTab only: scTab's child matrix in label order (``Store.child_matrix``)
    <split>/            one split (``Store.split``, ``Store.obs``; files in ``hcebench.data.store.split``)

``Store`` reads a finished store; ``StoreWriter`` writes one into a directory (the temporary directory of an
atomic build, ``hcebench.io.atomic_path``). Everything else reaches a store's files through these two, so renaming
a file or adding one happens here alone.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from hcebench.data.store.batches import BufferRing, SparseBatch, prefetched
from hcebench.data.store.split import OBS_FILE, X_FILES, SplitData, SplitWriter, normalise, split_files
from hcebench.io import load_array, read_json, write_json

__all__ = [
    "BufferRing",
    "SparseBatch",
    "SplitData",
    "SplitWriter",
    "Store",
    "StoreWriter",
    "X_FILES",
    "normalise",
    "prefetched",
    "split_files",
]

META_FILE = "meta.json"
GENES_FILE = "var.parquet"
CLASS_WEIGHTS_FILE = "class_weights.npy"
SHIPPED_BANK_FILE = "augmentations.npy"
CHILD_MATRIX_FILE = "child_matrix.npy"


class Store:
    """A finished store (training store or OOD set) at ``directory``: its meta, genes, class weights and splits.

    Opening checks only that ``meta.json`` exists (a store is written atomically, so a directory with it is whole);
    each file is read on first use and kept.
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        if not (self.dir / META_FILE).exists():
            raise FileNotFoundError(
                f"{self.dir} is not a finished hcebench store ({self.dir / META_FILE} is missing): build it with "
                "the workflow (rules build_store / build_ood), or delete the directory to rebuild it"
            )

    @classmethod
    def holding(cls, split_dir: str | os.PathLike) -> Store:
        """The store whose split is the directory ``split_dir``."""
        return cls(Path(split_dir).parent)

    @cached_property
    def meta(self) -> dict:
        return read_json(self.dir / META_FILE)

    @property
    def meta_source(self) -> Path:
        """The file the meta is read from, for messages that name it."""
        return self.dir / META_FILE

    @property
    def n_genes(self) -> int:
        return int(self.meta["n_genes"])

    @property
    def labels(self) -> list[str]:
        """The training label set in output-unit order (the training store's; an OOD set records none)."""
        if "labels" not in self.meta:
            raise KeyError(
                f"{self.dir / META_FILE} records no labels: the OOD set's labels are the training store's"
            )
        return list(self.meta["labels"])

    @property
    def train_release(self) -> str:
        """The census release the training cells come from."""
        return self.meta.get("train_release", self.meta.get("census_release"))

    @property
    def release(self) -> str:
        """The census release this store's own cells come from: the OOD release for the OOD set."""
        return self.meta.get("ood_release", self.meta.get("census_release"))

    @property
    def ood_release(self) -> str:
        """The OOD release of an OOD set; empty for the training store."""
        return self.meta.get("ood_release", "")

    @cached_property
    def genes(self) -> pd.DataFrame:
        """(feature_id, feature_name) in the column order of every split's X."""
        return pd.read_parquet(self.dir / GENES_FILE)

    @property
    def genes_source(self) -> Path:
        """The file the genes are read from, for messages that name it."""
        return self.dir / GENES_FILE

    @property
    def gene_ids(self) -> list[str]:
        return self.genes["feature_id"].astype(str).tolist()

    @property
    def class_weights(self) -> np.ndarray:
        """Balanced class weights in label order (training store only)."""
        return load_array(self.dir / CLASS_WEIGHTS_FILE)

    @property
    def shipped_bank(self) -> np.ndarray | None:
        """The augmentation bank a store imported from scTab carries; None for a store hcebench built."""
        path = self.dir / SHIPPED_BANK_FILE
        return load_array(path) if path.exists() else None

    @property
    def child_matrix(self) -> np.ndarray | None:
        """scTab's child matrix (label × label, 1 where the column's type is a subtype of the row's) a store imported
        from scTab carries; None for a store hcebench built."""
        path = self.dir / CHILD_MATRIX_FILE
        return load_array(path) if path.exists() else None

    @property
    def child_matrix_file(self) -> Path:
        """Where an imported store keeps scTab's child matrix, for messages that name it."""
        return self.dir / CHILD_MATRIX_FILE

    def has_split(self, split: str) -> bool:
        return (self.dir / split).is_dir()

    def split_dir(self, split: str) -> Path:
        return self.dir / split

    def split(self, split: str, labels: list[str] | None = None) -> SplitData:
        """Split ``split`` read back (memory-mapped X, obs, label indices checked against ``labels`` if given)."""
        return SplitData.open(self.dir / split, self.n_genes, labels)

    def obs(self, split: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Split ``split``'s obs, only ``columns`` when given (the rest is never read)."""
        return pd.read_parquet(self.dir / split / OBS_FILE, columns=columns)

    def obs_source(self, split: str) -> Path:
        """The file a split's obs is read from, for messages that name it."""
        return self.dir / split / OBS_FILE


class StoreWriter:
    """Writes a store's files into ``directory``: genes, class weights, meta and splits, in any order."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_genes(self, genes: pd.DataFrame) -> None:
        """(feature_id, feature_name), the column order of every split's X."""
        genes.to_parquet(self.dir / GENES_FILE, index=False)

    def write_class_weights(self, weights: np.ndarray) -> None:
        np.save(self.dir / CLASS_WEIGHTS_FILE, weights)

    def write_shipped_bank(self, bank: np.ndarray) -> None:
        np.save(self.dir / SHIPPED_BANK_FILE, bank)

    def write_child_matrix(self, child: np.ndarray) -> None:
        np.save(self.dir / CHILD_MATRIX_FILE, np.asarray(child))

    def write_meta(self, meta: dict) -> None:
        write_json(self.dir / META_FILE, meta)

    def split_dir(self, split: str) -> Path:
        """The directory split ``split`` is written into (by ``split_writer`` or the census builders)."""
        return self.dir / split

    def split_writer(self, split: str, n_genes: int) -> SplitWriter:
        return SplitWriter(self.split_dir(split), n_genes)
