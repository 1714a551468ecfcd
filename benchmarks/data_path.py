"""Data-path benchmark at the paper's gene dimension: store build, training loader, tiledbsoma-ml, ceiling.

    python benchmarks/data_path.py                      # sizes 2,000 / 6,000 / 20,000 cells, 19,331 genes
    python benchmarks/data_path.py --sizes 2000,20000   # any sizes; the first and last are compared for RSS
    python benchmarks/data_path.py --compare-defaults --default-threads 64   # the build's memory, bounded or not

For each size a simulated census (hcebench.data.simulate, 19,331 scTab genes, ~2,000 stored values per cell) is
written by a subprocess, then the store is built from it in a fresh subprocess, which reports cells/s and its peak
RSS. The build writes the cells in a random order, as the training store's splits are written (scTab's permuted
order), so it times the external shuffle through on-disk buckets (hcebench.data.shuffle.write_split_from_census).

Peak RSS is each subprocess's own: ``VmHWM`` from /proc/self/status, else ``ru_maxrss``, which Linux carries
across exec from the process that spawned it. That is why the census is simulated in a subprocess of its own:
simulating 2k / 6k / 20k cells peaks at ~930 / 1,300 / 1,370 MB, and a build child of a parent that had simulated
them reported exactly that through ``ru_maxrss``. The build opens the census with hcebench's read settings
(``hcebench.data.census.memory_tiledb_config``: read buffers and TileDB's budget sized from the chunk, a fixed
number of TileDB threads); ``--compare-defaults`` also builds each size with the install's defaults
(cellxgene_census's 1 GiB buffers, TileDB's 10 GiB budget, TileDB's threads sized from the cores, or
``--default-threads``, to stand for a larger machine). The header prints the versions and machine settings that
can move the peak, and each build prints the TileDB settings it ran with.

On the largest store it measures, in one process and with a warm page cache:

- loader: hcebench.data.store.SplitData.sparse_batches — shuffled CSR minibatches of 2,048 cells (the form that goes
  to the GPU, densified there), block_rows as given, read into reused buffers as the training loop reads them.
  This is the read rate, timed in the calling thread. Training reads in a background thread (prefetch 2) so
  that reads overlap the model's step; with no step to overlap here that thread only adds hand-offs, so it is
  timed as its own line (loader_prefetch), as are fresh arrays per batch and a full shuffle;
- loader_dense: the same densified on the CPU (what CPU training consumes);
- tiledbsoma_ml: tiledbsoma-ml's ExperimentDataset over the same cells, shuffled, 2,048-cell dense batches,
  plus the size-factor + log1p normalisation our store has already applied; its default settings and a tuned
  setting are both timed and the faster one enters the ratio;
- ceiling: a plain sequential read of the store's value and index bytes.

The last line holds the ratios as key=value pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: A subprocess's own peak RSS (pasted into each child script).
PEAK_RSS = r"""
import resource


def peak_rss_mb():
    # VmHWM is this process's own peak; ru_maxrss also holds the high-water mark of the process that spawned this
    # one (Linux carries it across exec), so it is the fallback only, and named as such.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024, "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"
"""

SIMULATE = (
    PEAK_RSS
    + r"""
import json, sys, time
from pathlib import Path
from hcebench.data.simulate import SimulationConfig, simulate_census
from hcebench.hierarchy.ontology import load_ontology
root, cells, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
n_datasets = max(3, round(cells / 1000))
per_dataset = max(150, round(cells / n_datasets))
cfg = SimulationConfig(
    seed=seed,
    n_genes=19331,
    n_genes_dropped=0,
    n_genes_added=0,
    panel_umi_fraction=0.95,
    n_train_datasets=n_datasets,
    n_ood_datasets=1,
    n_ood_smartseq_datasets=0,
    n_ood_duplicate_datasets=0,
    cells_per_dataset=(per_dataset, per_dataset),
    newer_schema=False,
)
started = time.perf_counter()
simulate_census(root, cfg, load_ontology("bundled"))
seconds = time.perf_counter() - started
peak, how = peak_rss_mb()
print(json.dumps({"census": str(root / cfg.train_release), "seconds": seconds, "peak_rss_mb": peak, "rss_method": how}))
"""
)

#: The TileDB settings that can move the build's peak, as each build ran with them.
SETTINGS_KEYS = (
    "soma.init_buffer_bytes",
    "py.init_buffer_bytes",
    "sm.mem.total_budget",
    "sm.compute_concurrency_level",
    "sm.io_concurrency_level",
    "sm.mem.malloc_trim",
)

BUILD = (
    PEAK_RSS
    + f"KEYS = {SETTINGS_KEYS!r}\n"
    + r"""
