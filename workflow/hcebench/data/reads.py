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


def census_count_checks(release: str) -> CountChecks:
    """The checks of counts read from census ``release``'s X/raw: raw, so non-negative integers."""
    return CountChecks(f"census {release} X/raw", integer=True, fix=CENSUS_COUNTS_FIX)


def datasets_in_read_order(obs: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The dataset_id of each cell in the order it is read (``rows``), for naming datasets in data errors."""
    if "dataset_id" not in obs:
        return np.full(len(rows), "(unknown dataset)", dtype=object)
    return obs["dataset_id"].astype(str).to_numpy(dtype=object)[rows]


def read_order(obs: pd.DataFrame) -> np.ndarray:
    """Rows of ``obs`` in soma_joinid order (stable): the order the census is read in. Read position ``k`` is
    destination row ``read_order(obs)[k]`` of the split."""
    return np.argsort(obs["soma_joinid"].to_numpy(np.int64), kind="stable")


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
        counts = counts.tocoo()
        if read.in_sum is None:
            aligned = sp.csr_matrix(
                (counts.data, (counts.row, read.columns[counts.col])),
                shape=(len(ids), read.n_genes),
                dtype=np.float32,
            )
            yield normalise(aligned, read.target_sum)
            continue
        # Totals over the genes in_sum marks; only the genes with a store column are kept.
        summed = read.in_sum[counts.col]
        totals = np.bincount(counts.row[summed], weights=counts.data[summed], minlength=len(ids))
        kept = read.columns[counts.col] >= 0
        aligned = sp.csr_matrix(
            (counts.data[kept], (counts.row[kept], read.columns[counts.col[kept]])),
            shape=(len(ids), read.n_genes),
            dtype=np.float32,
        )
        yield normalise(aligned, read.target_sum, row_sum=totals)
    if start != len(joinids):
        raise RuntimeError(f"census reader returned {start} of {len(joinids)} cells")
