"""hcebench-annotate at scale: cells/s and peak RSS at 20,000 and 200,000 cells, at the paper's gene dimension.

    python benchmarks/annotate_scale.py                       # 20k and 200k cells, linear model, both outputs
    python benchmarks/annotate_scale.py --sizes 2000,20000 --nnz 300 --architecture mlp

A model of the paper's shape is written untrained (its weights do not change the cost): the bundled scTab gene list
(19,357 protein-coding genes; its ids are the store's genes), scTab's 164 cell types placed in the bundled Cell
Ontology, an untrained ``--architecture`` (default linear) saved as ``model.pt``, and a store meta and
decoder.json as a run would write them, laid out as ``results/<run>/``. For each size a synthetic ``.h5ad`` of raw
counts over those genes (``--nnz`` stored counts per cell, CSR, written in chunks straight into the AnnData layout)
is annotated in a fresh subprocess per output format (``.parquet``, ``.h5ad``), through the command line's own
function. Each child reports its wall time and its peak RSS (``VmHWM`` of /proc/self/status; also the RSS after
imports and model load, the floor the chunks sit on). The last line is
``annotate_rss_growth_10x=<peak RSS at the largest size / at the smallest>`` over the worse of the two outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def vm(key: str) -> float:
    """A /proc/self/status field in MB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_run(root: Path, architecture: str) -> Path:
    """A run's results with an untrained model of the paper's shape; returns the model directory."""
    import pandas as pd
    import torch
    from hcebench import layout
    from hcebench.data.store import StoreWriter
    from hcebench.hierarchy.ontology import load_ontology
    from hcebench.io import write_json
    from hcebench.models import build_model
    from hcebench.training.checkpoints import save_model

    genes = pd.read_parquet(
        Path(str(resources.files("hcebench") / "resources" / "sctab_features_protein_coding.parquet"))
    )
    store = StoreWriter(root / layout.STORE_DIR)
    names = genes["gene_names"] if "gene_names" in genes else genes.iloc[:, 0]
    table = pd.DataFrame(
        {"feature_id": genes.index.astype(str), "feature_name": names.astype(str).to_numpy()}
    )
    store.write_genes(table)
    ontology = load_ontology("bundled")
    by_name = {name: term for term, name in ontology.names.items()}
    wanted = (
        (resources.files("hcebench") / "resources" / "sctab_cell_types_2023-05-15.txt")
        .read_text()
        .splitlines()
    )
    labels = sorted({by_name[n] for n in wanted if n in by_name})
    hierarchy = ontology.closure(labels)
    hierarchy.save(root / layout.HIERARCHY_DIR)
    store.write_meta({"n_genes": len(table), "labels": labels, "target_sum": 10_000.0})
    torch.manual_seed(0)
    model = build_model(architecture, {}, len(table), hierarchy.k)
    run = {"arch": architecture, "loss": "hce", "seed": 0}
    model_dir = root / layout.MODEL_DIR.format(**run)
    save_model(
        model_dir / "model.pt",
        weights=model.state_dict(),
        architecture=architecture,
        entry={},
        hierarchy=hierarchy,
        genes=table["feature_id"].tolist(),
        settings={"loss": "hce", "seed": 0, "bf16": True, "float32_matmul_precision": "highest"},
        best_epoch=0,
    )
    write_json(root / layout.DECODER.format(**{**run, "loss": "hce_prop"}), {"tau": 0.5, "chosen_on": "val"})
    print(
        f"model: {architecture}, {len(table):,} genes, {hierarchy.k} labels, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters",
        flush=True,
    )
    return model_dir


