"""A user's ``.h5ad`` read in chunks of cells: its raw counts (``X``, ``raw.X`` or a layer), checked, and its genes.

``QueryCounts`` opens the file with h5py and reads the counts matrix through anndata's backed sparse datasets (the
reader ``anndata.read_h5ad(path, backed="r")`` uses for ``X``), ``chunk_size`` rows at a time, so memory holds one
chunk whatever the file's size. It does not call ``read_h5ad`` itself: in backed mode that still loads every layer
(and the whole obs) into memory. Only the chosen matrix's var and each chunk's cell ids are read.

Counts are checked as read (``check_counts``): NaN, infinite or negative values are an error; so are non-integer
values, which is what a log-normalised matrix (``log1p`` of per-cell-scaled counts, what many shared files hold in
``X``) looks like: the message says so and names the file's other matrices, one of which may hold the counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.data.checks import any_bad_value, bad_values
from hcebench.errors import DataError

#: Where the counts may be, spelled as the AnnData source's ``counts.matrix``: ``X``, ``raw.X`` (whose genes are
#: ``raw.var``) or ``layers/<name>``.
COUNTS_HELP = "X, raw.X or layers/<name>"
#: A matrix whose non-integer values all lie below this is taken for log-normalised: log1p of 10^6 counts is 13.8,
#: more than any per-cell-scaled count (10^4 per cell by default) reaches.
LOG_NORMALISED_MAX = float(np.log1p(1e6))


class QueryCounts:
    """The counts of a user's ``.h5ad`` (``counts``: ``X``, ``raw.X`` or ``layers/<name>``), read in row chunks.

    ``var`` is the matrix's gene table (``raw.var`` for ``raw``), ``n_cells`` its rows. Use as a context manager;
    every problem with the file (missing, not HDF5, not an AnnData file, no such matrix, no cells or genes, stored
    by column) is a ``DataError`` naming the file and the fix, raised when it is opened.
    """

    def __init__(self, path: str | os.PathLike, counts: str = "X"):
        self.path, self.counts = Path(path), counts
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist (or is not a file): give the path of an .h5ad file")
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.path} is empty (0 bytes): write the AnnData again with adata.write_h5ad")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise DataError(
                f"{self.path} is not an .h5ad file (HDF5 cannot open it: {str(err).splitlines()[0]}); "
                "annotate reads AnnData files written by anndata's write_h5ad (convert a .loom, .mtx or .zarr "
                "with scanpy/anndata first)"
            ) from None
        try:
            self.group_path, var_path = self._locate(counts)
            self.matrix = self._open_matrix(self.group_path)
            self.var = self._read_var(var_path)
            self.n_cells, n_genes = self.matrix.shape
            if len(self.var) != n_genes:
                raise DataError(
                    f"{self.path}: {self.group_path} has {n_genes:,} columns but {var_path} lists "
                    f"{len(self.var):,} genes; the file is damaged: write it again with anndata"
                )
            if self.n_cells == 0 or n_genes == 0:
                raise DataError(
                    f"{self.path}: {self.group_path} holds {self.n_cells:,} cells × {n_genes:,} genes; "
                    "there is nothing to annotate"
                )
        except BaseException:
            self.file.close()
            raise

    # -- opening ----------------------------------------------------------------------------------------------
    def matrices(self) -> list[str]:
        """The matrices the file holds, as ``counts`` names them: for messages that suggest another."""
        found = ["X"] if "X" in self.file else []
        if "raw" in self.file and "X" in self.file["raw"]:
            found.append("raw.X")
        if "layers" in self.file:
            found += [f"layers/{name}" for name in self.file["layers"]]
        return found

    def _locate(self, counts: str) -> tuple[str, str]:
        for part in ("obs", "var"):
            if part not in self.file:
                raise DataError(
                    f"{self.path} is HDF5 but not an AnnData file (it has no /{part}); write it with "
                    "anndata's write_h5ad"
                )
        if counts == "X":
            where = ("X", "var")
        elif counts == "raw.X":
            where = ("raw/X", "raw/var")
        elif counts.startswith("layers/") and len(counts) > len("layers/"):
            where = (counts, "var")
        else:
            raise DataError(f"counts {counts!r} is not one of {COUNTS_HELP}")
        if where[0] not in self.file:
            raise DataError(
                f"{self.path} has no {where[0]} (counts: {counts}); the file holds {self.matrices() or 'no matrix'}"
            )
        return where

    def _open_matrix(self, where: str):
        from anndata.io import sparse_dataset

        node = self.file[where]
        if isinstance(node, h5py.Dataset):
            if node.ndim != 2:
                raise DataError(f"{self.path}: {where} is not a 2-D matrix (shape {node.shape})")
            return node
        encoding = node.attrs.get("encoding-type", "")
        if encoding == "csc_matrix":
            raise DataError(
                f"{self.path}: {where} is stored by column (CSC), so every chunk of cells would read the whole "
                "matrix; store it by row: adata.X = adata.X.tocsr() (or the layer / raw.X you chose), then "
                "adata.write_h5ad"
            )
        if encoding != "csr_matrix":
            raise DataError(f"{self.path}: {where} is a {encoding or 'group'}, not a matrix anndata wrote")
        return sparse_dataset(node)

    def _read_var(self, where: str) -> pd.DataFrame:
        from anndata.io import read_elem

        var = read_elem(self.file[where])
        if not isinstance(var, pd.DataFrame):
            raise DataError(f"{self.path}: {where} is not a gene table")
        return var

    def __enter__(self) -> QueryCounts:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # -- reading ----------------------------------------------------------------------------------------------
    @property
    def what(self) -> str:
        """The matrix in messages: ``file.h5ad raw.X``."""
        return f"{self.path} {'raw.X' if self.counts == 'raw.X' else self.group_path.replace('layers/', 'layer ')}"

    def cell_ids(self, start: int, stop: int) -> np.ndarray:
        """The obs names of rows ``start:stop`` (the obs index), as strings."""
        obs = self.file["obs"]
        values = obs[obs.attrs.get("_index", "_index")][start:stop]
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, sp.csr_matrix]]:
        """``(first row, counts)`` for every ``chunk_size`` rows, every gene, checked (``check_counts``)."""
        for start in range(0, self.n_cells, chunk_size):
            stop = min(start + chunk_size, self.n_cells)
            block = self.matrix[start:stop]
            block = sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
            check_counts(block.data, self.what, start, self.matrices())
            yield start, block


def check_counts(
    values: np.ndarray, what: str, first_row: int = 0, matrices: list[str] | None = None
) -> None:
    """Raise ``DataError`` unless ``values`` (a chunk's stored values, from row ``first_row`` on) are raw counts:
    finite, non-negative integers. Non-integer values that all lie below ``LOG_NORMALISED_MAX`` are called what they
    most likely are, a log-normalised matrix; the message names the file's ``matrices`` to try instead."""
    values = np.asarray(values)
    if values.size == 0 or not any_bad_value(values, integer=True):
        return
    masks = bad_values(values, integer=True)
    counts = {kind: int(mask.sum()) for kind, mask in masks.items() if mask.any()}
    if not counts:
        return
    others = f"; the file holds {', '.join(matrices)}" if matrices else ""
    choose = f"choose the matrix of raw counts with --counts ({COUNTS_HELP}){others}"
    described = ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
    if set(counts) == {"non-integer"} and float(values.max()) <= LOG_NORMALISED_MAX:
        raise DataError(
            f"{what} looks log-normalised, not raw counts: {described} values from cell {first_row:,} on, the "
            f"largest {float(values.max()):.3g} (log1p of per-cell-scaled counts stays below "
            f"{LOG_NORMALISED_MAX:.1f}). The model was trained on raw counts normalised its own way: {choose}"
        )
    raise DataError(
        f"{what} holds values that are not raw counts ({described}, from cell {first_row:,} on): annotate "
        f"needs non-negative integer counts; {choose}"
    )
