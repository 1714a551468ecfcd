"""What letting go of mapped pages costs the training loader: one epoch of shuffled minibatches of a store split,
read with the reader's page limit (``hcebench.data.store.split.MAPPED_BYTES_LIMIT``) and without it, side by side.

    python benchmarks/mapped_pages.py results/rehearsal_100000/store
    python benchmarks/mapped_pages.py <store> --split train --rounds 3 --block-rows 128 --batch-size 2048

Each round reads the whole split once per setting (alternating, so a shared machine's swings hit both), as the
training loop does (``batch_order`` with ``block_rows``, ``read_batches`` with reused buffers, no prefetch thread).
Per setting it prints cells/s (best round) and the most of the split's value file that was resident in the
process at any batch end (``/proc/self/smaps``). The last line::

    split_mb=<size of the value and index files> limited_cells_per_s=<a> unlimited_cells_per_s=<b> ratio=<a/b>
    limited_peak_mapped_mb=<c> unlimited_peak_mapped_mb=<d>

With a split larger than the limit (256 MB), the limited reader keeps at most about the limit mapped; the ratio
is what the page faults of reading pages again from the page cache cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from hcebench.data.store import Store
from hcebench.data.store import split as split_module
from hcebench.data.store.split import resident_mapped_bytes, split_files


def mapped_mb(path: Path) -> float:
    """Resident MB of this process's mappings of ``path``."""
    return resident_mapped_bytes(path) / 2**20


def epoch(store: Path, split: str, limit: int, batch_size: int, block_rows: int) -> tuple[float, float]:
    """One shuffled epoch with the page limit ``limit``: cells/s and the peak resident MB of the value file."""
    split_module.MAPPED_BYTES_LIMIT = limit
    data = Store(store).split(split)
    order = data.batch_order(batch_size, np.random.default_rng(0), block_rows)
    values = split_files(data.dir)["data"]
    peak, start = 0.0, time.perf_counter()
    for i, batch in enumerate(data.read_batches(order, prefetch=0, reuse_buffers=True)):
        if i % 8 == 0:
            peak = max(peak, mapped_mb(values))
        del batch
    seconds = time.perf_counter() - start
    return len(data) / seconds, max(peak, mapped_mb(values))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", type=Path, help="a store directory (results/<run>/store)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--block-rows", type=int, default=128)
    args = parser.parse_args()
    limited_limit = split_module.MAPPED_BYTES_LIMIT
    files = split_files(Store(args.store).split(args.split).dir)
    size_mb = sum(files[key].stat().st_size for key in ("data", "indices")) / 2**20
    print(
        f"{args.store} {args.split}: {size_mb:.0f} MB of values and indices; limit {limited_limit / 2**20:.0f} MB"
    )
    results: dict[str, list[tuple[float, float]]] = {"limited": [], "unlimited": []}
    for r in range(args.rounds):
        for name, limit in (("limited", limited_limit), ("unlimited", 2**62)):
            rate, peak = epoch(args.store, args.split, limit, args.batch_size, args.block_rows)
            results[name].append((rate, peak))
            print(f"round {r + 1} {name:9s}: {rate:10,.0f} cells/s, peak mapped {peak:7.1f} MB", flush=True)
    best = {name: max(rate for rate, _ in runs) for name, runs in results.items()}
    peaks = {name: max(peak for _, peak in runs) for name, runs in results.items()}
    print(
        f"split_mb={size_mb:.0f} limited_cells_per_s={best['limited']:.0f} "
        f"unlimited_cells_per_s={best['unlimited']:.0f} ratio={best['limited'] / best['unlimited']:.3f} "
        f"limited_peak_mapped_mb={peaks['limited']:.0f} unlimited_peak_mapped_mb={peaks['unlimited']:.0f}"
    )


if __name__ == "__main__":
    main()
