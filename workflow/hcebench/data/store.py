"""The on-disk expression store: normalised CSR per split, obs as parquet, read back as minibatches.

Layout of a store directory (training store or OOD set)::

    meta.json           genes, labels, cell counts, provenance
    var.parquet         feature_id, feature_name — the column order of every X
    class_weights.npy   training store only: balanced weights in label order
    <split>/obs.parquet one row per cell, row i of X
    <split>/X.data.f32  CSR values: log1p(counts / row_sum · target_sum), float32
    <split>/X.indices.i32, <split>/X.indptr.i64

Values are stored already normalised and sparse, so a minibatch costs a row gather, no arithmetic; raw
little-endian arrays are memory-mapped, so a split larger than RAM trains from the page cache. Batches stay
sparse (``SparseBatch``) until the model densifies them on its device: ~16 bytes per stored value against
4 bytes per gene dense, a 5–10× smaller copy at the paper's ~2,000 values per cell over 19,331 genes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

X_FILES = {
    "data": ("X.data.f32", np.float32),
    "indices": ("X.indices.i32", np.int32),
    "indptr": ("X.indptr.i64", np.int64),
}


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
    """Append normalised CSR chunks and their obs to ``directory``; ``close`` finishes the files.

    Values, column indices, row offsets and obs rows are all streamed to disk as they arrive, so the
    writer's memory is bounded by one chunk whatever the number of cells.
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
        table = pa.Table.from_pandas(obs.reset_index(drop=True), schema=self._schema, preserve_index=False)
        if self._obs_writer is None:
            self._schema = table.schema
            self._obs_writer = pq.ParquetWriter(self.dir / "obs.parquet", self._schema)
        self._obs_writer.write_table(table)

    def close(self) -> int:
        for f in self._files.values():
            f.close()
        if self._obs_writer is None:
            pd.DataFrame().to_parquet(self.dir / "obs.parquet", index=False)
        else:
            self._obs_writer.close()
        return self._n


