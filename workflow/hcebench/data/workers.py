"""Writing a split with several processes: each worker reads a contiguous soma_joinid range of the cells.

``write_split`` is ``hcebench.data.shuffle.write_split_from_census`` spread over worker processes, byte for byte
the split one process writes. Each worker (``run_part_job``, in a fresh interpreter) opens the census itself and
scatters its cells' rows into its own bucket files; this process logs their progress (``write_progress``,
``read_progress``), merges their tallies of the count checks, raises the first failure as the worker's own error
(``worker_failure``), and gathers the buckets into the split.
"""

from __future__ import annotations

import ctypes
import hashlib
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
from hcebench.memory import own_peak_mb, record_worker_peaks
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


def save_read(read: CensusRead, path: Path) -> dict:
    """Hand ``read`` to a worker: its arrays to ``path`` (npz, no pickle); returns its other fields, for the job
    file. ``load_read`` is the worker's side."""
    arrays = {"var_joinids": np.asarray(read.var_joinids), "columns": np.asarray(read.columns)}
    if read.in_sum is not None:
        arrays["in_sum"] = np.asarray(read.in_sum, dtype=bool)
    np.savez(path, **arrays)
    return {
        "n_genes": read.n_genes,
        "target_sum": read.target_sum,
        "chunk_size": read.chunk_size,
        "organism": read.organism,
    }


def load_read(path: str | os.PathLike, fields: dict) -> CensusRead:
    """The ``CensusRead`` ``save_read`` wrote to ``path`` and returned as ``fields``."""
    genes = np.load(path)
    in_sum = genes["in_sum"] if "in_sum" in genes.files else None
    return CensusRead(var_joinids=genes["var_joinids"], columns=genes["columns"], in_sum=in_sum, **fields)


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
        cells = load_cells(job["cells"])
        read = load_read(job["genes"], job["read"])
        progress = Path(job["progress"])
        if "segments" in job:  # a resumable build: each segment kept on its own as it is finished
            with open_census(job["source"], chunk_size=read.chunk_size) as census:
                done = 0
                for k, a, b in job["segments"]:
                    write_segment(
                        census,
                        Path(job["resume"]),
                        k,
                        cells["joinids"][a:b],
                        cells["destinations"][a:b],
                        cells["datasets"][a:b],
                        read,
                        CountChecks(**job["checks"]),
                        on_progress=lambda n, base=done: write_progress(progress, base + n),
                    )
                    done += b - a
        else:
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
                    datasets=cells["datasets"],
                )
            Path(job["tally"]).write_text(json.dumps(checks.to_dict()))
        Path(job["peak"]).write_text(str(own_peak_mb()))  # the worker's high-water mark, as it ends
    except Exception as err:
        Path(job["error"]).write_text(json.dumps({"type": type(err).__name__, "message": str(err)}))
        raise


def start_worker(staging: Path, k: int, job: dict) -> subprocess.Popen:
    """Worker ``k``: ``job`` written to ``staging/job<k>.json`` and ``run_part_job`` started on it, its stderr to
    ``staging/stderr<k>.txt`` (which ``worker_failure`` reads). Workers are fresh interpreters, not forks of this
    process (which holds an open TileDB context and its threads) nor multiprocessing's spawn (which re-runs the
    calling script: a Snakemake script has no main guard)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    entry = "import sys; from hcebench.data.workers import run_part_job; run_part_job(sys.argv[1])"
    job_path = staging / f"job{k}.json"
    job_path.write_text(json.dumps(job))
    with open(staging / f"stderr{k}.txt", "wb") as err:
        return subprocess.Popen([sys.executable, "-c", entry, str(job_path)], env=env, stderr=err)


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


def wait_for_workers(procs: list[subprocess.Popen], staging: Path, progress: Progress, done: int = 0) -> None:
    """Wait for the workers, logging their progress (cells read, plus ``done`` kept from an earlier run); at the
    first failure raise its error (``worker_failure``); once all have ended, record their peak memory."""
    while True:
        codes = [proc.poll() for proc in procs]
        progress.update(done + sum(read_progress(staging / f"progress{k}") for k in range(len(procs))))
        if all(code == 0 for code in codes) or any(code for code in codes):
            break
        time.sleep(0.2)
    failed = [k for k, code in enumerate(codes) if code]
    if failed:
        raise worker_failure(staging, failed, codes, len(procs))
    # Each worker's own high-water mark, which it wrote as it ended: they ran at once, so the job's peak memory
    # counts their sum (hcebench.memory; the job's log ends with it).
    record_worker_peaks([read_progress(staging / f"peak{k}") for k in range(len(procs))])


def read_plan(obs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.Categorical]:
    """What the workers read, in read order: ``(obs, rows, joinids, datasets)`` with ``obs`` renumbered from 0,
    ``rows`` its rows in ascending soma_joinid (``read_order``), their soma_joinids and datasets (a categorical).
    Per cell: 8 + 8 bytes and a dataset code."""
    obs = obs.reset_index(drop=True)
    rows = read_order(obs)
    joinids = obs["soma_joinid"].to_numpy(np.int64)[rows]
    return obs, rows, joinids, datasets_in_read_order(obs, rows)


def save_cells(path: Path, joinids: np.ndarray, destinations: np.ndarray, datasets: pd.Categorical) -> None:
    """A worker's cells (``load_cells``): joinids, destination rows, and datasets as codes and names (no pickle)."""
    np.savez(
        path,
        joinids=joinids,
        destinations=destinations,
        dataset_codes=datasets.codes,
        dataset_names=np.asarray(datasets.categories, dtype=str),
    )


