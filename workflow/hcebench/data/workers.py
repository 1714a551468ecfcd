"""Writing a split with several processes: each worker reads a contiguous soma_joinid range of the cells.

``write_split`` is ``hcebench.data.shuffle.write_split_from_census`` spread over worker processes, byte for byte
the split one process writes. Each worker (``run_part_job``, in a fresh interpreter) opens the census itself and
scatters its cells' rows into its own bucket files; this process logs their progress (``write_progress``,
``read_progress``), merges their tallies of the count checks, raises the first failure as the worker's own error
(``worker_failure``), and gathers the buckets into the split.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hcebench import errors
from hcebench.data.census import open_census
from hcebench.data.checks import CountChecks
from hcebench.data.reads import CENSUS_COUNTS_FIX, CensusRead, datasets_in_read_order, read_order
from hcebench.data.shuffle import gather_buckets, scatter_to_buckets, write_split_from_census
from hcebench.progress import Progress

log = logging.getLogger(__name__)


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


#: prctl(2) option: the signal this process gets when the thread that started it exits.
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its parent exits (Linux ``prctl(PR_SET_PDEATHSIG)``), and exit
    now if the parent is already gone: a worker must not go on reading the census, re-parented to init, after the
    store build that started it was killed (SIGKILL runs no cleanup in the parent). Elsewhere only the check is made.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit(f"store build worker: its parent process {parent_pid} is gone; stopping")


def run_part_job(job_path: str) -> None:
    """Entry point of one ``write_split`` worker process: read its cells (a contiguous soma_joinid range) and
    scatter them into its own bucket directory; the job file names the cells, the census, the buckets and the
    ``CensusRead`` (its arrays in ``job["genes"]``, its other fields in ``job["read"]``).

    The worker hands back its tally of the count checks (``job["tally"]``) and, if it fails, its error's class
    and message (``job["error"]``), so the parent raises the same one-line error a single process would.
    """
    job = json.loads(Path(job_path).read_text())
    die_with_parent(job["parent"])
    try:
        cells = np.load(job["cells"])
        genes = np.load(job["genes"])
        in_sum = genes["in_sum"] if "in_sum" in genes.files else None
        read = CensusRead(
            var_joinids=genes["var_joinids"], columns=genes["columns"], in_sum=in_sum, **job["read"]
        )
        progress = Path(job["progress"])
        checks = CountChecks(**job["checks"])
        with open_census(job["source"], chunk_size=read.chunk_size) as census:
            scatter_to_buckets(
                census,
                cells["joinids"],
                cells["destinations"],
                read,
                Path(job["buckets"]),
                on_progress=lambda done: write_progress(progress, done),
                checks=checks,
                datasets=cells["datasets"].astype(object),
            )
        Path(job["tally"]).write_text(json.dumps(checks.to_dict()))
    except Exception as err:
        Path(job["error"]).write_text(json.dumps({"type": type(err).__name__, "message": str(err)}))
        raise


def worker_failure(staging: Path, failed: list[int], codes: list[int | None], n_parts: int) -> Exception:
    """The error to raise for failed workers: the first one's own error class and message where it is one of
    ``hcebench.errors`` (a data or census error the user can fix), else a ``RuntimeError`` with its stderr."""
    k = failed[0]
    try:  # the worker may have failed while writing it (a full disk): then its stderr says why
        error = json.loads((staging / f"error{k}.json").read_text())
    except (OSError, ValueError):
        error = {"type": None}
    cls = getattr(errors, error["type"], None) if error["type"] else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(f"store build worker {k} of {n_parts}: {error['message']}")
    try:
        tail = (staging / f"stderr{k}.txt").read_text(errors="replace")[-3000:]
    except OSError:
        tail = "(its stderr could not be read)"
    return RuntimeError(f"store build worker(s) {failed} of {n_parts} failed (exit {codes[k]}):\n{tail}")


def write_split(
    source: dict,
    census,
    obs: pd.DataFrame,
    read: CensusRead,
    directory: str | os.PathLike,
    *,
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
    n_parts = min(max(workers, 1), -(-len(obs) // read.chunk_size))
    if n_parts <= 1:
        return write_split_from_census(census, obs, read, directory, checks=checks)
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
    arrays = {"var_joinids": np.asarray(read.var_joinids), "columns": np.asarray(read.columns)}
    if read.in_sum is not None:
        arrays["in_sum"] = np.asarray(read.in_sum, dtype=bool)
    np.savez(staging / "genes.npz", **arrays)
    settings = {
        "n_genes": read.n_genes,
        "target_sum": read.target_sum,
        "chunk_size": read.chunk_size,
        "organism": read.organism,
    }
    bounds = np.linspace(0, len(obs), n_parts + 1).round().astype(int)
    buckets = [staging / f"part{k}" for k in range(n_parts)]
    # Workers are fresh interpreters (not forks of this process, which holds an open TileDB context and its
    # threads; not multiprocessing's spawn, which re-runs the calling script: a Snakemake script has no main guard).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    entry = "import sys; from hcebench.data.workers import run_part_job; run_part_job(sys.argv[1])"
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
                "parent": os.getpid(),
                "source": source,
                "cells": str(staging / f"cells{k}.npz"),
                "genes": str(staging / "genes.npz"),
                "read": settings,
                "buckets": str(buckets[k]),
                "progress": str(staging / f"progress{k}"),
                "tally": str(staging / f"tally{k}.json"),
                "error": str(staging / f"error{k}.json"),
                "checks": {"what": checks.what, "integer": checks.integer, "fix": checks.fix},
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
        n = gather_buckets(buckets, obs, read.n_genes, directory, read.chunk_size)
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
