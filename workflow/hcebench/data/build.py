"""Building a split directory from the census: read counts in chunks, align genes, normalise, write.

``build_training_store`` writes the training store (train/val/test) of the selected cells; the OOD set uses
``write_split`` the same way. Memory is bounded by one chunk of ``census.chunk_size`` cells per process;
``write_split`` can spread contiguous cell ranges over worker processes and merge them in order, byte for byte
the split one process writes. The store format itself (``SplitWriter``, ``SplitData``) is ``hcebench.data.store``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from hcebench.data.census import census_release, iter_counts, open_census, read_var
from hcebench.data.selection import balanced_class_weights
from hcebench.data.store import X_FILES, SplitWriter, normalise
from hcebench.io import atomic_path, write_json
from hcebench.layout import STORE_SPLITS

log = logging.getLogger(__name__)


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


def run_part_job(job_path: str) -> None:
    """Entry point of one ``write_split`` worker process: the job file names its cells, genes and census."""
    job = json.loads(Path(job_path).read_text())
    obs = pd.read_parquet(job["obs"])
    genes = np.load(job["genes"])
    with open_census(job["source"]) as census:
        write_split_from_census(
            census,
            obs,
            genes["var_joinids"],
            genes["columns"],
            job["n_genes"],
            job["directory"],
            **job["kwargs"],
        )


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
    obs = obs.sort_values("soma_joinid").reset_index(drop=True)
    directory = Path(directory)
    staging = directory.parent / f".{directory.name}.parts"
    staging.mkdir(parents=True, exist_ok=True)
    np.savez(staging / "genes.npz", var_joinids=np.asarray(var_joinids), columns=np.asarray(columns))
    bounds = np.linspace(0, len(obs), n_parts + 1).round().astype(int)
    parts = [staging / f"part{k}" for k in range(n_parts)]
    # Workers are fresh interpreters (not forks of this process, which holds an open TileDB context and its
    # threads; not multiprocessing's spawn, which re-runs the calling script: a Snakemake script has no main guard).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    entry = "import sys; from hcebench.data.build import run_part_job; run_part_job(sys.argv[1])"
    procs = []
    try:
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            obs.iloc[a:b].to_parquet(staging / f"obs{k}.parquet", index=False)
            job = {
                "source": source,
                "obs": str(staging / f"obs{k}.parquet"),
                "genes": str(staging / "genes.npz"),
                "n_genes": n_genes,
                "directory": str(parts[k]),
                "kwargs": kwargs,
            }
            (staging / f"job{k}.json").write_text(json.dumps(job))
            with open(staging / f"stderr{k}.txt", "wb") as err:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", entry, str(staging / f"job{k}.json")], env=env, stderr=err
                    )
                )
        codes = [proc.wait() for proc in procs]
    finally:  # this process is failing or was signalled: stop workers that still run
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [k for k, code in enumerate(codes) if code]
    if failed:
        tail = (staging / f"stderr{failed[0]}.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"store build worker(s) {failed} of {n_parts} failed (exit {codes[failed[0]]}):\n{tail}"
        )
    n = merge_split_parts(parts, directory)
    shutil.rmtree(staging)
    log.info("%s: %d cells written by %d worker processes and merged in order", directory.name, n, n_parts)
    if n != len(obs):
        raise RuntimeError(f"merged {n} cells from {n_parts} parts; expected {len(obs)}")
    return n


def resolve_genes(source: str, var: pd.DataFrame) -> pd.DataFrame:
    """The store's genes in order, as (feature_id, feature_name), from ``genes.source`` and the release's var.

    ``all`` takes every gene of the release ordered by feature_id; ``bundled:sctab_protein_coding`` or a
    parquet path takes that list's order, keeping the genes the release measures (scTab: 19,331 of 19,357).
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
    ids = pd.Index(wanted.index.astype(str))
    present = ids[ids.isin(var["feature_id"])]
    if len(present) == 0:
        raise ValueError(
            f"none of the {len(ids)} genes of genes.source {source!r} is in the census var (feature_id)"
        )
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
        for split in STORE_SPLITS:
            obs = cells.loc[cells["split"] == split, keep].copy()
            obs["label_index"] = obs["label"].map(label_index).astype(np.int64)
            counts[split] = write_split(
                source,
                census,
                obs,
                var_joinids,
                columns,
                len(genes),
                tmp / split,
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