import contextlib, json, sys, time
import numpy as np
from hcebench.data.census import open_census, read_obs, read_var
from hcebench.data.reads import CensusRead
from hcebench.data.shuffle import write_split_from_census
uri, out, chunk, mode, default_threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
if mode == "hcebench":
    opened = open_census({"uri": uri}, chunk_size=chunk)
else:  # the install's defaults: what cellxgene_census and TileDB choose, optionally with a given thread count
    import cellxgene_census
    threads = {"sm.compute_concurrency_level": str(default_threads), "sm.io_concurrency_level": str(default_threads)}
    opened = contextlib.closing(cellxgene_census.open_soma(uri=uri, tiledb_config=threads if default_threads else None))
with opened as census:
    effective = census.context.native_context.config()
    settings = {key: effective.get(key) for key in KEYS}
    obs = read_obs(census, "is_primary_data == True", ["dataset_id", "donor_id", "cell_type_ontology_term_id"])
    obs = obs.iloc[np.random.default_rng(1).permutation(len(obs))]  # the training store's (scTab's) order
    var = read_var(census)
    started = time.perf_counter()
    read = CensusRead(var_joinids=var["soma_joinid"].to_numpy(), columns=np.arange(len(var)), n_genes=len(var),
                      target_sum=1e4, chunk_size=chunk, organism="homo_sapiens")
    n = write_split_from_census(census, obs, read, out)
    seconds = time.perf_counter() - started
peak, how = peak_rss_mb()
print(json.dumps({"cells": n, "seconds": seconds, "peak_rss_mb": peak, "rss_method": how, "settings": settings}))
"""
)


def run_child(script: str, *args) -> dict:
    """Run ``script`` in a fresh interpreter; its last line of output, parsed as JSON."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def simulate(root: Path, cells: int, seed: int) -> tuple[Path, dict]:
    """A simulated census of about ``cells`` training cells at 19,331 genes under ``root``, written by a subprocess
    (so this process never holds it): the training release's path, and the subprocess's time and peak RSS."""
    result = run_child(SIMULATE, root, cells, seed)
    return Path(result["census"]), result


def build(uri: Path, out: Path, chunk: int, mode: str = "hcebench", default_threads: int = 0) -> dict:
    """Build a permuted store split from census ``uri`` in a subprocess: cells, seconds, its peak RSS, settings.

    ``mode`` "hcebench" opens the census as the workflow does; "defaults" with the install's TileDB settings
    (``default_threads`` > 0 replaces TileDB's thread count, which it sizes from the cores)."""
    return run_child(BUILD, uri, out, chunk, mode, default_threads)


def environment() -> list[str]:
    """Versions and machine settings that can move the build's peak RSS, as header lines."""
    import tiledbsoma
    from hcebench.provenance import package_versions

    versions = package_versions(("tiledbsoma", "cellxgene-census", "pyarrow", "numpy", "pandas", "scipy"))
    versions["TileDB core"] = tiledbsoma.get_libtiledbsoma_core_version()
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        thp = "unknown"
    import pyarrow

    return [
        f"python {platform.python_version()}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"machine: {os.cpu_count()} cores, {platform.libc_ver()[0]} {platform.libc_ver()[1]}, "
        f"transparent hugepages {thp}, pyarrow memory pool {pyarrow.default_memory_pool().backend_name}, "
        f"MALLOC_ARENA_MAX {os.environ.get('MALLOC_ARENA_MAX', 'unset')}",
    ]


def rate(cells: int, seconds: float) -> float:
    return cells / seconds if seconds > 0 else float("nan")


#: Each timing repeats whole passes until this many seconds have passed, so a 20,000-cell store (10 batches,
#: ~30 ms a pass) is timed over many passes, not one.
MIN_SECONDS = 1.0


