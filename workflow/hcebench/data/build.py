"""Building a split directory from the census: read counts in chunks, align genes, normalise, write.

``build_training_store`` writes the training store (train/val/test) of the selected cells, each split in scTab's
permuted cell order (``hcebench.data.selection.store_order``); the OOD set uses ``write_split`` the same way, in
soma_joinid order. The census is always read in soma_joinid-sorted chunks of ``census.chunk_size`` cells
(contiguous reads); a permuted order is reached by an external shuffle through on-disk buckets, so memory is
bounded by one chunk per process whatever the number of cells. ``write_split`` can spread contiguous cell ranges
over worker processes, byte for byte the split one process writes. The store's files are ``hcebench.data.store``'s
(``StoreWriter``, ``SplitWriter``).

Every chunk of counts is checked as it is read (``hcebench.data.checks.CountChecks``): a NaN, infinite, negative or
fractional raw count is an error naming its dataset, and all-zero cells are tallied per dataset, reported in
the store's meta (``data_checks``) and an error past ``filters.max_zero_cell_fraction``. Long reads and writes log their
progress every minute (``hcebench.progress``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench import errors
from hcebench.data.census import census_release, iter_counts, open_census, read_var
from hcebench.data.checks import CountChecks
from hcebench.data.selection import balanced_class_weights, max_fraction, store_order
from hcebench.data.store import SplitWriter, StoreWriter, normalise
from hcebench.io import atomic_path
from hcebench.layout import STORE_SPLITS
from hcebench.progress import Progress

log = logging.getLogger(__name__)

#: What to do about bad raw counts in a census, appended to the error that names them.
CENSUS_COUNTS_FIX = (
    "A Census's X/raw holds raw integer counts: check that census.train_release / census.ood_release (or "
    "census.train_uri / census.ood_uri) is an unmodified Census release, and report the dataset to CELLxGENE."
)


def census_count_checks(release: str) -> CountChecks:
    """The checks of counts read from census ``release``'s X/raw: raw, so non-negative integers."""
    return CountChecks(f"census {release} X/raw", integer=True, fix=CENSUS_COUNTS_FIX)


