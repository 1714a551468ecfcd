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
import shutil
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
            raise ValueError(f"chunk shape {x.shape} does not match {len(obs)} obs rows × {self.n_genes} genes")
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


def _write_part_job(job_path: str) -> None:
    """Entry point of one ``write_split`` worker process: the job file names its cells, genes and census."""
    import json

    from .census import open_census

    job = json.loads(Path(job_path).read_text())
    obs = pd.read_parquet(job["obs"])
    genes = np.load(job["genes"])
    with open_census(job["source"]) as census:
        write_split_from_census(census, obs, genes["var_joinids"], genes["columns"], job["n_genes"], job["directory"],
                                **job["kwargs"])


def merge_split_parts(parts: list[Path], directory: str | os.PathLike) -> int:
    """Concatenate split directories ``parts`` (in order) into ``directory``, streaming: bounded memory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key in ("data", "indices"):
        name = X_FILES[key][0]
        with open(directory / name, "wb") as out:
            for part in parts:
                with open(part / name, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
    offset, n = 0, 0
    with open(directory / X_FILES["indptr"][0], "wb") as out:
        np.zeros(1, dtype=np.int64).tofile(out)
        for part in parts:
            indptr = np.fromfile(part / X_FILES["indptr"][0], dtype=np.int64)
            (indptr[1:] + offset).tofile(out)
            offset += int(indptr[-1])
            n += len(indptr) - 1
    writer = None
    for part in parts:
        parquet = pq.ParquetFile(part / "obs.parquet")
        for batch in parquet.iter_batches():
            table = pa.Table.from_batches([batch])
            if writer is None:
                writer = pq.ParquetWriter(directory / "obs.parquet", parquet.schema_arrow)
            writer.write_table(table.cast(writer.schema))
    if writer is None:
        pd.DataFrame().to_parquet(directory / "obs.parquet", index=False)
    else:
        writer.close()
    return n


def write_split(
    source: dict,
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
    workers: int = 1,
) -> int:
    """``write_split_from_census`` with ``workers`` processes on contiguous soma_joinid ranges of the cells.

    ``source`` is what ``census`` was opened from: each worker opens the census itself and writes its range into
    a part directory with bounded memory (one chunk); the parts are then concatenated in order, so the split is
    byte-for-byte the one a single process writes. Worth it where reads wait on the network (the public Census
    on S3) or the machine has cores to spare; each worker holds its own chunk, so peak memory is about
    ``workers`` times one process's.
    """
    kwargs = dict(target_sum=target_sum, chunk_size=chunk_size, organism=organism)
    n_parts = min(max(workers, 1), -(-len(obs) // chunk_size))
    if n_parts <= 1:
        return write_split_from_census(census, obs, var_joinids, columns, n_genes, directory, **kwargs)
    import json
    import subprocess
    import sys

    obs = obs.sort_values("soma_joinid").reset_index(drop=True)
    directory = Path(directory)
    staging = directory.parent / f".{directory.name}.parts"
    staging.mkdir(parents=True, exist_ok=True)
    np.savez(staging / "genes.npz", var_joinids=np.asarray(var_joinids), columns=np.asarray(columns))
    bounds = np.linspace(0, len(obs), n_parts + 1).round().astype(int)
    parts = [staging / f"part{k}" for k in range(n_parts)]
    # Workers are fresh interpreters (not forks of this process, which holds an open TileDB context and its
    # threads; not multiprocessing's spawn, which re-runs the calling script: a Snakemake script has no main guard).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    entry = "import sys; from hcebench.store import _write_part_job; _write_part_job(sys.argv[1])"
    procs = []
    try:
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            obs.iloc[a:b].to_parquet(staging / f"obs{k}.parquet", index=False)
            job = {"source": source, "obs": str(staging / f"obs{k}.parquet"), "genes": str(staging / "genes.npz"),
                   "n_genes": n_genes, "directory": str(parts[k]), "kwargs": kwargs}
            (staging / f"job{k}.json").write_text(json.dumps(job))
            with open(staging / f"stderr{k}.txt", "wb") as err:
                procs.append(subprocess.Popen([sys.executable, "-c", entry, str(staging / f"job{k}.json")],
                                              env=env, stderr=err))
        codes = [proc.wait() for proc in procs]
    finally:  # this process is failing or was signalled: stop workers that still run
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [k for k, code in enumerate(codes) if code]
    if failed:
        tail = (staging / f"stderr{failed[0]}.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"store build worker(s) {failed} of {n_parts} failed (exit {codes[failed[0]]}):\n{tail}")
    n = merge_split_parts(parts, directory)
    shutil.rmtree(staging)
    log.info("%s: %d cells written by %d worker processes and merged in order", directory.name, n, n_parts)
    if n != len(obs):
        raise RuntimeError(f"merged {n} cells from {n_parts} parts; expected {len(obs)}")
    return n


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
                raise FileNotFoundError(f"{path} is missing: the store is incomplete; delete {self.dir.parent} to rebuild")
            arrays[key] = np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
        self.data, self.indices, self.indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        self.obs = pd.read_parquet(self.dir / "obs.parquet")
        if len(self.indptr) != len(self.obs) + 1:
            raise ValueError(f"{self.dir}: {len(self.indptr) - 1} rows of X but {len(self.obs)} obs rows; rebuild the store")
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
        """Rows ``rows`` as a CSR batch, without densifying.

        Sorted rows are read as runs of consecutive rows, each one contiguous slice of the value and index files
        (plain copies, no per-value gather); unsorted rows fall back to a gather of every stored value. With
        ``buffers`` the values and indices are written into reused arrays instead of fresh ones (no page
        faults on new memory; see ``read_batches`` for how long they stay valid).
        """
        rows = np.asarray(rows, dtype=np.int64)
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
        return SparseBatch(indptr, np.asarray(indices), np.asarray(values), self.y[rows], self.n_genes)

    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` as a dense float32 array (cells × genes)."""
        return self.sparse_rows(rows).to_numpy()

    def batch_order(self, batch_size: int, rng: np.random.Generator | None, block_rows: int = 1) -> list[np.ndarray]:
        """Row indices of each minibatch, each sorted for sequential reads.

        With ``rng`` the split is shuffled: blocks of ``block_rows`` consecutive rows are permuted and cut into
        batches. ``block_rows=1`` is a full permutation; larger blocks trade mixing for sequential reads when the
        split is larger than the page cache (rows are stored by dataset, so each batch still mixes
        ``batch_size / block_rows`` places of the store).
        """
        n = len(self)
        if rng is None:
            order = np.arange(n)
        elif block_rows <= 1:
            order = rng.permutation(n)
        else:
            blocks = rng.permutation(-(-n // block_rows))
            order = (blocks[:, None] * block_rows + np.arange(block_rows)).ravel()
            order = order[order < n]
        return [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]

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
        yield from _prefetched((self.sparse_rows(rows, ring) for rows in order), prefetch)

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
        self, batch_size: int, *, rng: np.random.Generator | None = None, block_rows: int = 1, prefetch: int = 2
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(dense float32 batch, label indices); shuffled when ``rng`` is given, in order otherwise."""
        batches = self.batch_order(batch_size, rng, block_rows)
        dense = ((b.to_numpy(), b.y) for b in (self.sparse_rows(rows) for rows in batches))
        yield from _prefetched(dense, prefetch)


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
    """A CSR minibatch: densify it where the model runs (``to_dense``) to move 5–10× fewer bytes."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    y: np.ndarray
    n_genes: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def to_numpy(self) -> np.ndarray:
        out = np.zeros((len(self), self.n_genes), dtype=np.float32)
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        out[rows, self.indices] = self.values
        return out

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self), self.n_genes))

    def to_dense(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Dense float32 tensor on ``device``; only the CSR arrays cross to the device."""
        import torch

        csr = torch.sparse_csr_tensor(
            torch.from_numpy(self.indptr), torch.from_numpy(self.indices.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(self.values)), size=(len(self), self.n_genes),
            check_invariants=False,  # built from a valid store by sparse_rows; the check costs a pass over nnz
        )
        return csr.to(device).to_dense()


def _prefetched(items: Iterator, depth: int) -> Iterator:
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
            counts[split] = write_split(
                source, census, obs, var_joinids, columns, len(genes), tmp / split,
                target_sum=config["normalisation"]["target_sum"],
                chunk_size=census_cfg["chunk_size"],
                organism=census_cfg["organism"],
                workers=census_cfg.get("build_workers", 1),
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
