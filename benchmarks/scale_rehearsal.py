"""Does every rule of config/paper.yaml fit the memory it asks for? A rehearsal at two sizes, extrapolated.

    python benchmarks/scale_rehearsal.py --quick                  # 25k and 100k cells, 19,331 genes
    python benchmarks/scale_rehearsal.py                          # 250k and 1M cells (hours, ~80 GB of disk)
    python benchmarks/scale_rehearsal.py --runs results/a results/b   # two finished runs: only the table

Runs config/rehearsal.yaml (every rule of the paper's configuration, its settings and resources, on a simulated
census at the paper's dimensions, one training epoch) at two sizes, as runs ``rehearsal_<cells>``. Every job
writes Snakemake's benchmark file (``results/<run>/benchmarks/``); this script reads them and prints, per rule:
the peak RSS at each size (the largest of its jobs), the growth between the sizes, the slope per cell of the split
that drives it (``DRIVER``), the peak extrapolated linearly to the paper's cell counts (``PAPER_CELLS``), the
``mem_mb`` and ``runtime`` config/paper.yaml gives the rule (from Snakemake's dry run of the paper's resources,
which the rehearsal config copies) and the headroom (declared / extrapolated). It ends with one line::

    rules=<n> over_limit=<k> worst=<rule>:<extrapolated_GB>/<declared_GB> growth_4x=<max peak ratio>

``over_limit`` counts rules whose extrapolated peak exceeds what they ask for; ``worst`` is the rule with the
least headroom; ``growth_4x`` is the largest ratio of peak RSS between the two sizes among the rules whose memory
is bounded by the chunk (``CHUNK_BOUNDED``; ≤ 1.2 over 4× the cells is the target). The augmentation bank's
state is set by its pairs, capped by the config, not by the cells (``PAIR_BOUNDED``): its peak is extrapolated to
that cap (a line after the table gives its state at both sizes and at the cap). A linear extrapolation from two
small sizes is an estimate: it assumes the per-cell slope holds, and the intercept (interpreter, libraries) is
what it is at these sizes.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml
from hcebench import layout
from hcebench.data.audit import STATE_PEAK_LINE
from hcebench.data.census import READ_VALUES_PER_CELL, memory_tiledb_config
from hcebench.data.store import Store
from hcebench.data.store.split import MAPPED_MB_VARIABLE
from hcebench.evaluation.contract import CHUNK_CELLS_VARIABLE
from hcebench.snakemake_io import PEAK_LINE

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "rehearsal.yaml"
#: The paper's cell counts per split (scTab's store of Census 2023-05-15, and the OOD set of 2023-12-15).
PAPER_CELLS = {"train": 15_240_000, "val": 3_500_000, "test": 3_450_000, "ood": 2_600_000}
#: The split whose cell count drives each rule's per-cell memory; "all" is every split together.
DRIVER = {
    "select_cells": "all",
    "build_store": "train",
    "augmentation_bank": "train",
    "train": "train",
    "celltypist": "val",
    "evaluate": "val",
    "controls": "test",
    "score": "test",
    "build_ood": "ood",
    "audit_ood": "all",
    "prediction_analyses": "test",
    # Independent of the cells: their peak is taken as it is, not extrapolated.
    "ontology_closure": None,
    "fetch_ontology": None,
    "aggregate": None,
    "figures": None,
    "paper_analyses": None,
}
#: Rules of the rehearsal that config/paper.yaml does not run (the simulated census is the rehearsal's stand-in for
#: the public one): left out of the table and the line.
REHEARSAL_ONLY = {"simulate_census"}
#: Rules whose memory is bounded by the chunk (plus a few bytes per cell, stated in their docstrings).
CHUNK_BOUNDED = {
    "build_store",
    "build_ood",
    "evaluate",
    "controls",
    "score",
    "celltypist",
    "prediction_analyses",
}
#: Rules whose state is set by the config, not by the cells: the augmentation bank holds the differences of
#: (type, tech_sample) group means (4 bytes per pair and gene) and the means of the groups in a pair (8 per group
#: and gene), and both are capped by types × augmentation.max_pairs_per_type, whatever the number of cells. Its
#: peak is extrapolated from that state (``bank_state_bytes``), not per cell.
PAIR_BOUNDED = {"augmentation_bank"}
#: Rules whose memory is per-cell state plus reads of scattered cells that TileDB's budget bounds, not the cells: the
#: audit's state (the selection's columns, the OOD cells' obs, both releases' duplicate candidates) is extrapolated
#: from the peak it logs before the reads (``hcebench.data.audit.STATE_PEAK_LINE``), and the reads are added at
#: their bound (``count_read_bound_mb``). Its peak with the reads grows with the candidates' spread over the
#: census's tiles (4 and 2 candidates at 25k cells, 82 and 100 at 100k: ~1.1 MB of tiles each), up to that bound.
READ_BOUNDED = {"audit_ood"}
#: scTab's cell types (the paper's label set): with max_pairs_per_type, the cap on the bank's pairs.
PAPER_TYPES = 164
PAPER_GENES = 19_331
BANK_LINE = re.compile(r"means of (\d+) \(type, tech_sample\) groups in (\d+) pairs × (\d+) genes")
#: Cells per training dataset of the simulated census (config/rehearsal.yaml's cells_per_dataset, mean).
CELLS_PER_DATASET = 500
SIZES = (250_000, 1_000_000)
QUICK_SIZES = (25_000, 100_000)
#: The paper's chunks: census reads (config census.chunk_size) and predictions (evaluation.contract.CHUNK_CELLS).
PAPER_CENSUS_CHUNK = 20_000
PAPER_PREDICTION_CHUNK = 65_536
#: --quick's chunks: small enough that both sizes fill every chunk, so the growth between them is the per-cell
#: state alone (at 25k cells a 20,000-cell census chunk or a 65,536-cell prediction chunk is not yet full, and
#: filling it would read as growth per cell). The prediction chunk is under the smallest predicted split at 25k
#: (validation and test, 3,072 cells), so half a prediction batch (4,096): the run at the paper's chunks
#: (``--chunk-run``) gives what a whole batch costs.
QUICK_CENSUS_CHUNK = 2_000
QUICK_PREDICTION_CHUNK = 2_048
#: --quick's limit on a split's mapped pages (MB; the paper's is 256, ``MAPPED_BYTES_LIMIT``): at 25k cells the
#: validation split's files are ~50 MB, so 256 MB would fill with cells and read as growth per cell.
QUICK_MAPPED_MB = 16
#: --quick's census readers per build (census.build_workers; the paper's default is the job's threads): each worker
#: process holds its own chunk, and a peak summed over several processes sampled in a job of a few seconds depends
#: on whether their peaks met, not on the cells. What the paper's workers cost is in the run at its settings.
QUICK_BUILD_WORKERS = 1
#: --quick's bank: pairs per type and the cluster size kept (the paper's 300 and 2,000, both a third). The bank's
#: state is set by its pairs, not the cells, and is extrapolated to the paper's cap from the pairs a run logged
#: (``bank_state_bytes``), so fewer pairs change no figure of the table; they make its k-means, single-threaded and
#: ~5 min at the cap whatever the cells, a third as long.
QUICK_BANK_PAIRS = 100
QUICK_BANK_MIN_CLUSTER = 667
#: Rules that stream predictions in CHUNK_CELLS chunks, and the split whose cells fill their largest chunk at the
#: rehearsal's sizes (the OOD set is its largest predicted split).
PREDICTION_CHUNKED = {"evaluate": "ood", "controls": "ood", "score": "ood", "prediction_analyses": "ood"}


#: Runs of --quick are named rehearsal_quick_<cells>; --runs tells them apart by this prefix.
QUICK_PREFIX = "rehearsal_quick_"


def run_name(cells: int, quick: bool = False) -> str:
    return f"{QUICK_PREFIX if quick else 'rehearsal_'}{cells}"


def size_config(cells: int, quick: bool = False) -> Path:
    """A config file that sets the rehearsal's run and size (training datasets of ~500 cells; a quarter as many
    new OOD datasets), laid over config/rehearsal.yaml (a second ``--configfile``: Snakemake merges it in); with
    ``quick``, the small census chunk, one census reader and the small bank too."""
    n_train = max(8, round(cells / CELLS_PER_DATASET))
    path = ROOT / "results" / f"{run_name(cells, quick)}.size.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = f"  chunk_size: {QUICK_CENSUS_CHUNK}\n  build_workers: {QUICK_BUILD_WORKERS}\n" if quick else ""
    bank = (
        f"augmentation:\n  max_pairs_per_type: {QUICK_BANK_PAIRS}\n  min_cluster_size: {QUICK_BANK_MIN_CLUSTER}\n"
        if quick
        else ""
    )
    path.write_text(
        f"run: {run_name(cells, quick)}\n"
        f"census:\n{chunk}  simulate:\n    n_train_datasets: {n_train}\n    n_ood_datasets: {max(2, n_train // 4)}\n"
        + bank
    )
    return path


def run_rehearsal(cells: int, cores: int, quick: bool = False) -> Path:
    """Run the rehearsal at ``cells`` cells (``snakemake``, every rule); its results directory. ``quick`` runs it
    with the small chunks (QUICK_CENSUS_CHUNK, QUICK_PREDICTION_CHUNK through HCEBENCH_CHUNK_CELLS) and the small
    page limit (QUICK_MAPPED_MB through HCEBENCH_MAPPED_MB)."""
    command = [
        "snakemake",
        "--cores",
        str(cores),
        "--configfile",
        str(CONFIG),
        str(size_config(cells, quick)),
    ]
    quick_env = {CHUNK_CELLS_VARIABLE: str(QUICK_PREDICTION_CHUNK), MAPPED_MB_VARIABLE: str(QUICK_MAPPED_MB)}
    env = {**os.environ, **quick_env} if quick else None
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env=env)
    return ROOT / "results" / run_name(cells, quick)


def peak_rss(results: Path) -> dict[str, dict[str, float]]:
    """Per rule, over its jobs' benchmark files: the largest ``max_rss`` (MB) and the longest run time (s).

    Snakemake samples a job's memory (every 0.5 s for its first seconds, then every 30 s), so a transient between
    two samples is missed. Where a job's log ends with its exact peak (``hcebench.snakemake_io.PEAK_LINE``: the
    kernel's high-water mark of the job's process plus the summed high-water marks of the worker processes it ran
    at once), the larger of the two counts."""
    peaks: dict[str, dict[str, float]] = defaultdict(lambda: {"max_rss": 0.0, "s": 0.0, "jobs": 0})
    for path in sorted((results / "logs").rglob("*.log")):
        for match in PEAK_LINE.finditer(path.read_text(errors="replace")):
            exact = sum(float(match[k].replace(",", "")) for k in ("own", "child"))
            peaks[match["rule"]]["max_rss"] = max(peaks[match["rule"]]["max_rss"], exact)
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(results / "benchmarks").parts
        rule = parts[0] if len(parts) > 1 else path.stem
        with open(path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                peak = peaks[rule]
                rss = float(row["max_rss"]) if row.get("max_rss") not in (None, "", "NA", "-") else 0.0
                peak["max_rss"] = max(peak["max_rss"], rss)
                peak["s"] = max(peak["s"], float(row["s"]))
                peak["jobs"] += 1
    return dict(peaks)


def split_cells(results: Path) -> dict[str, int]:
    """Cells per split of a finished run (the store's meta and the OOD set's), and ``all``."""
    cells = dict(Store(results / layout.STORE_DIR).meta["n_cells"])
    ood = results / layout.OOD_DIR
    if ood.exists():
        cells["ood"] = int(Store(ood).meta["n_cells"]["ood"])
    cells["all"] = sum(cells.values())
    return cells


def count_read_bound_mb(chunk: int = PAPER_CENSUS_CHUNK) -> float:
    """The most a read of ``chunk`` scattered cells' count rows holds (MB): TileDB's tile budget and its three
    columns' result buffers as ``memory_tiledb_config`` sets them for that chunk, and the chunk's CSR (float32
    values and int32 indices of ``READ_VALUES_PER_CELL`` values per cell)."""
    config = memory_tiledb_config(chunk)
    tiles, buffer = int(config["sm.mem.total_budget"]), int(config["soma.init_buffer_bytes"])
    return (tiles + 3 * buffer + chunk * READ_VALUES_PER_CELL * 8) / 1e6


def state_peaks(results: Path) -> dict[str, float]:
    """Per ``READ_BOUNDED`` rule, the peak (MB) its logs give before its bounded reads (``STATE_PEAK_LINE``)."""
    peaks: dict[str, float] = {}
    for rule in READ_BOUNDED:
        for path in sorted((results / "logs").rglob(f"{rule}*.log")):
            for match in STATE_PEAK_LINE.finditer(path.read_text(errors="replace")):
                peaks[rule] = max(peaks.get(rule, 0.0), float(match["mb"].replace(",", "")))
    return peaks


def bank_state_bytes(groups: int, pairs: int, genes: int) -> float:
    """The bank's largest state: while the differences are made, the groups' float64 means and the float32
    differences; while k-means runs, the differences and scikit-learn's copy of them."""
    return float(max(8 * groups * genes + 4 * pairs * genes, 8 * pairs * genes))