def datasets_in_read_order(obs: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The dataset_id of each cell in the order it is read (``rows``), for naming datasets in data errors."""
    if "dataset_id" not in obs:
        return np.full(len(rows), "(unknown dataset)", dtype=object)
    return obs["dataset_id"].astype(str).to_numpy(dtype=object)[rows]


def read_normalised(
    census,
    joinids: np.ndarray,
    var_joinids: np.ndarray,
    columns: np.ndarray,
    n_genes: int,
    *,
    target_sum: float,
    chunk_size: int,
    organism: str,
    checks: CountChecks | None = None,
    datasets: np.ndarray | None = None,
) -> Iterator[sp.csr_matrix]:
    """The store rows of cells ``joinids`` (ascending soma_joinids: contiguous reads), ``chunk_size`` at a time.

    ``var_joinids[c]`` is read into store column ``columns[c]``; store columns that no var maps to stay zero
    (genes the release lacks). Normalisation uses the row sum over the store's genes, so training and OOD
    cells are scaled the same way whatever else their release measured. Each chunk's raw counts go through
    ``checks`` first (``datasets[i]`` is the dataset of cell ``joinids[i]``), which raises on bad values and
    tallies all-zero cells; without ``checks`` they are checked all the same, untallied.
    """
    if checks is None:
        checks = CountChecks("census X/raw", integer=True, fix=CENSUS_COUNTS_FIX)
    if datasets is None:
        datasets = np.full(len(joinids), "(unknown dataset)", dtype=object)
    start = 0
    for ids, counts in iter_counts(census, joinids, var_joinids, chunk_size, organism=organism):
        if not np.array_equal(joinids[start : start + len(ids)], ids):
            raise RuntimeError("census reader returned cells out of the requested order")
        checks.check(counts, datasets[start : start + len(ids)])
        start += len(ids)
        counts = counts.tocoo()
        aligned = sp.csr_matrix(
            (counts.data, (counts.row, columns[counts.col])), shape=(len(ids), n_genes), dtype=np.float32
        )
        yield normalise(aligned, target_sum)
    if start != len(joinids):
        raise RuntimeError(f"census reader returned {start} of {len(joinids)} cells")


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
    var_joinids: np.ndarray,
    columns: np.ndarray,
    n_genes: int,
    buckets: Path,
    *,
    target_sum: float,
    chunk_size: int,
    organism: str,
    on_progress: Callable[[int], None] | None = None,
    checks: CountChecks | None = None,
    datasets: np.ndarray | None = None,
) -> None:
    """Read cells ``joinids`` (ascending) in chunks and append each normalised row to the bucket of its
    destination: bucket file ``buckets/<b>.bin`` collects the rows whose destination row in the split lies in
    ``[b · chunk_size, (b + 1) · chunk_size)``, so no bucket holds more than one chunk of rows. ``checks`` and
    ``datasets``: as ``read_normalised``."""
    buckets.mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        target_sum=target_sum, chunk_size=chunk_size, organism=organism, checks=checks, datasets=datasets
    )
    start = 0
    for x in read_normalised(census, joinids, var_joinids, columns, n_genes, **kwargs):
        dest = destinations[start : start + x.shape[0]]
        start += x.shape[0]
        bucket = dest // chunk_size
        by_bucket = np.argsort(bucket, kind="stable")
        x, dest, bucket = x[by_bucket], dest[by_bucket], bucket[by_bucket]
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(bucket)], strict=True):
            append_bucket(buckets / f"{bucket[lo]}.bin", dest[lo:hi], x[lo:hi])
        if on_progress is not None:
            on_progress(start)


def gather_buckets(
    buckets: list[Path], obs: pd.DataFrame, n_genes: int, directory: str | os.PathLike, chunk_size: int
) -> int:
    """Write the split from the bucket directories ``buckets`` (each filled by ``scatter_to_buckets``): for each
    bucket in turn, its rows from every directory, ordered by destination, with their rows of ``obs``.

    Each bucket file is deleted once written, so the disk holds the split about once, not twice.
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
        for path in paths:
            path.unlink(missing_ok=True)
        progress.update(hi)
    return writer.close()


def read_order(obs: pd.DataFrame) -> np.ndarray:
    """Rows of ``obs`` in soma_joinid order (stable): the order the census is read in. Read position ``k`` is
    destination row ``read_order(obs)[k]`` of the split."""
    return np.argsort(obs["soma_joinid"].to_numpy(np.int64), kind="stable")


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
    checks: CountChecks | None = None,
) -> int:
    """Stream ``obs``'s cells from SOMA into a split directory whose row ``i`` is cell ``obs.iloc[i]``.

    The census is read in soma_joinid-sorted chunks of ``chunk_size`` cells (contiguous reads; see
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
    kwargs = dict(
        target_sum=target_sum,
        chunk_size=chunk_size,
        organism=organism,
        checks=checks,
        datasets=datasets_in_read_order(obs, rows),
    )
    progress = Progress(len(obs), f"{directory.name}: read from the census", log)
    if np.array_equal(rows, np.arange(len(obs))):
        writer = SplitWriter(directory, n_genes)
        start = 0
        for x in read_normalised(census, joinids, var_joinids, columns, n_genes, **kwargs):
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
            var_joinids,
            columns,
            n_genes,
            staging,
            on_progress=progress.update,
            **kwargs,
        )
        return gather_buckets([staging], obs, n_genes, directory, chunk_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_progress(path: Path, done: int) -> None:
    """Record a worker's cells done where the parent process polls it (replaced whole: never read half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(done))
    os.replace(tmp, path)


def read_progress(path: Path) -> int:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0


def run_part_job(job_path: str) -> None:
    """Entry point of one ``write_split`` worker process: read its cells (a contiguous soma_joinid range) and
    scatter them into its own bucket directory; the job file names the cells, genes, census and buckets.

    The worker hands back its tally of the count checks (``job["tally"]``) and, if it fails, its error's class
    and message (``job["error"]``), so the parent raises the same one-line error a single process would.
    """
    job = json.loads(Path(job_path).read_text())
    try:
        cells = np.load(job["cells"])
        genes = np.load(job["genes"])
        progress = Path(job["progress"])
        checks = CountChecks(**job["checks"])
        with open_census(job["source"], chunk_size=job["kwargs"]["chunk_size"]) as census:
            scatter_to_buckets(
                census,
                cells["joinids"],
                cells["destinations"],
                genes["var_joinids"],
                genes["columns"],
                job["n_genes"],
                Path(job["buckets"]),
                on_progress=lambda done: write_progress(progress, done),
                checks=checks,
                datasets=cells["datasets"].astype(object),
                **job["kwargs"],
            )
        Path(job["tally"]).write_text(json.dumps(checks.to_dict()))
    except Exception as err:
        Path(job["error"]).write_text(json.dumps({"type": type(err).__name__, "message": str(err)}))
        raise


