"""Writing a split in any cell order from soma_joinid-ordered reads: an external shuffle through on-disk buckets.

``write_split_from_census`` writes a split whose row ``i`` is cell ``obs.iloc[i]``. The census is always read in
soma_joinid-sorted chunks (``hcebench.data.reads.read_normalised``: contiguous reads); cells already in that order
are written as read, and any other order (the training store's permuted splits) is reached through buckets:
``scatter_to_buckets`` appends each read row to the bucket file of its destination chunk (``append_bucket``), and
``gather_buckets`` writes each bucket in turn (``read_bucket``), put in order. Memory is bounded by one chunk,
whatever the number of cells. The split's files are ``hcebench.data.store``'s (``SplitWriter``); long reads and
writes log their progress every minute (``hcebench.progress``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.data.checks import CountChecks
from hcebench.data.reads import CensusRead, datasets_in_read_order, read_normalised, read_order
from hcebench.data.store import SplitWriter
from hcebench.progress import Progress

log = logging.getLogger(__name__)


def append_bucket(path: Path, destinations: np.ndarray, x: sp.csr_matrix) -> None:
    """Append rows ``x`` and their destination rows to bucket file ``path``, as one record.

    A record is ``[rows, nnz]`` (int64), destinations (int64 × rows), row lengths (int64 × rows), values
    (float32 × nnz), column indices (int32 × nnz): every record is a multiple of 8 bytes, so each array of the
    next one starts aligned.
    """
    with open(path, "ab") as f:
        np.array([len(destinations), x.nnz], dtype=np.int64).tofile(f)
        np.asarray(destinations, dtype=np.int64).tofile(f)
        np.diff(x.indptr).astype(np.int64).tofile(f)
        x.data.astype(np.float32, copy=False).tofile(f)
        x.indices.astype(np.int32, copy=False).tofile(f)


def read_bucket(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every record of the bucket files ``paths`` (absent files hold none), concatenated:
    (destinations, row lengths, values, column indices)."""
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for path in paths:
        if not path.exists():
            continue
        raw = np.fromfile(path, dtype=np.uint8)
        pos = 0
        while pos < len(raw):
            rows, nnz = (int(v) for v in np.frombuffer(raw, np.int64, 2, pos))
            pos += 16
            for k, (dtype, count) in enumerate(
                ((np.int64, rows), (np.int64, rows), (np.float32, nnz), (np.int32, nnz))
            ):
                parts[k].append(np.frombuffer(raw, dtype, count, pos))
                pos += count * np.dtype(dtype).itemsize
    dtypes = (np.int64, np.int64, np.float32, np.int32)
    dest, lengths, values, indices = (
        np.concatenate(p) if p else np.zeros(0, d) for p, d in zip(parts, dtypes, strict=True)
    )
    return dest, lengths, values, indices


def scatter_to_buckets(
    census,
    joinids: np.ndarray,
    destinations: np.ndarray,
    read: CensusRead,
    buckets: Path,
    *,
    on_progress: Callable[[int], None] | None = None,
    checks: CountChecks | None = None,
    datasets: np.ndarray | None = None,
) -> None:
    """Read cells ``joinids`` (ascending) in chunks and append each normalised row to the bucket of its
    destination: bucket file ``buckets/<b>.bin`` collects the rows whose destination row in the split lies in
    ``[b · chunk_size, (b + 1) · chunk_size)`` (``read.chunk_size``), so no bucket holds more than one chunk of
    rows. ``read``, ``checks`` and ``datasets``: as ``read_normalised``."""
    buckets.mkdir(parents=True, exist_ok=True)
    start = 0
    for x in read_normalised(census, joinids, read, checks=checks, datasets=datasets):
        dest = destinations[start : start + x.shape[0]]
        start += x.shape[0]
        bucket = dest // read.chunk_size
        by_bucket = np.argsort(bucket, kind="stable")
        x, dest, bucket = x[by_bucket], dest[by_bucket], bucket[by_bucket]
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(bucket)], strict=True):
            append_bucket(buckets / f"{bucket[lo]}.bin", dest[lo:hi], x[lo:hi])
        if on_progress is not None:
            on_progress(start)