def load_cells(path: str | os.PathLike) -> dict:
    """``save_cells``' arrays: ``joinids``, ``destinations`` and ``datasets`` (a categorical again)."""
    with np.load(path) as arrays:
        names = arrays["dataset_names"].astype(object)
        return {
            "joinids": arrays["joinids"],
            "destinations": arrays["destinations"],
            "datasets": pd.Categorical.from_codes(arrays["dataset_codes"], names),
        }


def resume_dir(directory: str | os.PathLike) -> Path:
    """Where a build of the store (or OOD set) at ``directory`` keeps its finished work until the store is whole: the sibling
    ``<name>.partial/``, outside the rule's output, which Snakemake deletes when a job fails (``--rerun-incomplete``
    and a plain rerun both start the job again, and it resumes from what is kept there)."""
    directory = Path(directory)
    return directory.parent / f"{directory.name}.partial"


def write_split(
    source: dict,
    census,
    obs: pd.DataFrame,
    read: CensusRead,
    directory: str | os.PathLike,
    *,
    workers: int = 1,
    checks: CountChecks | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> int:
    """``write_split_from_census`` (row ``i`` is cell ``obs.iloc[i]``) with ``workers`` processes.

    With ``resume_dir`` the build survives a failure: ``write_split_resumable``.

    ``source`` is what ``census`` was opened from. Each worker opens the census itself, reads a contiguous
    soma_joinid range of the cells chunk by chunk and scatters the rows into its own bucket files by destination
    chunk; this process then writes each bucket, concatenated across workers and put in order, so the split is
    byte for byte the one a single process writes (the same buckets, the same rows in each). Worth it where
    reads wait on the network (the public Census on S3) or the machine has cores to spare; each worker holds its
    own chunk, so peak memory is about ``workers`` times one process's. ``checks`` checks every chunk read
    (``read_normalised``) and receives every worker's tally.
    """
    if resume_dir is not None:
        return write_split_resumable(
            source, census, obs, read, directory, Path(resume_dir), workers=workers, checks=checks
        )
    n_parts = min(max(workers, 1), -(-len(obs) // read.chunk_size))
    if n_parts <= 1:
        return write_split_from_census(census, obs, read, directory, checks=checks)
    if checks is None:
        checks = CountChecks("census X/raw", integer=True, fix=CENSUS_COUNTS_FIX)
    directory = Path(directory)
    obs, rows, joinids, datasets = read_plan(obs)
    staging = directory.parent / f".{directory.name}.buckets"
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's buckets: appending to them would corrupt
    staging.mkdir(parents=True)
    settings = save_read(read, staging / "genes.npz")
    bounds = np.linspace(0, len(obs), n_parts + 1).round().astype(int)
    buckets = [staging / f"part{k}" for k in range(n_parts)]
    procs = []
    progress = Progress(len(obs), f"{directory.name}: read from the census by {n_parts} workers", log)
    try:
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            save_cells(staging / f"cells{k}.npz", joinids[a:b], rows[a:b], datasets[a:b])
            job = {
                "parent": os.getpid(),
                "source": source,
                "cells": str(staging / f"cells{k}.npz"),
                "genes": str(staging / "genes.npz"),
                "read": settings,
                "buckets": str(buckets[k]),
                "progress": str(staging / f"progress{k}"),
                "tally": str(staging / f"tally{k}.json"),
                "peak": str(staging / f"peak{k}"),
                "error": str(staging / f"error{k}.json"),
                "checks": {"what": checks.what, "integer": checks.integer, "fix": checks.fix},
            }
            procs.append(start_worker(staging, k, job))
        wait_for_workers(procs, staging, progress)
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


#: A resumable build keeps its work in at most this many segments per split (each a whole number of census read
#: chunks): a rerun after a failure reads again only the segments that were not finished.
MAX_SEGMENTS = 64
#: The files of a split, as ``SplitWriter`` writes them (linked into the store when the build completes).
PLAN_FILE = "plan.json"


def segment_bounds(n_cells: int, chunk_size: int, max_segments: int = MAX_SEGMENTS) -> np.ndarray:
    """Cell offsets (in read order) of a split's segments: whole read chunks, at most ``max_segments`` segments."""
    n_chunks = -(-n_cells // chunk_size)
    per_segment = max(1, -(-n_chunks // max_segments))
    bounds = list(range(0, n_cells, per_segment * chunk_size)) + [n_cells]
    return np.asarray(bounds if n_cells else [0, 0], dtype=np.int64)


def plan_fingerprint(source: dict, joinids: np.ndarray, rows: np.ndarray, read: CensusRead) -> str:
    """What a split's kept segments were read for: its cells, their order, the genes and the read's settings. Kept
    work whose fingerprint differs (another selection, gene list or chunk size) is discarded, never reused."""
    digest = hashlib.sha256()
    for array in (joinids, rows, np.asarray(read.var_joinids), np.asarray(read.columns)):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    settings = [read.n_genes, read.target_sum, read.chunk_size, read.organism, source]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_segment(
    census,
    resume: Path,
    k: int,
    joinids: np.ndarray,
    destinations: np.ndarray,
    datasets: np.ndarray,
    read: CensusRead,
    checks: CountChecks,
    on_progress=None,
) -> None:
    """Read segment ``k`` of a split (its cells ``joinids``, ascending) into bucket files and keep it: written into
    ``seg<k>.tmp`` and renamed to ``seg<k>`` (with its count-check tally) once whole, so a segment directory is
    either complete or absent."""
    final = resume / f"seg{k:05d}"
    tmp = resume / f"seg{k:05d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    scatter_to_buckets(
        census, joinids, destinations, read, tmp, on_progress=on_progress, checks=checks, datasets=datasets
    )
    (tmp / "tally.json").write_text(json.dumps(checks.to_dict()))
    os.replace(tmp, final)


def write_split_resumable(
    source: dict,
    census,
    obs: pd.DataFrame,
    read: CensusRead,
    directory: str | os.PathLike,
    resume: Path,
    *,
    workers: int = 1,
    checks: CountChecks | None = None,
) -> int:
    """``write_split`` whose finished work survives a failure (a killed job, a lost node, a census error hours in).

    The split's cells, in read order, are cut into segments of whole read chunks (``segment_bounds``); each is
    read and scattered into its own bucket files under ``resume`` and kept once whole (``write_segment``). The
    split is then gathered from every segment's buckets into ``resume/split`` (kept too), and its files are
    linked into ``directory``. A rerun with the same ``resume`` skips the finished segments (or the whole read,
    once the split is gathered), so it reads only what was not done; the bytes are those of an uninterrupted
    build, since every row is normalised on its own and the gather puts rows in order by destination. Kept work
    read for other cells or settings is discarded (``plan_fingerprint``). The caller removes ``resume`` once the
    store is complete. Disk: the split's buckets plus the gathered split, until the caller removes them.
    """
    if checks is None:
        checks = CountChecks("census X/raw", integer=True, fix=CENSUS_COUNTS_FIX)
    directory = Path(directory)
    obs, rows, joinids, datasets = read_plan(obs)
    fingerprint = plan_fingerprint(source, joinids, rows, read)
    plan_path = resume / PLAN_FILE
    if resume.exists():
        try:
            kept = json.loads(plan_path.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError):
            kept = None
        if kept != fingerprint:
            log.warning(
                "%s: kept work in %s was read for other cells or settings; starting over",
                directory.name,
                resume,
            )
            shutil.rmtree(resume)
    resume.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps({"fingerprint": fingerprint, "cells": int(len(obs))}))
    for stale in resume.glob("*.tmp"):  # a killed run's unfinished segment or gather
        shutil.rmtree(stale, ignore_errors=True)
    gathered = resume / "split"
    tally_path = resume / "tally.json"
    if gathered.is_dir() and tally_path.exists():
        log.info("%s: gathered by an earlier run (%s); reusing it", directory.name, gathered)
    else:
        bounds = segment_bounds(len(obs), read.chunk_size)
        segments = [(k, int(a), int(b)) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
        todo = [seg for seg in segments if not (resume / f"seg{seg[0]:05d}").is_dir()]
        done_cells = sum(b - a for k, a, b in segments) - sum(b - a for k, a, b in todo)
        if len(todo) < len(segments):
            log.info(
                "%s: resuming: %d of %d segments (%d of %d cells) kept from an earlier run",
                directory.name,
                len(segments) - len(todo),
                len(segments),
                done_cells,
                len(obs),
            )
        if todo:
            _read_segments(
                source,
                census,
                resume,
                todo,
                joinids,
                rows,
                datasets,
                read,
                workers,
                checks,
                done_cells,
                len(obs),
                directory.name,
            )
        split_tally = CountChecks(checks.what, integer=checks.integer, fix=checks.fix)
        for k, _, _ in segments:
            split_tally.merge(json.loads((resume / f"seg{k:05d}" / "tally.json").read_text()))
        tmp = resume / "split.tmp"
        n = gather_buckets(
            [resume / f"seg{k:05d}" for k, _, _ in segments],
            obs,
            read.n_genes,
            tmp,
            read.chunk_size,
            keep=True,
        )
        if n != len(obs):
            raise RuntimeError(f"gathered {n} cells from the kept segments of {resume}; expected {len(obs)}")
        tally_path.write_text(json.dumps(split_tally.to_dict()))
        os.replace(tmp, gathered)
        for k, _, _ in segments:  # the gathered split holds them now
            shutil.rmtree(resume / f"seg{k:05d}", ignore_errors=True)
    checks.merge(json.loads(tally_path.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    for (
        path
    ) in gathered.iterdir():  # linked, not moved: the kept split survives a failure until the store is whole
        target = directory / path.name
        try:
            os.link(path, target)
        except OSError:  # another file system, or one without hard links
            shutil.copy2(path, target)
    return len(obs)


def _read_segments(
    source, census, resume, todo, joinids, rows, datasets, read, workers, checks, done_cells, n_cells, name
) -> None:
    """Read the unfinished segments ``todo`` (``(k, first, stop)`` in read order): in this process, or spread in
    contiguous groups over ``workers`` processes; progress (cells, rate, time left) counts from the kept cells."""
    progress = Progress(n_cells, f"{name}: read from the census", log, start=done_cells)
    n_parts = min(max(workers, 1), len(todo))
    if n_parts <= 1:
        base = done_cells
        for k, a, b in todo:
            write_segment(
                census,
                resume,
                k,
                joinids[a:b],
                rows[a:b],
                datasets[a:b],
                read,
                CountChecks(checks.what, integer=checks.integer, fix=checks.fix),
                on_progress=lambda n, base=base: progress.update(base + n),
            )
            base += b - a
        return
    staging = resume / "workers.tmp"
    staging.mkdir()
    settings = save_read(read, staging / "genes.npz")
    save_cells(staging / "cells.npz", joinids, rows, datasets)
    groups = np.array_split(np.arange(len(todo)), n_parts)
    procs = []
    progress.what = f"{name}: read from the census by {n_parts} workers"
    try:
        for g, group in enumerate(groups):
            job = {
                "parent": os.getpid(),
                "source": source,
                "cells": str(staging / "cells.npz"),
                "genes": str(staging / "genes.npz"),
                "read": settings,
                "segments": [list(todo[i]) for i in group],
                "resume": str(resume),
                "progress": str(staging / f"progress{g}"),
                "peak": str(staging / f"peak{g}"),
                "error": str(staging / f"error{g}.json"),
                "checks": {"what": checks.what, "integer": checks.integer, "fix": checks.fix},
            }
            procs.append(start_worker(staging, g, job))
        wait_for_workers(procs, staging, progress, done_cells)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(staging, ignore_errors=True)