def worker_failure(staging: Path, failed: list[int], codes: list[int | None], n_parts: int) -> Exception:
    """The error to raise for failed workers: the first one's own error class and message where it is one of
    ``hcebench.errors`` (a data or census error the user can fix), else a ``RuntimeError`` with its stderr."""
    k = failed[0]
    error_file = staging / f"error{k}.json"
    if error_file.exists():
        error = json.loads(error_file.read_text())
        cls = getattr(errors, error["type"], None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(f"store build worker {k} of {n_parts}: {error['message']}")
    tail = (staging / f"stderr{k}.txt").read_text(errors="replace")[-3000:]
    return RuntimeError(f"store build worker(s) {failed} of {n_parts} failed (exit {codes[k]}):\n{tail}")


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
    checks: CountChecks | None = None,
) -> int:
    """``write_split_from_census`` (row ``i`` is cell ``obs.iloc[i]``) with ``workers`` processes.

    ``source`` is what ``census`` was opened from. Each worker opens the census itself, reads a contiguous
    soma_joinid range of the cells chunk by chunk and scatters the rows into its own bucket files by destination
    chunk; this process then writes each bucket, concatenated across workers and put in order, so the split is
    byte for byte the one a single process writes (the same buckets, the same rows in each). Worth it where
    reads wait on the network (the public Census on S3) or the machine has cores to spare; each worker holds its
    own chunk, so peak memory is about ``workers`` times one process's. ``checks`` checks every chunk read
    (``read_normalised``) and receives every worker's tally.
    """
    kwargs = dict(target_sum=target_sum, chunk_size=chunk_size, organism=organism)
    n_parts = min(max(workers, 1), -(-len(obs) // chunk_size))
    if n_parts <= 1:
        return write_split_from_census(
            census, obs, var_joinids, columns, n_genes, directory, checks=checks, **kwargs
        )
    if checks is None:
        checks = CountChecks("census X/raw", integer=True, fix=CENSUS_COUNTS_FIX)
    directory = Path(directory)
    obs = obs.reset_index(drop=True)
    rows = read_order(obs)
    joinids = obs["soma_joinid"].to_numpy(np.int64)[rows]
    datasets = datasets_in_read_order(obs, rows).astype(str)  # a plain string array: saved without pickle
    staging = directory.parent / f".{directory.name}.buckets"
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's buckets: appending to them would corrupt
    staging.mkdir(parents=True)
    np.savez(staging / "genes.npz", var_joinids=np.asarray(var_joinids), columns=np.asarray(columns))
    bounds = np.linspace(0, len(obs), n_parts + 1).round().astype(int)
    buckets = [staging / f"part{k}" for k in range(n_parts)]
    # Workers are fresh interpreters (not forks of this process, which holds an open TileDB context and its
    # threads; not multiprocessing's spawn, which re-runs the calling script: a Snakemake script has no main guard).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    entry = "import sys; from hcebench.data.build import run_part_job; run_part_job(sys.argv[1])"
    procs = []
    progress = Progress(len(obs), f"{directory.name}: read from the census by {n_parts} workers", log)
    try:
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            np.savez(
                staging / f"cells{k}.npz",
                joinids=joinids[a:b],
                destinations=rows[a:b],
                datasets=datasets[a:b],
            )
            job = {
                "source": source,
                "cells": str(staging / f"cells{k}.npz"),
                "genes": str(staging / "genes.npz"),
                "n_genes": n_genes,
                "buckets": str(buckets[k]),
                "progress": str(staging / f"progress{k}"),
                "tally": str(staging / f"tally{k}.json"),
                "error": str(staging / f"error{k}.json"),
                "checks": {"what": checks.what, "integer": checks.integer, "fix": checks.fix},
                "kwargs": kwargs,
            }
            (staging / f"job{k}.json").write_text(json.dumps(job))
            with open(staging / f"stderr{k}.txt", "wb") as err:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", entry, str(staging / f"job{k}.json")], env=env, stderr=err
                    )
                )
        while True:  # wait for the workers, logging their progress; stop at the first failure
            codes = [proc.poll() for proc in procs]
            progress.update(sum(read_progress(staging / f"progress{k}") for k in range(n_parts)))
            if all(code == 0 for code in codes) or any(code for code in codes):
                break
            time.sleep(0.2)
        failed = [k for k, code in enumerate(codes) if code]
        if failed:
            raise worker_failure(staging, failed, codes, n_parts)
        for k in range(n_parts):
            checks.merge(json.loads((staging / f"tally{k}.json").read_text()))
        n = gather_buckets(buckets, obs, n_genes, directory, chunk_size)
    finally:  # on success, or this process failing or signalled: stop workers that still run, drop the buckets
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "%s: %d cells read by %d worker processes, written in the split's order", directory.name, n, n_parts
    )
    if n != len(obs):
        raise RuntimeError(f"wrote {n} cells from {n_parts} workers; expected {len(obs)}")
    return n