class SplitData:
    """A split read back from disk: memory-mapped CSR, obs, and integer labels.

    ``dense_rows`` and ``sparse_batches`` read only the rows asked for, so a split larger than RAM trains
    from the page cache; ``x`` (a scipy CSR of the whole split) is for small splits and analyses.
    """

    def __init__(self, directory: str | os.PathLike, n_genes: int, labels: list[str] | None = None):
        self.dir = Path(directory)
        self.n_genes = n_genes
        arrays = {}
        for key, (name, dtype) in X_FILES.items():
            path = self.dir / name
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} is missing: the store is incomplete; delete {self.dir.parent} to rebuild"
                )
            arrays[key] = (
                np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
            )
        self.data, self.indices, self.indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        self.obs = pd.read_parquet(self.dir / "obs.parquet")
        if len(self.indptr) != len(self.obs) + 1:
            raise ValueError(
                f"{self.dir}: {len(self.indptr) - 1} rows of X but {len(self.obs)} obs rows; rebuild the store"
            )
        nnz = int(self.indptr[-1]) if len(self.indptr) else 0
        for key in ("data", "indices"):
            if len(arrays[key]) != nnz:
                raise ValueError(
                    f"{self.dir / X_FILES[key][0]} holds {len(arrays[key]):,} values but the row offsets end at "
                    f"{nnz:,}: the file was cut short or overwritten; delete {self.dir.parent} to rebuild"
                )
        self.y = np.full(len(self.obs), -1, dtype=np.int64)
        if labels is not None and "label" in self.obs:
            index = {t: i for i, t in enumerate(labels)}
            self.y = self.obs["label"].map(index).fillna(-1).to_numpy(np.int64)
        self._x: sp.csr_matrix | None = None

    @classmethod
    def open(cls, directory: str | os.PathLike, n_genes: int, labels: list[str] | None = None) -> SplitData:
        return cls(directory, n_genes, labels)

    def __len__(self) -> int:
        return len(self.obs)

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
        return SparseBatch(indptr, np.asarray(indices), np.asarray(values), y, self.n_genes, order)

    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` as a dense float32 array (cells × genes)."""
        return self.sparse_rows(rows).to_numpy()

    def batch_order(
        self, batch_size: int, rng: np.random.Generator | None, block_rows: int = 1
    ) -> list[np.ndarray]:
        """Row indices of each minibatch, in the order the model sees them.

        Without ``rng``: consecutive batches in store order. With ``rng`` the split is shuffled: blocks of
        ``block_rows`` consecutive rows are permuted and cut into batches, and each batch's rows are then put in
        a random order by the same ``rng``. ``block_rows=1`` is a full permutation (already in random order: no
        further draw); larger blocks trade mixing for sequential reads when the split is larger than the page
        cache. The random order within a batch matters: TabNet's ghost batches (``virtual_batch_size`` consecutive
        rows of the batch) and every BatchNorm take statistics over their rows, which would otherwise be a couple
        of blocks of neighbouring cells. ``sparse_rows`` still reads each batch's rows in ascending order and
        leaves the reordering to the densifying step (``SparseBatch.to_dense``). The order is a function of the generator's state, so an
        epoch that rewinds ``rng`` replays it exactly.
        """
        n = len(self)
        if rng is None:
            return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        if block_rows <= 1:
            order = rng.permutation(n)
            return [order[i : i + batch_size] for i in range(0, n, batch_size)]
        blocks = rng.permutation(-(-n // block_rows))
        order = (blocks[:, None] * block_rows + np.arange(block_rows)).ravel()
        order = order[order < n]
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
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


class BufferRing:
    """``size`` reusable (values, indices) array pairs, handed out in turn; a pair grows when a batch needs more."""

    def __init__(self, size: int):
        self.slots: list[tuple[np.ndarray, np.ndarray] | None] = [None] * max(size, 1)
        self.turn = 0

    def take(self, nnz: int) -> tuple[np.ndarray, np.ndarray]:
        slot = self.turn % len(self.slots)
        self.turn += 1
        pair = self.slots[slot]
        if pair is None or len(pair[0]) < nnz:
            capacity = nnz + nnz // 4 + 1  # headroom, so batches of slightly varying size do not reallocate
            pair = self.slots[slot] = (np.empty(capacity, np.float32), np.empty(capacity, np.int32))
        return pair[0][:nnz], pair[1][:nnz]


@dataclass
class SparseBatch:
    """A CSR minibatch: densify it where the model runs (``to_dense``) to move 5–10× fewer bytes.

    The CSR arrays hold the rows as read (ascending in the split). ``order``, when set, puts them in the batch's
    order: batch row ``i`` is stored row ``order[i]``; ``y`` and every dense or scipy form are in the batch's order.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    y: np.ndarray
    n_genes: int
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def batch_rows(self) -> np.ndarray:
        """The batch row of each stored row (the inverse of ``order``)."""
        rows = np.arange(len(self))
        if self.order is not None:
            rows[self.order] = np.arange(len(self))
        return rows

    def to_numpy(self) -> np.ndarray:
        out = np.zeros((len(self), self.n_genes), dtype=np.float32)
        out[np.repeat(self.batch_rows(), np.diff(self.indptr)), self.indices] = self.values
        return out

    def to_scipy(self) -> sp.csr_matrix:
        m = sp.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self), self.n_genes))
        return m if self.order is None else m[self.order]

    def to_dense(self, device: torch.device | str = "cpu", out: torch.Tensor | None = None) -> torch.Tensor:
        """Dense float32 tensor on ``device``, rows in the batch's order.

        Only the CSR arrays cross to the device (column indices as int32), where each value is written into its
        (batch row, column) of a zero tensor: the batch's order costs nothing. A store's rows hold each column at
        most once, so the writes never collide. On a CPU each value's flat position is computed in numpy and
        written with one ``index_copy_``: ~2.5× faster than ``index_put_`` with a row and a column index tensor,
        which is itself ~2× faster than torch's CSR ``to_dense`` (2,048 cells × 4,000 values of 19,331 genes:
        ~50 against ~120 ms on this project's 2 cores).

        ``out``: a float32 (rows ≥ batch, genes) tensor on ``device`` to write into (zeroed first) instead of a new
        one; the batch is its first rows, a view. On a CPU a new batch-sized tensor each step costs its page faults,
        2-3× the writes themselves; the caller must be done with the last batch written there.
        """
        import torch

        if out is None:
            dense = torch.zeros((len(self), self.n_genes), dtype=torch.float32, device=device)
        else:
            if out.dtype != torch.float32 or out.shape[0] < len(self) or out.shape[1:] != (self.n_genes,):
                raise ValueError(
                    f"to_dense: out is {out.dtype} {tuple(out.shape)}, a batch of {len(self)} cells × "
                    f"{self.n_genes} genes needs float32 (≥ {len(self)}, {self.n_genes})"
                )
            dense = out[: len(self)]
            dense.zero_()
        values = torch.from_numpy(np.ascontiguousarray(self.values))
        if dense.device.type == "cpu":
            starts = self.batch_rows().astype(np.int64) * self.n_genes
            flat = np.repeat(starts, np.diff(self.indptr)) + self.indices
            dense.view(-1).index_copy_(0, torch.from_numpy(flat), values)
            return dense
        nnz = int(self.indptr[-1])
        lengths = torch.from_numpy(np.diff(self.indptr)).to(device)
        rows = torch.repeat_interleave(
            torch.from_numpy(self.batch_rows()).to(device), lengths, output_size=nnz
        )
        columns = torch.from_numpy(np.ascontiguousarray(self.indices)).to(device).long()
        dense.index_put_((rows, columns), values.to(device))
        return dense


def prefetched(items: Iterator, depth: int) -> Iterator:
    """Run ``items`` ``depth`` steps ahead in a background thread (numpy gathers release the GIL)."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as err:  # hand the error to the consumer
            q.put(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)
