"""One split of a store on disk: normalised CSR and obs, written in chunks (``SplitWriter``) and read back
(``SplitData``) as minibatches.

Files of a split directory (the whole store's layout is ``hcebench.data.store``)::

    obs.parquet     one row per cell, row i of X
    X.data.f32      CSR values: log1p(counts / row_sum · target_sum), float32
    X.indices.i32, X.indptr.i64

Values are stored already normalised and sparse, so a minibatch costs a row gather, no arithmetic; raw
little-endian arrays are memory-mapped, so a split larger than RAM trains from the page cache. Batches stay
sparse (``SparseBatch``) until the model densifies them on its device: ~16 bytes per stored value against
4 bytes per gene dense, a 5–10× smaller copy at the paper's ~2,000 values per cell over 19,331 genes.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from hcebench.data.store.batches import BufferRing, SparseBatch, prefetched
from hcebench.settings import measurement_setting

log = logging.getLogger(__name__)

#: A split's obs table: one row per cell, row i of X.
OBS_FILE = "obs.parquet"
X_FILES = {
    "data": ("X.data.f32", np.float32),
    "indices": ("X.indices.i32", np.int32),
    "indptr": ("X.indptr.i64", np.int64),
}
#: Bytes of a split's files a reader may keep mapped in its address space before the pages it has read are let go
#: (``SplitData.release_pages``). The pages stay in the kernel's page cache (a later read is a minor fault, not a
#: disk read), but no longer count in the process's resident memory, which is what Snakemake's benchmark files and
#: SLURM's accounting measure: a job that reads a 250 GB training split is charged for this much of it, not all.
#: 256 MB; the environment variable ``HCEBENCH_MAPPED_MB`` sets another number of MB, which only measurements do
#: (the scale rehearsal's ``--quick`` runs, whose small splits would not fill 256 MB).
MAPPED_MB_VARIABLE = "HCEBENCH_MAPPED_MB"


def mapped_bytes_setting(value: str | None) -> int:
    """The page limit ``HCEBENCH_MAPPED_MB`` gives, in bytes (256 MB when unset); anything but a positive integer is
    an error naming the variable."""
    return measurement_setting(MAPPED_MB_VARIABLE, value, 256, "MB") * 2**20


MAPPED_BYTES_LIMIT = mapped_bytes_setting(os.environ.get(MAPPED_MB_VARIABLE))


def resident_mapped_bytes(path: str | os.PathLike) -> int:
    """Bytes of this process's memory maps of ``path`` that are resident (Linux's ``/proc/self/smaps``): what a
    reader of a split is charged for the file's pages it holds mapped."""
    total, inside, path = 0, False, str(Path(path).resolve())
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
                inside = len(fields) >= 6 and fields[5] == path
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def split_files(directory: str | os.PathLike) -> dict[str, Path]:
    """A split directory's files by role: X's ``data``, ``indices`` and ``indptr`` arrays, and ``obs``."""
    directory = Path(directory)
    return {**{key: directory / name for key, (name, _) in X_FILES.items()}, "obs": directory / OBS_FILE}


def normalise(counts: sp.csr_matrix, target_sum: float, row_sum: np.ndarray | None = None) -> sp.csr_matrix:
    """Scale each row to ``target_sum`` counts, then log1p; float32. A row sum of 0 is treated as 1.

    ``row_sum``: each row's total when it is not the sum of ``counts``' own columns (counts of genes that are summed
    but not kept, ``CensusRead.in_sum``)."""
    counts = counts.astype(np.float32, copy=True).tocsr()
    if row_sum is None:
        row_sum = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    else:
        row_sum = np.asarray(row_sum, dtype=np.float64).copy()
    row_sum[row_sum == 0] = 1.0
    scale = (target_sum / row_sum).astype(np.float32)
    counts.data *= np.repeat(scale, np.diff(counts.indptr))
    np.log1p(counts.data, out=counts.data)
    counts.sort_indices()
    return counts