#: Gene-list columns that hold the symbol (scTab's features.parquet: gene_names).
GENE_NAME_COLUMNS = ("gene_names", "feature_name")


def read_gene_list(source: str, var: pd.DataFrame) -> pd.DataFrame:
    """The gene list ``genes.source`` names, in its order, as (feature_id, feature_name).

    ``all`` is the release's var sorted by feature_id; ``bundled:sctab_protein_coding`` or a parquet path is a
    table indexed by Ensembl id with the symbol in a ``gene_names`` (scTab) or ``feature_name`` column.
    """
    if source == "all":
        genes = var[["feature_id", "feature_name"]].sort_values("feature_id")
        return genes.reset_index(drop=True)
    if source == "bundled:sctab_protein_coding":
        path = Path(str(resources.files("hcebench") / "resources" / "sctab_features_protein_coding.parquet"))
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"genes.source {source!r} does not exist; give a parquet indexed by Ensembl id"
            )
    wanted = pd.read_parquet(path)
    name_column = next((c for c in GENE_NAME_COLUMNS if c in wanted.columns), None)
    names = wanted[name_column].astype(str).to_numpy() if name_column else np.full(len(wanted), "")
    return pd.DataFrame({"feature_id": wanted.index.astype(str), "feature_name": names})


def gene_match_counts(wanted: pd.DataFrame, var: pd.DataFrame) -> dict:
    """How many genes of ``var`` each matching rule finds for the list ``wanted`` (``read_gene_list``).

    ``feature_id`` / ``feature_name``: var rows whose Ensembl id / symbol the list holds; ``id_not_name`` and
    ``name_not_id``: the feature_ids one rule finds and the other does not (a renamed symbol; a changed id, or a
    second id of a symbol the list holds once).
    """
    by_id = var["feature_id"].isin(set(wanted["feature_id"]))
    by_name = var["feature_name"].isin(set(wanted["feature_name"]) - {""})
    return {
        "feature_id": int(by_id.sum()),
        "feature_name": int(by_name.sum()),
        "id_not_name": sorted(var.loc[by_id & ~by_name, "feature_id"].astype(str)),
        "name_not_id": sorted(var.loc[by_name & ~by_id, "feature_id"].astype(str)),
    }


def resolve_genes(
    source: str, var: pd.DataFrame, *, match: str = "feature_id", order: str = "list"
) -> pd.DataFrame:
    """The store's genes in order, as (feature_id, feature_name), from ``genes.source`` and the release's var.

    ``match`` (``genes.match``): ``feature_id`` keeps the var rows whose Ensembl id the list holds;
    ``feature_name`` the var rows whose symbol it holds (scTab's ``var_value_filter="feature_name in list"``:
    a symbol with several ids keeps them all). ``order`` (``genes.order``): ``list`` is the list's order (a
    symbol's ids in var order at its first place in the list; for ``all``, sorted by feature_id); ``census`` is
    the release's var order (soma_joinid), which scTab kept (19,331 of its 19,357 genes in Census 2023-05-15).
    Each row is one var row, so feature_id is unique even where feature_name is not.
    """
    if match not in ("feature_id", "feature_name"):
        raise ValueError(f"genes.match must be 'feature_id' or 'feature_name', not {match!r}")
    if order not in ("list", "census"):
        raise ValueError(f"genes.order must be 'list' or 'census', not {order!r}")
    wanted = read_gene_list(source, var)
    if source != "all" and match == "feature_name" and (wanted["feature_name"] == "").all():
        raise ValueError(
            f"genes.match is feature_name but genes.source {source!r} has no symbol column "
            f"(one of {list(GENE_NAME_COLUMNS)}); add one or set genes.match: feature_id"
        )
    key = "feature_id" if source == "all" else match
    rank = (
        pd.Series(np.arange(len(wanted)), index=wanted[key]).groupby(level=0).min().drop("", errors="ignore")
    )
    census_order = var["soma_joinid"].to_numpy() if "soma_joinid" in var else np.arange(len(var))
    found = var.assign(_rank=var[key].astype(str).map(rank), _census=census_order).dropna(subset=["_rank"])
    if found.empty:
        raise ValueError(
            f"none of the {len(wanted)} genes of genes.source {source!r} is in the census var "
            f"(matched by genes.match: {match}); check the list against the release, or try the other genes.match"
        )
    found = found.sort_values(["_census"] if order == "census" else ["_rank", "_census"], kind="stable")
    return found[["feature_id", "feature_name"]].astype(str).reset_index(drop=True)