def write_h5ad(path: Path, n_cells: int, genes: list[str], nnz: int, seed: int = 0) -> None:
    """A synthetic .h5ad of raw counts (CSR X, ``nnz`` stored counts per cell), written chunk by chunk."""
    import h5py
    import numpy as np
    import pandas as pd
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    n_genes = len(genes)
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        write_elem(f, "obs", pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)]))
        write_elem(f, "var", pd.DataFrame(index=pd.Index(genes, name="feature_id")))
        x = f.create_group("X")
        x.attrs["encoding-type"], x.attrs["encoding-version"] = "csr_matrix", "0.1.0"
        x.attrs["shape"] = (n_cells, n_genes)
        total = n_cells * nnz
        data = x.create_dataset("data", (total,), dtype="float32", chunks=(min(1 << 20, total),))
        indices = x.create_dataset("indices", (total,), dtype="int32", chunks=(min(1 << 20, total),))
        x.create_dataset("indptr", data=np.arange(n_cells + 1, dtype=np.int64) * nnz)
        step = 10_000
        for start in range(0, n_cells, step):
            rows = min(step, n_cells - start)
            # One gene per bin of n_genes / nnz genes: sorted, distinct columns without a per-row loop.
            width = n_genes // nnz
            cols = np.arange(nnz) * width + rng.integers(0, width, size=(rows, nnz))
            values = rng.geometric(0.4, size=(rows, nnz)).astype(np.float32)
            data[start * nnz : (start + rows) * nnz] = values.ravel()
            indices[start * nnz : (start + rows) * nnz] = cols.ravel().astype(np.int32)


def child(args) -> None:
    """One annotation in this process; prints a JSON line with its time and memory."""
    import torch
    from hcebench.evaluation.annotate import AnnotationModel, ModelFiles, annotate

    torch.set_num_threads(args.threads)
    model = AnnotationModel(ModelFiles.of(args.model), torch.device("cpu"))
    floor = vm("VmRSS")
    started = time.perf_counter()
    summary = annotate(args.input, args.output, model, chunk_size=args.chunk_size, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "cells": summary["n_cells"],
                "seconds": seconds,
                "rss_after_load_mb": floor,
                "peak_rss_mb": vm("VmHWM"),
            }
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000,200000")
    p.add_argument("--nnz", type=int, default=500, help="stored counts per cell (default 500)")
    p.add_argument("--architecture", default="linear")
    p.add_argument("--chunk-size", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=1_024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--workdir", default=None, help="where to write the files (default: a temporary directory)"
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0

    import platform

    import anndata
    import torch

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, anndata {anndata.__version__}, "
        f"{os.cpu_count()} CPUs, {args.threads} torch thread(s), chunk {args.chunk_size:,}, batch {args.batch_size:,}, "
        f"{args.nnz} counts per cell",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "results" / "bench"
        model_dir = write_run(root, args.architecture)
        from hcebench.data.store import Store

        genes = Store(root / "store").gene_ids
        peaks: dict[str, dict[int, float]] = {"parquet": {}, "h5ad": {}}
        sizes = [int(s) for s in args.sizes.split(",")]
        for n in sizes:
            h5ad = Path(tmp) / f"cells_{n}.h5ad"
            started = time.perf_counter()
            write_h5ad(h5ad, n, genes, args.nnz)
            print(
                f"{n:,} cells: wrote {h5ad.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            for fmt in peaks:
                out = Path(tmp) / f"out_{n}.{fmt}"
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    "--model",
                    str(model_dir),
                    "--input",
                    str(h5ad),
                    "--output",
                    str(out),
                    "--chunk-size",
                    str(args.chunk_size),
                    "--batch-size",
                    str(args.batch_size),
                    "--threads",
                    str(args.threads),
                ]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                stdout = proc.stdout.read()
                _, status, usage = os.wait4(proc.pid, 0)
                if status != 0:
                    raise SystemExit(f"child failed ({status}): {' '.join(cmd)}")
                result = json.loads(stdout.strip().splitlines()[-1])
                peaks[fmt][n] = result["peak_rss_mb"]
                print(
                    f"{n:>9,} cells -> {fmt:<7}: {result['cells'] / result['seconds']:>8,.0f} cells/s "
                    f"({result['seconds']:.1f} s), peak RSS {result['peak_rss_mb']:,.0f} MB "
                    f"(ru_maxrss {usage.ru_maxrss / 1024:,.0f} MB; after imports and model load "
                    f"{result['rss_after_load_mb']:,.0f} MB)",
                    flush=True,
                )
                out.unlink()
            h5ad.unlink()
    small, large = sizes[0], sizes[-1]
    growth = {fmt: p[large] / p[small] for fmt, p in peaks.items()}
    print(" ".join(f"{fmt}_rss_growth={g:.3f}" for fmt, g in growth.items()))
    print(f"annotate_rss_growth_10x={max(growth.values()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