def time_loader(
    split, batch: int, block_rows: int, dense: bool, reuse_buffers: bool = True, prefetch: int = 0
) -> float:
    started, n, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - started < MIN_SECONDS:
        batches = split.sparse_batches(
            batch,
            rng=np.random.default_rng(epoch),
            block_rows=block_rows,
            prefetch=prefetch,
            reuse_buffers=reuse_buffers,
        )
        for b in batches:
            if dense:
                b.to_numpy()
            n += len(b)
        epoch += 1
    return rate(n, time.perf_counter() - started)


def time_tiledbsoma_ml(uri: Path, batch: int, **settings) -> float:
    import tiledbsoma
    from tiledbsoma_ml import ExperimentDataset

    exp = tiledbsoma.Experiment.open(str(uri / "census_data" / "homo_sapiens"))
    query = exp.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(value_filter="is_primary_data == True"))
    ds = ExperimentDataset(query, layer_name="raw", batch_size=batch, shuffle=True, seed=0, **settings)
    started, n = time.perf_counter(), 0
    for x, _obs in ds:
        x = x.astype(np.float32, copy=False)
        sums = x.sum(axis=1, keepdims=True)
        sums[sums == 0] = 1
        np.log1p(x * (1e4 / sums), out=x)
        n += x.shape[0]
    seconds = time.perf_counter() - started
    query.close()
    exp.close()
    return rate(n, seconds)