def gather_buckets(
    buckets: list[Path],
    obs: pd.DataFrame,
    n_genes: int,
    directory: str | os.PathLike,
    chunk_size: int,
    *,
    keep: bool = False,
) -> int:
    """Write the split from the bucket directories ``buckets`` (each filled by ``scatter_to_buckets``): for each
    bucket in turn, its rows from every directory, ordered by destination, with their rows of ``obs``.

    Each bucket file is deleted once written, so the disk holds the split about once, not twice; with ``keep``
    (a resumable build, whose kept segments must survive a failure during the gather) they are left.
    """
    writer = SplitWriter(directory, n_genes)
    progress = Progress(len(obs), f"{Path(directory).name}: written in the store's order", log)
    for b, lo in enumerate(range(0, len(obs), chunk_size)):
        hi = min(lo + chunk_size, len(obs))
        paths = [d / f"{b}.bin" for d in buckets]
        dest, lengths, values, indices = read_bucket(paths)
        order = np.argsort(dest)
        if not np.array_equal(dest[order], np.arange(lo, hi)):
            raise RuntimeError(
                f"bucket {b} of {Path(directory).name} holds rows {dest[order][:5]}…, not {lo}..{hi - 1}"
            )
        source_start = np.concatenate([[0], np.cumsum(lengths)])[:-1][order]
        indptr = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(lengths[order], out=indptr[1:])
        positions = np.repeat(source_start - indptr[:-1], lengths[order]) + np.arange(indptr[-1])
        x = sp.csr_matrix((values[positions], indices[positions], indptr), shape=(hi - lo, n_genes))
        writer.append(x, obs.iloc[lo:hi])
        for path in paths if not keep else []:
            path.unlink(missing_ok=True)
        progress.update(hi)
    return writer.close()


def write_split_from_census(
    census,
    obs: pd.DataFrame,
    read: CensusRead,
    directory: str | os.PathLike,
    *,
    checks: CountChecks | None = None,
) -> int:
    """Stream ``obs``'s cells from SOMA into a split directory whose row ``i`` is cell ``obs.iloc[i]``.

    The census is read in soma_joinid-sorted chunks of ``read.chunk_size`` cells (contiguous reads; see
    ``read_normalised`` for the gene mapping and normalisation). Cells already in soma_joinid order are written
    as they are read. Any other order (the training store's permuted splits) goes through an external shuffle
    whose memory is bounded by one chunk, not by the cells: each read chunk's rows are appended to on-disk
    bucket files by destination chunk (``scatter_to_buckets``), then each bucket, at most ``chunk_size`` rows, is
    put in order and appended (``gather_buckets``). The buckets live beside ``directory`` and are removed.
    Every chunk read goes through ``checks`` (``read_normalised``), which names a bad value's dataset from
    ``obs["dataset_id"]``.
    """
    directory = Path(directory)
    obs = obs.reset_index(drop=True)
    rows = read_order(obs)
    joinids = obs["soma_joinid"].to_numpy(np.int64)[rows]
    datasets = datasets_in_read_order(obs, rows)
    progress = Progress(len(obs), f"{directory.name}: read from the census", log)
    if np.array_equal(rows, np.arange(len(obs))):
        writer = SplitWriter(directory, read.n_genes)
        start = 0
        for x in read_normalised(census, joinids, read, checks=checks, datasets=datasets):
            writer.append(x, obs.iloc[start : start + x.shape[0]])
            start += x.shape[0]
            progress.update(start)
        return writer.close()
    staging = directory.parent / f".{directory.name}.buckets"
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's buckets: appending to them would corrupt
    try:
        scatter_to_buckets(
            census,
            joinids,
            rows,
            read,
            staging,
            on_progress=progress.update,
            checks=checks,
            datasets=datasets,
        )
        return gather_buckets([staging], obs, read.n_genes, directory, read.chunk_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
