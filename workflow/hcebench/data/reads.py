"""Reading store rows from a census: the counts of given cells, checked, aligned to the store's genes, normalised.

``CensusRead`` is what a read needs besides the cells: the gene mapping (census var → store column) and the read
settings (normalisation, chunk size, organism). ``read_normalised`` reads cells in ascending soma_joinid order,
``chunk_size`` at a time (contiguous reads), and yields each chunk as store rows; every chunk of raw counts is
checked first (``hcebench.data.checks.CountChecks``: a NaN, infinite, negative or fractional count is an error
naming its dataset; all-zero cells are tallied). ``read_order`` is the order a split's cells are read in, and
``datasets_in_read_order`` their datasets, for those errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.data.census import iter_counts
from hcebench.data.checks import CountChecks
from hcebench.data.store import normalise

#: What to do about bad raw counts in a census, appended to the error that names them.
CENSUS_COUNTS_FIX = (
    "A Census's X/raw holds raw integer counts: check that census.train_release / census.ood_release (or "
    "census.train_uri / census.ood_uri) is an unmodified Census release, and report the dataset to CELLxGENE."
)


@dataclass(frozen=True, eq=False)
class CensusRead:
    """How to read cells of a census into store rows: the gene mapping and the read settings.

    Gene mapping: census var ``var_joinids[c]`` is read into store column ``columns[c]`` of ``n_genes``; store
    columns that no var maps to stay zero (genes the release lacks). Read settings: each row is normalised to
    ``target_sum`` counts then log1p'd (``hcebench.data.store.normalise``), cells are read ``chunk_size`` at a
    time, from the census's ``organism`` experiment. The same value passes unchanged from a split's writer down to
    each read (and, field by field, through a build worker's job file). Compared by identity (its fields hold
    arrays).
    """

    var_joinids: np.ndarray
    columns: np.ndarray
    n_genes: int
    target_sum: float
    chunk_size: int
    organism: str
    # Which var_joinids count toward a cell's total before scaling (None: all of them, the store's genes). A var
    # with column -1 is read for the total only. HCE's OOD normalisation (normalisation.ood_genes: gene_list).
    in_sum: np.ndarray | None = None


def census_count_checks(release: str, integer: bool = True) -> CountChecks:
    """The checks of counts read from census ``release``'s X/raw: raw, so non-negative integers; with
    ``integer=False`` (a release ingested from normalised values, ``hcebench.data.census.raw_counts_are_integers``)
    finite and non-negative only."""
    return CountChecks(f"census {release} X/raw", integer=integer, fix=CENSUS_COUNTS_FIX)


def datasets_in_read_order(obs: pd.DataFrame, rows: np.ndarray) -> pd.Categorical:
    """The dataset_id of each cell in the order it is read (``rows``), for naming datasets in data errors: a
    categorical (a code per cell, not a string: ~15 M cells in the paper's training split)."""
    if "dataset_id" not in obs:
        return pd.Categorical.from_codes(np.zeros(len(rows), dtype=np.int8), ["(unknown dataset)"])
    datasets = pd.Categorical(obs["dataset_id"])
    return datasets.rename_categories(datasets.categories.astype(str))[rows]


def read_order(obs: pd.DataFrame) -> np.ndarray:
    """Rows of ``obs`` in soma_joinid order (stable): the order the census is read in. Read position ``k`` is
    destination row ``read_order(obs)[k]`` of the split."""
    return np.argsort(obs["soma_joinid"].to_numpy(np.int64), kind="stable")


def store_rows(
    counts: sp.spmatrix,
    columns: np.ndarray,
    n_genes: int,
    target_sum: float,
    row_sum: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Raw counts (cells × the genes read) as store rows: count column ``c`` goes to store column ``columns[c]`` of
    ``n_genes``, or is dropped where ``columns[c]`` is -1 (store columns no count maps to stay zero); then each row
    is normalised to ``target_sum`` over the store's genes and log1p'd (``hcebench.data.store.normalise``). The one
    road from raw counts to what a model sees: the store build, the OOD set and ``hcebench-annotate`` all take it.
    ``columns`` must map no two count columns to one store column. The CSR arrays are relabelled in place of a
    COO round trip: a chunk costs one copy of its values and indices. ``row_sum``: each cell's total when it is
    not the sum over the store's genes (``CensusRead.in_sum``)."""
    counts = sp.csr_matrix(counts)
    target = np.asarray(columns, dtype=np.int64)[counts.indices]
    data, indptr = counts.data, counts.indptr
    dropped = target < 0
    if dropped.any():
        kept = ~dropped
        indptr = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])[counts.indptr]
        data, target = data[kept], target[kept]
    aligned = sp.csr_matrix((data, target.astype(np.int32), indptr), shape=(counts.shape[0], n_genes))
    return normalise(aligned, target_sum, row_sum=row_sum)


def read_normalised(
    census,
    joinids: np.ndarray,
    read: CensusRead,
    *,
    checks: CountChecks | None = None,
    datasets: np.ndarray | None = None,
) -> Iterator[sp.csr_matrix]:
    """The store rows of cells ``joinids`` (ascending soma_joinids: contiguous reads), ``read.chunk_size`` at a
    time.

    ``read`` maps the census's genes to the store's columns (``CensusRead``). Normalisation uses the row sum over
    the store's genes, so training and OOD cells are scaled the same way whatever else their release measured;
    with ``read.in_sum``, over the genes it marks instead (HCE's OOD normalisation).
    Each chunk's raw counts go through ``checks`` first (``datasets[i]`` is the dataset of cell ``joinids[i]``),
    which raises on bad values and tallies all-zero cells; without ``checks`` they are checked all the same,
    untallied.
    """
    if checks is None:
        checks = CountChecks("census X/raw", integer=True, fix=CENSUS_COUNTS_FIX)
    if datasets is None:
        datasets = np.full(len(joinids), "(unknown dataset)", dtype=object)
    start = 0
    for ids, counts in iter_counts(
        census, joinids, read.var_joinids, read.chunk_size, organism=read.organism
    ):
        if not np.array_equal(joinids[start : start + len(ids)], ids):
            raise RuntimeError("census reader returned cells out of the requested order")
        checks.check(counts, datasets[start : start + len(ids)])
        start += len(ids)
        if read.in_sum is None:
            yield store_rows(counts, read.columns, read.n_genes, read.target_sum)
            continue
        # Totals over the genes in_sum marks (HCE's OOD normalisation); only the genes with a store column are kept.
        counts = sp.csr_matrix(counts)
        summed = read.in_sum[counts.indices]
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        totals = np.bincount(rows[summed], weights=counts.data[summed], minlength=counts.shape[0])
        yield store_rows(counts, read.columns, read.n_genes, read.target_sum, row_sum=totals)
    if start != len(joinids):
        raise RuntimeError(f"census reader returned {start} of {len(joinids)} cells")