def build_training_store(
    source: dict,
    cells: pd.DataFrame,
    labels: list[str],
    config: dict,
    directory: str | os.PathLike,
) -> dict:
    """Write the training store (train/val/test splits of the selected cells) into ``directory`` atomically.

    Each split is written in scTab's order: its cells in soma_joinid order, permuted by one
    ``default_rng(config["split"]["seed"])`` for train, then val, then test (``store_order``), so consecutive
    rows, and hence each block a loader reads, are random cells of the split rather than runs of one dataset.
    """
    census_cfg = config["census"]
    seed = config.get("split", {}).get("seed")
    if seed is None:
        raise ValueError(
            "build_training_store needs split.seed in its settings: scTab permutes each split's cells with it "
            "before writing (pass the config's split section, as the build_store rule does)"
        )
    max_zero_cells = max_fraction(config.get("filters", {}), "max_zero_cell_fraction")
    cells = cells.sort_values("soma_joinid", kind="stable").reset_index(drop=True)  # the release's order
    order = store_order(cells["split"], seed)
    with (
        open_census(source, chunk_size=census_cfg["chunk_size"]) as census,
        atomic_path(directory, is_dir=True) as tmp,
    ):
        store = StoreWriter(tmp)
        release = census_release(source, census)
        checks = census_count_checks(release)
        var = read_var(census, organism=census_cfg["organism"])
        genes_cfg = config["genes"]
        genes = resolve_genes(
            genes_cfg["source"],
            var,
            match=genes_cfg.get("match", "feature_id"),
            order=genes_cfg.get("order", "list"),
        )
        joinid_of = var.set_index("feature_id")["soma_joinid"]
        var_joinids = joinid_of.loc[genes["feature_id"]].to_numpy(np.int64)
        columns = np.arange(len(genes))
        store.write_genes(genes)
        counts = {}
        label_index = {t: i for i, t in enumerate(labels)}
        keep = [c for c in cells.columns if c != "is_primary_data"]
        for split in STORE_SPLITS:
            obs = cells.iloc[order[split]][keep].reset_index(drop=True)
            obs["label_index"] = obs["label"].map(label_index).astype(np.int64)
            counts[split] = write_split(
                source,
                census,
                obs,
                var_joinids,
                columns,
                len(genes),
                store.split_dir(split),
                target_sum=config["normalisation"]["target_sum"],
                chunk_size=census_cfg["chunk_size"],
                organism=census_cfg["organism"],
                workers=census_cfg.get("build_workers", 1),
                checks=checks,
            )
        data_checks = checks.zero_cell_report(max_zero_cells)
        train_y = cells.loc[cells["split"] == "train", "label"].map(label_index).to_numpy(np.int64)
        weights = balanced_class_weights(train_y, len(labels))
        store.write_class_weights(weights)
        meta = {
            "census_release": release,
            "n_genes": int(len(genes)),
            "labels": list(labels),
            "n_cells": counts,
            "labels_without_training_cells": [labels[i] for i in np.flatnonzero(weights == 0)],
            "target_sum": config["normalisation"]["target_sum"],
            # scTab's on-disk order: each split's cells permuted with default_rng(split_seed), train, val, test.
            "cell_order": "permuted",
            "split_seed": int(seed),
            "genes_source": genes_cfg["source"],
            "genes_match": genes_cfg.get("match", "feature_id"),
            "genes_order": genes_cfg.get("order", "list"),
            # Both rules' counts, always: the paper's 19,331 is scTab's feature_name match on Census 2023-05-15.
            "genes_matched": gene_match_counts(read_gene_list(genes_cfg["source"], var), var),
            # Raw counts checked as read (hcebench.data.checks): all-zero cells per dataset, and the limit.
            "data_checks": data_checks,
        }
        store.write_meta(meta)
    return meta