def plain_strings(obs: pd.DataFrame) -> pd.DataFrame:
    """``obs`` with its categorical columns as plain object columns (of ``str`` where the categories are strings);
    the other columns and ``obs`` itself are left as they are."""
    categorical = [c for c in obs.columns if isinstance(obs[c].dtype, pd.CategoricalDtype)]
    return obs.assign(**{c: obs[c].astype(object) for c in categorical}) if categorical else obs


class SplitWriter:
    """Append normalised CSR chunks and their obs to ``directory``; ``close`` finishes the files.

    Values, column indices, row offsets and obs rows are all streamed to disk as they arrive, so the
    writer's memory is bounded by one chunk whatever the number of cells. Obs columns are written as plain
    strings whatever their dtype in memory: a builder may hold millions of cells' obs as categoricals (a few bytes
    per cell, not a Python string's ~60–90) and write the same file as one holding strings (``plain_strings``, per
    chunk).
    """

    def __init__(self, directory: str | os.PathLike, n_genes: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_genes = n_genes
        self._files = {k: open(self.dir / name, "wb") for k, (name, _) in X_FILES.items()}
        np.zeros(1, dtype=np.int64).tofile(self._files["indptr"])
        self._nnz = 0
        self._n = 0
        self._obs_writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def append(self, x: sp.csr_matrix, obs: pd.DataFrame) -> None:
        if x.shape != (len(obs), self.n_genes):
            raise ValueError(
                f"chunk shape {x.shape} does not match {len(obs)} obs rows × {self.n_genes} genes"
            )
        x.data.astype(np.float32, copy=False).tofile(self._files["data"])
        x.indices.astype(np.int32, copy=False).tofile(self._files["indices"])
        (x.indptr[1:].astype(np.int64) + self._nnz).tofile(self._files["indptr"])
        self._nnz += x.nnz
        self._n += x.shape[0]
        table = pa.Table.from_pandas(
            plain_strings(obs.reset_index(drop=True)), schema=self._schema, preserve_index=False
        )
        if self._obs_writer is None:
            self._schema = table.schema
            self._obs_writer = pq.ParquetWriter(self.dir / OBS_FILE, self._schema)
        self._obs_writer.write_table(table)

    def close(self, empty_obs: pd.DataFrame | None = None) -> int:
        """Finish the files; return the number of cells. A split that received no chunk writes ``empty_obs`` (a
        table with no rows but the split's columns) as its obs, so predicting and scoring it give empty tables."""
        for f in self._files.values():
            f.close()
        if self._obs_writer is None:
            empty = pd.DataFrame() if empty_obs is None else plain_strings(empty_obs.iloc[:0])
            empty.to_parquet(self.dir / OBS_FILE, index=False)
        else:
            self._obs_writer.close()
        return self._n


class SplitData:
    """A split read back from disk: memory-mapped CSR, obs, and integer labels.

    ``dense_rows`` and ``sparse_batches`` read only the rows asked for, so a split larger than RAM trains
    from the page cache; ``x`` (a scipy CSR of the whole split) is for small splits and analyses.

    Opening reads the obs file's footer and two columns (``label``, ``label_index``), not the whole table: what
    stays per cell is ``y``, 8 bytes (int64). ``obs`` (the whole table) is read on first use; steps over
    millions of cells read only their columns (``read_obs``) or chunks of rows (``obs_chunks``).
    """

    def __init__(self, directory: str | os.PathLike, n_genes: int, labels: list[str] | None = None):
        self.dir = Path(directory)
        self.n_genes = n_genes
        self._maps: list[mmap.mmap] = []
        self._read_bytes = 0  # read through the maps since their pages were last let go
        arrays = {}
        for key, (name, dtype) in X_FILES.items():
            path = self.dir / name
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} is missing: the store is incomplete; delete {self.dir.parent} to rebuild"
                )
            size, itemsize = path.stat().st_size, np.dtype(dtype).itemsize
            if size % itemsize:
                raise ValueError(
                    f"{path} holds {size:,} bytes, not a whole number of {np.dtype(dtype).name} values: the file "
                    f"was cut short or overwritten; delete {self.dir.parent} to rebuild"
                )
            arrays[key] = self._map(path, dtype) if size else np.zeros(0, dtype)
        self.data, self.indices, self.indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        self._obs_file = pq.ParquetFile(self.dir / OBS_FILE)
        self.n_obs = self._obs_file.metadata.num_rows
        self.obs_columns = list(self._obs_file.schema_arrow.names)
        if len(self.indptr) != self.n_obs + 1:
            raise ValueError(
                f"{self.dir}: {len(self.indptr) - 1} rows of X but {self.n_obs} obs rows; rebuild the store"
            )
        nnz = int(self.indptr[-1]) if len(self.indptr) else 0
        for key in ("data", "indices"):
            if len(arrays[key]) != nnz:
                raise ValueError(
                    f"{self.dir / X_FILES[key][0]} holds {len(arrays[key]):,} values but the row offsets end at "
                    f"{nnz:,}: the file was cut short or overwritten; delete {self.dir.parent} to rebuild"
                )
        self._x: sp.csr_matrix | None = None
        self._obs: pd.DataFrame | None = None
        self.y = self.label_indices(labels)

    def _map(self, path: Path, dtype) -> np.ndarray:
        """``path``'s values, read-only and memory-mapped (a map ``release_pages`` can let go of)."""
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(mapped)
        return np.frombuffer(mapped, dtype=dtype)

    def release_pages(self) -> None:
        """Let go of the mapped pages read so far (``MAPPED_BYTES_LIMIT``): they leave the process's resident
        memory and stay in the page cache. Arrays read from the maps are copies and stay valid; so do the maps."""
        for mapped in self._maps:
            mapped.madvise(mmap.MADV_DONTNEED)
        self._read_bytes = 0

    def _count_read(self, n_bytes: int) -> None:
        self._read_bytes += n_bytes
        if self._read_bytes >= MAPPED_BYTES_LIMIT:
            self.release_pages()

    @property
    def obs(self) -> pd.DataFrame:
        """The whole obs table (~750 bytes per cell at the census's columns), read on first use and kept. Steps
        over millions of cells read the columns they use instead (``read_obs``, ``obs_chunks``)."""
        if self._obs is None:
            self._obs = self.read_obs()
        return self._obs

    def read_obs(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Obs columns ``columns`` (all when None) of every cell; the other columns are never read."""
        if self._obs is not None:
            return self._obs if columns is None else self._obs[columns]
        return pd.read_parquet(self.dir / OBS_FILE, columns=columns)

    def obs_chunks(self, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Obs in consecutive chunks of ``chunk_rows`` rows (the last may be shorter; none for an empty split),
        only ``columns`` when given: memory bounded by the chunk, whatever the split's size. An empty split gives
        one empty chunk with the obs columns, so writers of per-cell files still write their (empty) table."""
        if self.n_obs == 0:
            empty = self._obs_file.schema_arrow.empty_table()
            yield (empty.select(columns) if columns is not None else empty).to_pandas()
            return
        buffer = None
        for batch in self._obs_file.iter_batches(batch_size=chunk_rows, columns=columns):
            table = pa.Table.from_batches([batch])
            buffer = table if buffer is None else pa.concat_tables([buffer, table])
            while buffer.num_rows >= chunk_rows:
                yield buffer.slice(0, chunk_rows).to_pandas()
                buffer = buffer.slice(chunk_rows)
        if buffer is not None and buffer.num_rows:
            yield buffer.to_pandas()

    @classmethod
    def open(cls, directory: str | os.PathLike, n_genes: int, labels: list[str] | None = None) -> SplitData:
        return cls(directory, n_genes, labels)

    def label_indices(self, labels: list[str] | None) -> np.ndarray:
        """Each cell's label index: the ``label_index`` the store wrote when obs has it, else ``labels``' position
        of its ``label`` (a split written by hand); -1 where neither gives one. With both, the stored indices are
        checked against ``labels`` (one row per distinct label), so another label order is an error, not a
        silent relabelling."""
        wanted = [c for c in ("label", "label_index") if c in self.obs_columns]
        obs = self.read_obs(wanted) if wanted else pd.DataFrame(index=pd.RangeIndex(self.n_obs))
        if "label_index" in obs:
            y = obs["label_index"].to_numpy(np.int64)
            if labels is not None and "label" in obs and len(obs):
                pairs = obs[["label", "label_index"]].drop_duplicates()
                wrong = [
                    (t, int(i))
                    for t, i in zip(pairs["label"], pairs["label_index"], strict=True)
                    if not (0 <= i < len(labels) and labels[i] == t)
                ]
                if wrong:
                    raise ValueError(
                        f"{self.dir / OBS_FILE}: label_index disagrees with the label order given for "
                        f"{len(wrong)} label(s), e.g. {wrong[0][0]!r} stored as {wrong[0][1]}; the split was "
                        "written with another label set: rebuild it from the same selection"
                    )
            return y
        if labels is not None and "label" in obs:
            index = {t: i for i, t in enumerate(labels)}
            return obs["label"].map(index).fillna(-1).to_numpy(np.int64)
        return np.full(len(obs), -1, dtype=np.int64)

    def __len__(self) -> int:
        return self.n_obs

    @property
    def shape(self) -> tuple[int, int]:
        """(cells, genes), as a scipy matrix of the split would have."""
        return len(self), self.n_genes

    @property
    def x(self) -> sp.csr_matrix:
        """The whole split as a scipy CSR matrix (loads it into memory)."""
        if self._x is None:
            self._x = sp.csr_matrix(
                (np.asarray(self.data), np.asarray(self.indices), np.asarray(self.indptr)),
                shape=(len(self), self.n_genes),
            )
        return self._x

    def sparse_rows(self, rows: np.ndarray, buffers: BufferRing | None = None) -> SparseBatch:
        """Rows ``rows`` as a CSR batch, without densifying: batch row ``i`` (and ``y[i]``) is split row ``rows[i]``.

        Rows are always read in ascending order. Sorted rows are read as runs of consecutive rows, each one
        contiguous slice of the value and index files (plain copies, no per-value gather); rows with repeats fall
        back to a gather of every stored value. Rows in any other order (a training batch, in the random order
        the model sees) are read sorted all the same, and the batch keeps the order to put them in
        (``SparseBatch.order``), which densifying applies where the batch lands, at no cost (``to_dense``). With ``buffers`` the values and indices are written
        into reused arrays instead of fresh ones (no page faults on new memory; see ``read_batches`` for how long
        they stay valid).
        """
        rows = np.asarray(rows, dtype=np.int64)
        y = self.y[rows]
        order = None
        if len(rows) > 1 and not (np.diff(rows) > 0).all():
            ascending = np.argsort(rows, kind="stable")
            order = np.empty_like(ascending)
            order[ascending] = np.arange(len(rows))
            rows = rows[ascending]
        starts = np.asarray(self.indptr[rows], dtype=np.int64)
        lengths = np.asarray(self.indptr[rows + 1], dtype=np.int64) - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        nnz = int(indptr[-1])
        values, indices = buffers.take(nnz) if buffers is not None else (None, None)
        if len(rows) and (np.diff(rows) > 0).all():
            cut = np.flatnonzero(np.diff(rows) != 1) + 1
            first = np.concatenate([[0], cut])
            last = np.concatenate([cut, [len(rows)]]) - 1
            lo, hi = starts[first], starts[last] + lengths[last]
            values = np.concatenate([self.data[a:b] for a, b in zip(lo, hi, strict=True)], out=values)
            indices = np.concatenate([self.indices[a:b] for a, b in zip(lo, hi, strict=True)], out=indices)
        else:
            positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(nnz, dtype=np.int64)
            values = np.take(self.data, positions, out=values)
            indices = np.take(self.indices, positions, out=indices)
        # Stored values and indices (8 bytes) and the row offsets (16) read from the maps.
        self._count_read(8 * nnz + 16 * len(rows))
        return SparseBatch(indptr, np.asarray(indices), np.asarray(values), y, self.n_genes, order)

    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` as a dense float32 array (cells × genes)."""
        return self.sparse_rows(rows).to_numpy()

    def batch_order(
        self,
        batch_size: int,
        rng: np.random.Generator | None,
        block_rows: int = 1,
        *,
        drop_last: bool = False,
    ) -> list[np.ndarray]:
        """Row indices of each minibatch, in the order the model sees them.

        Without ``rng``: consecutive batches in store order. With ``rng`` the split is shuffled: blocks of
        ``block_rows`` consecutive rows are permuted and cut into batches, and each batch's rows are then put in
        a random order by the same ``rng``. ``block_rows=1`` is a full permutation (already in random order: no
        further draw); larger blocks trade mixing for sequential reads when the split is larger than the page
        cache. The random order within a batch matters: TabNet's ghost batches (``virtual_batch_size`` consecutive
        rows of the batch) and every BatchNorm take statistics over their rows, which would otherwise be a couple
        of blocks of neighbouring cells. ``sparse_rows`` still reads each batch's rows in ascending order and
        leaves the reordering to the densifying step (``SparseBatch.to_dense``). ``drop_last`` leaves out the
        last batch when it is short (fewer than ``batch_size`` rows), as scTab's loader does. The order is a function of the generator's state, so an
        epoch that rewinds ``rng`` replays it exactly.
        """
        n = len(self)
        # drop_last: no batch starts where fewer than batch_size rows remain (scTab's loader).
        end = (n // batch_size) * batch_size if drop_last else n
        if rng is None:
            return [np.arange(i, min(i + batch_size, n)) for i in range(0, end, batch_size)]
        if block_rows <= 1:
            order = rng.permutation(n)
            return [order[i : i + batch_size] for i in range(0, end, batch_size)]
        blocks = rng.permutation(-(-n // block_rows))
        order = (blocks[:, None] * block_rows + np.arange(block_rows)).ravel()
        order = order[order < n]
        batches = [order[i : i + batch_size] for i in range(0, end, batch_size)]
        return [rows[rng.permutation(len(rows))] for rows in batches]

    def read_batches(
        self, order: list[np.ndarray], *, prefetch: int = 2, reuse_buffers: bool = False
    ) -> Iterator[SparseBatch]:
        """CSR minibatches of the row sets in ``order``, read ``prefetch`` batches ahead by a background thread.

        ``reuse_buffers`` reads into a ring of buffer pairs instead of fresh arrays (no page faults on new
        memory, and a small ring stays in the CPU cache: benchmarks/data_path.py); a batch's values and indices
        are then valid only until the next batch is requested, so consume or copy each batch (``to_dense``
        copies) before moving on. The ring holds one pair per batch that can be alive at once: the consumer's,
        the ``prefetch`` queued ones and the one being read.
        """
        ring = BufferRing(prefetch + 2 if prefetch > 0 else 1) if reuse_buffers else None
        yield from prefetched((self.sparse_rows(rows, ring) for rows in order), prefetch)

    def sparse_batches(
        self,
        batch_size: int,
        *,
        rng: np.random.Generator | None = None,
        block_rows: int = 1,
        prefetch: int = 2,
        reuse_buffers: bool = False,
    ) -> Iterator[SparseBatch]:
        """CSR minibatches (shuffled with ``rng``), read ahead as ``read_batches`` describes."""
        order = self.batch_order(batch_size, rng, block_rows)
        yield from self.read_batches(order, prefetch=prefetch, reuse_buffers=reuse_buffers)

    def batches(
        self,
        batch_size: int,
        *,
        rng: np.random.Generator | None = None,
        block_rows: int = 1,
        prefetch: int = 2,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(dense float32 batch, label indices); shuffled when ``rng`` is given, in order otherwise."""
        batches = self.batch_order(batch_size, rng, block_rows)
        dense = ((b.to_numpy(), b.y) for b in (self.sparse_rows(rows) for rows in batches))
        yield from prefetched(dense, prefetch)