def bank_counts(results: Path) -> tuple[int, int, int] | None:
    """(groups, pairs, genes) the bank job of a run logged, or None (no bank, or a bank shipped with the store)."""
    path = results / layout.LOG_DIR / "augmentation_bank.log"
    match = BANK_LINE.search(path.read_text()) if path.exists() else None
    return tuple(int(v) for v in match.groups()) if match else None


def bank_bound(max_pairs_per_type: int, types: int = PAPER_TYPES, genes: int = PAPER_GENES) -> float:
    """The bank's state at its cap: every type with ``max_pairs_per_type`` pairs of distinct groups."""
    pairs = types * max_pairs_per_type
    return bank_state_bytes(2 * pairs, pairs, genes)


RULE_LINE = re.compile(r"^(?:local)?rule (\w+):$")
RESOURCE = re.compile(r"(\w+)=([0-9.]+)")


def declared_resources(config: Path = CONFIG) -> dict[str, dict[str, float]]:
    """Per rule, the ``mem_mb`` and ``runtime`` its jobs ask for under ``config`` (the largest of its jobs), read
    from Snakemake's dry run of every job."""
    done = subprocess.run(
        [
            "snakemake",
            "-n",
            "--forceall",
            "--workflow-profile",
            "none",
            "--configfile",
            str(config),
            "--config",
            "run=rehearsal_declared",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    declared: dict[str, dict[str, float]] = {}
    rule = None
    for line in done.stdout.splitlines():
        match = RULE_LINE.match(line.strip())
        if match:
            rule = match.group(1)
        elif rule and line.strip().startswith("resources:"):
            values = {k: float(v) for k, v in RESOURCE.findall(line)}
            if "mem_mb" in values:
                entry = declared.setdefault(rule, {"mem_mb": 0.0, "runtime": 0.0})
                entry["mem_mb"] = max(entry["mem_mb"], values["mem_mb"])
                entry["runtime"] = max(entry["runtime"], values.get("runtime", 0.0))
    return declared


def rehearsal_table(
    small: dict,
    large: dict,
    cells_small: dict,
    cells_large: dict,
    declared: dict,
    bank: dict[str, float] | None = None,
    chunked: dict | None = None,
    cells_chunked: dict | None = None,
    small_chunks: tuple[int, int] | None = None,
    states: tuple[dict, dict] | None = None,
) -> list[dict[str, object]]:
    """One row per rule seen in both runs: peaks (MB), growth, slope (bytes per cell of its ``DRIVER`` split),
    the extrapolation to ``PAPER_CELLS`` (GB, and minutes of this machine's CPU from the longest job's time the
    same way), what it declares (GB, min) and the headroom.

    ``bank`` (``state_large``, ``bound`` and, with a run at the paper's chunks, ``state_chunked``; bytes)
    extrapolates the ``PAIR_BOUNDED`` rule from its state: the peak of the run it starts from plus the state that
    run lacks of the bound (its slope column is then empty).

    When the two runs used small chunks (``small_chunks``: census and prediction chunk cells), ``chunked`` (peaks
    of a run at the paper's chunks, the size of the large run, ``cells_chunked`` its cells) gives what the paper's
    chunks cost: the extrapolation starts from that run's peak instead, and a rule whose prediction chunk that run
    did not fill (``PREDICTION_CHUNKED``) adds the rest of the chunk at the cost per chunk cell the two large runs
    show (``chunk_gb``).

    ``states`` (``state_peaks`` of the small and the large run) extrapolates a ``READ_BOUNDED`` rule from its state
    alone, then adds its reads at their bound (``count_read_bound_mb``, in ``chunk_gb``)."""
    paper = {**PAPER_CELLS, "all": sum(PAPER_CELLS.values())}
    rows = []
    for rule in sorted((set(small) & set(large)) - REHEARSAL_ONLY):
        driver = DRIVER.get(rule, "all")
        if driver is not None and (driver not in cells_small or driver not in cells_large):
            continue  # a run that stopped before writing the split that drives the rule
        r1, r2 = small[rule]["max_rss"], large[rule]["max_rss"]
        t1, t2 = small[rule]["s"], large[rule]["s"]
        # The starting point: the large run, or the run at the paper's chunks (what those chunks cost).
        base_mb, base_s, chunk_mb = r2, t2, 0.0
        if chunked and rule in chunked:
            base_mb, base_s = chunked[rule]["max_rss"], max(t2, chunked[rule]["s"])
            if rule in PREDICTION_CHUNKED and small_chunks:
                filled = min(cells_chunked[PREDICTION_CHUNKED[rule]], PAPER_PREDICTION_CHUNK)
                if filled > small_chunks[1]:
                    per_chunk_cell = max(base_mb - r2, 0.0) / (filled - small_chunks[1])
                    chunk_mb = per_chunk_cell * (PAPER_PREDICTION_CHUNK - filled)
        if rule in PAIR_BOUNDED and bank:
            driver, slope_mb = "pairs", None
            # From the peak of the run it starts from, plus the state that run lacks of the bound.
            if chunked and rule in chunked and "state_chunked" in bank:
                start_mb, state = base_mb, bank["state_chunked"]
            else:
                start_mb, state = max(base_mb, r2), bank["state_large"]
            extrapolated_gb = (start_mb + max(bank["bound"] - state, 0.0) / 1e6) / 1000
            # Its time follows its vectors (k-means), so the state's growth to the cap.
            seconds = base_s * max(bank["bound"] / state, 1.0)
        elif driver is None:
            slope_mb, extrapolated_gb, seconds = 0.0, max(r1, r2, base_mb) / 1000, max(t1, base_s)
        else:
            n1, n2 = cells_small[driver], cells_large[driver]
            slope_s = (t2 - t1) / (n2 - n1) if n2 != n1 else 0.0
            seconds = base_s + max(slope_s, 0.0) * (paper[driver] - n2)
            if rule in READ_BOUNDED and states and all(rule in s for s in states):
                # Its state alone per cell, then its reads at their bound.
                s1, s2 = states[0][rule], states[1][rule]
                slope_mb = (s2 - s1) / (n2 - n1) if n2 != n1 else 0.0
                chunk_mb = count_read_bound_mb()
                state_mb = s2 + max(slope_mb, 0.0) * (paper[driver] - n2)
                extrapolated_gb = max(state_mb + chunk_mb, base_mb) / 1000
            else:
                slope_mb = (r2 - r1) / (n2 - n1) if n2 != n1 else 0.0
                extrapolated_gb = (base_mb + chunk_mb + max(slope_mb, 0.0) * (paper[driver] - n2)) / 1000
        mem = declared.get(rule, {}).get("mem_mb")
        rows.append(
            {
                "rule": rule,
                "driver": driver,
                "rss_small_mb": round(r1, 1),
                "rss_large_mb": round(r2, 1),
                "growth": round(r2 / r1, 3) if r1 else float("nan"),
                "bytes_per_cell": None if slope_mb is None else round(slope_mb * 1e6, 1),
                "chunk_gb": round(chunk_mb / 1000, 2),
                "paper_gb": round(extrapolated_gb, 2),
                "declared_gb": round(mem / 1000, 1) if mem else None,
                "paper_min": round(seconds / 60, 1),
                "runtime_min": declared.get(rule, {}).get("runtime"),
                "headroom": round(mem / 1000 / extrapolated_gb, 2) if mem and extrapolated_gb > 0 else None,
                "chunk_bounded": rule in CHUNK_BOUNDED,
            }
        )
    return rows


def summary_line(rows: list[dict[str, object]]) -> str:
    """The closing line: rules, how many are over their limit, the tightest one and the largest growth."""
    declared = [r for r in rows if r["headroom"] is not None]
    over = [r for r in declared if r["headroom"] < 1]
    worst = min(declared, key=lambda r: r["headroom"]) if declared else None
    growth = [r["growth"] for r in rows if r["chunk_bounded"] and r["growth"] == r["growth"]]
    worst_text = f"{worst['rule']}:{worst['paper_gb']:.1f}/{worst['declared_gb']:.1f}" if worst else "none"
    return (
        f"rules={len(rows)} over_limit={len(over)} worst={worst_text} "
        f"growth_4x={max(growth) if growth else float('nan'):.2f}"
    )


def print_table(rows: list[dict[str, object]], cells_small: dict, cells_large: dict) -> None:
    print(f"cells: small {cells_small}, large {cells_large}; paper {PAPER_CELLS}")
    columns = list(rows[0]) if rows else []
    print("\t".join(columns))
    for row in rows:
        print("\t".join("" if row[c] is None else str(row[c]) for c in columns))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} instead of {SIZES}")
    parser.add_argument("--sizes", type=int, nargs=2, help="the two sizes (training-store cells, about)")
    parser.add_argument("--runs", type=Path, nargs=2, help="two finished runs' results directories: no run")
    parser.add_argument(
        "--chunk-run",
        type=Path,
        help="a finished run at the paper's chunks, the large size (e.g. results/rehearsal_100000): with --quick "
        "runs, what the paper's chunks cost enters the extrapolation",
    )
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    if args.runs:
        small_dir, large_dir = args.runs
    else:
        sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
        small_dir, large_dir = (run_rehearsal(n, args.cores, quick=args.quick) for n in sizes)
    quick = large_dir.name.startswith(QUICK_PREFIX)
    cells_small, cells_large = split_cells(small_dir), split_cells(large_dir)
    if cells_small["all"] > cells_large["all"]:
        small_dir, large_dir, cells_small, cells_large = large_dir, small_dir, cells_large, cells_small
    bank = None
    counts = bank_counts(small_dir), bank_counts(large_dir)
    if all(counts):
        max_pairs = int(yaml.safe_load(CONFIG.read_text())["augmentation"]["max_pairs_per_type"])
        states = [bank_state_bytes(*c) for c in counts]
        bank = {"state_large": states[1], "bound": bank_bound(max_pairs)}
    chunked = cells_chunked = None
    if args.chunk_run:
        chunked, cells_chunked = peak_rss(args.chunk_run), split_cells(args.chunk_run)
        counts_chunked = bank_counts(args.chunk_run)
        if bank and counts_chunked:
            bank["state_chunked"] = bank_state_bytes(*counts_chunked)
    rows = rehearsal_table(
        peak_rss(small_dir),
        peak_rss(large_dir),
        cells_small,
        cells_large,
        declared_resources(),
        bank,
        chunked,
        cells_chunked,
        (QUICK_CENSUS_CHUNK, QUICK_PREDICTION_CHUNK) if quick else None,
        (state_peaks(small_dir), state_peaks(large_dir)),
    )
    print_table(rows, cells_small, cells_large)
    if quick and not chunked:
        print(
            f"small chunks ({QUICK_CENSUS_CHUNK:,} census, {QUICK_PREDICTION_CHUNK:,} prediction cells): the "
            "extrapolation leaves out what the paper's chunks cost; add --chunk-run <a run at the large size>"
        )
    if bank:
        peaks = [peak_rss(d)["augmentation_bank"]["max_rss"] for d in (small_dir, large_dir)]
        print(
            "augmentation_bank: (groups, pairs, genes) "
            + " and ".join(map(str, counts))
            + "; state "
            + " and ".join(f"{s / 1e9:.2f}" for s in states)
            + " GB, peak minus state "
            + " and ".join(f"{p / 1000 - s / 1e9:.2f}" for p, s in zip(peaks, states, strict=True))
            + f" GB; at the cap ({PAPER_TYPES} types × {max_pairs} pairs, {PAPER_GENES:,} genes) "
            f"{bank['bound'] / 1e9:.2f} GB"
        )
    print(summary_line(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