def time_ceiling(split_dir: Path, n_cells: int) -> float:
    from hcebench.data.store import split_files

    buf = bytearray(8 << 20)  # allocated outside the timer: the ceiling is the read alone
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < MIN_SECONDS:
        for role in ("data", "indices"):
            with open(split_files(split_dir)[role], "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
        n += n_cells
    return rate(n, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="2000,6000,20000", help="cells per size, comma-separated (≥ 10× span)"
    )
    # Peak RSS settles after a few chunks (allocator high-water marks), so every size should span several.
    parser.add_argument("--chunk-size", type=int, default=500, help="cells per SOMA read in the build")
    parser.add_argument("--batch-size", type=int, default=2048)
    # 128-row blocks: each 2,048-cell batch mixes 16 places of the store (scTab's loader mixes 16 parquet parts).
    parser.add_argument("--block-rows", type=int, default=128, help="rows per shuffle block of the loader")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats; the best of each is kept"
    )
    parser.add_argument("--workdir", default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse censuses already simulated in --workdir")
    parser.add_argument(
        "--compare-defaults",
        action="store_true",
        help="also build every size with the install's TileDB defaults instead of hcebench's read settings",
    )
    parser.add_argument(
        "--default-threads",
        type=int,
        default=0,
        help="TileDB threads of the --compare-defaults builds (0: TileDB's own choice, the machine's cores)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="hcebench-bench-"))
    print(f"workdir {root}; genes 19331; chunk {args.chunk_size}; batch {args.batch_size}", flush=True)
    for line in environment():
        print(line, flush=True)

    from hcebench.data.store import SplitData, split_files

    builds, default_builds = {}, {}
    for size in sizes:
        census = root / f"census_{size}" / "2023-05-15"
        if args.reuse and census.exists():
            simulated = "reused census"
        else:
            census, sim = simulate(root / f"census_{size}", size, args.seed)
            simulated = (
                f"simulated in {sim['seconds']:.0f} s (simulation peak RSS {sim['peak_rss_mb']:,.0f} MB, "
                f"{sim['rss_method']})"
            )
        shutil.rmtree(root / f"store_{size}", ignore_errors=True)
        result = build(census, root / f"store_{size}", args.chunk_size)
        builds[size] = (census, result)
        nnz = split_files(root / f"store_{size}")["data"].stat().st_size / 4 / result["cells"]
        print(
            f"size {size:>7}: {result['cells']} cells {simulated}; store build "
            f"{rate(result['cells'], result['seconds']):,.0f} cells/s, peak RSS {result['peak_rss_mb']:,.0f} MB "
            f"({result['rss_method']}), {nnz:,.0f} stored values per cell",
            flush=True,
        )
        if args.compare_defaults:
            out = root / f"store_{size}_defaults"
            shutil.rmtree(out, ignore_errors=True)
            default_builds[size] = build(census, out, args.chunk_size, "defaults", args.default_threads)
            shutil.rmtree(out, ignore_errors=True)
            d = default_builds[size]
            print(
                f"size {size:>7}: with the install's defaults: store build {rate(d['cells'], d['seconds']):,.0f} "
                f"cells/s, peak RSS {d['peak_rss_mb']:,.0f} MB ({d['rss_method']})",
                flush=True,
            )
    ran_with = builds[min(sizes)][1]["settings"]
    print("build TileDB settings (hcebench): " + ", ".join(f"{k}={v}" for k, v in ran_with.items()))
    if args.compare_defaults:
        ran_with = default_builds[min(sizes)]["settings"]
        print("build TileDB settings (defaults): " + ", ".join(f"{k}={v}" for k, v in ran_with.items()))

    largest = max(sizes)
    census, result = builds[largest]
    split = SplitData.open(root / f"store_{largest}", 19331)
    time_loader(split, args.batch_size, args.block_rows, dense=False)  # warm the page cache
    # Interleaved repeats, best of each: a busy machine slows every measurement alike instead of one of them.
    timings: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for key, measure in (
            ("loader", lambda: time_loader(split, args.batch_size, args.block_rows, dense=False)),
            ("ceiling", lambda: time_ceiling(root / f"store_{largest}", len(split))),
            (
                "loader_prefetch",
                lambda: time_loader(split, args.batch_size, args.block_rows, dense=False, prefetch=2),
            ),
            (
                "loader_fresh_arrays",
                lambda: time_loader(
                    split, args.batch_size, args.block_rows, dense=False, reuse_buffers=False
                ),
            ),
            ("loader_full_shuffle", lambda: time_loader(split, args.batch_size, 1, dense=False)),
            ("loader_dense", lambda: time_loader(split, args.batch_size, args.block_rows, dense=True)),
        ):
            timings.setdefault(key, []).append(measure())
    best = {key: max(values) for key, values in timings.items()}
    loader, ceiling = best["loader"], best["ceiling"]
    loader_full_shuffle, loader_dense = best["loader_full_shuffle"], best["loader_dense"]
    # tiledbsoma-ml's defaults (64-row shuffle chunks, 65,536-cell IO batches) read many small row ranges, which
    # is slow on the simulated X layout (all genes in one tile); larger chunks and IO batches suit it better.
    # The ratio uses the faster of the two, so the comparison never flatters the loader.
    soma_default = time_tiledbsoma_ml(census, args.batch_size)
    soma_tuned = time_tiledbsoma_ml(census, args.batch_size, shuffle_chunk_size=256, io_batch_size=8192)
    soma_ml = max(soma_default, soma_tuned)
    print(f"loader (sparse batches, block_rows {args.block_rows}): {loader:,.0f} cells/s")
    print(f"loader (same, in a prefetch thread):        {best['loader_prefetch']:,.0f} cells/s")
    print(f"loader (same, fresh arrays per batch):      {best['loader_fresh_arrays']:,.0f} cells/s")
    print(f"loader (sparse batches, full shuffle):      {loader_full_shuffle:,.0f} cells/s")
    print(f"loader (dense on CPU, block_rows {args.block_rows}):  {loader_dense:,.0f} cells/s")
    print(f"tiledbsoma-ml defaults (dense, normalised):  {soma_default:,.0f} cells/s")
    print(f"tiledbsoma-ml chunks 256, IO batch 8,192:    {soma_tuned:,.0f} cells/s")
    print(f"ceiling (sequential read of store bytes):    {ceiling:,.0f} cells/s")
    growth = builds[largest][1]["peak_rss_mb"] / builds[min(sizes)][1]["peak_rss_mb"]
    span = largest / min(sizes)
    defaults = ""
    if args.compare_defaults:
        default_growth = default_builds[largest]["peak_rss_mb"] / default_builds[min(sizes)]["peak_rss_mb"]
        defaults = (
            f" build_rss_growth_10x_defaults={default_growth:.2f} "
            f"build_peak_defaults_over_bounded={default_builds[largest]['peak_rss_mb'] / builds[largest][1]['peak_rss_mb']:.2f}"
        )
    print(
        f"loader_vs_tiledbsoma_ml={loader / soma_ml:.2f} loader_vs_ceiling={loader / ceiling:.2f} "
        f"build_rss_growth_10x={growth:.2f} loader_prefetch_vs_ceiling={best['loader_prefetch'] / ceiling:.2f} "
        f"loader_dense_vs_tiledbsoma_ml={loader_dense / soma_ml:.2f} "
        f"size_span={span:.1f}{defaults}"
    )


if __name__ == "__main__":
    main()
