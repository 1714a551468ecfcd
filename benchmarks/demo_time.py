"""Where a finished run's wall time went: training CPU against everything else (issue: demo overhead).

    python benchmarks/demo_time.py                    # results/demo and the newest .snakemake/log
    python benchmarks/demo_time.py --run tiny --log .snakemake/log/2026-...snakemake.log

Reads the run's wall time from the Snakemake log (its first and last time stamps), each job's duration from its
Snakemake benchmark file (``results/<run>/benchmarks/``: every rule writes one), and every ``train.json`` of the
run (``cpu_seconds``: the training loop's process CPU time, set-up to model.pt). Prints jobs per rule with their
summed and longest durations, then the last line::

    wall_s=<first to last stamp> train_cpu_s=<sum> jobs=<n> wall_over_train_cpu_per_core=<wall / (train_cpu / cores)>

The ratio is 1.0 when the wall time is exactly the training CPU spread over the cores: the rest (data, start-up
of every job, evaluation, figures) then costs nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def log_span(path: Path) -> tuple[datetime, datetime]:
    """First and last time stamp of a Snakemake log."""
    stamps = [
        datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        for line in path.read_text().splitlines()
        if (m := STAMP.match(line))
    ]
    if not stamps:
        raise SystemExit(f"{path}: no timestamps; is it a Snakemake log?")
    return stamps[0], stamps[-1]


def job_durations(results: Path) -> dict[str, list[float]]:
    """Each rule's job durations (seconds), from the run's benchmark files (``<rule>/<job>.tsv`` or ``<rule>.tsv``)."""
    durations: dict[str, list[float]] = defaultdict(list)
    root = results / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        parts = path.relative_to(root).parts
        rule = parts[0] if len(parts) > 1 else path.stem
        with open(path, newline="") as f:
            durations[rule].extend(float(row["s"]) for row in csv.DictReader(f, delimiter="\t"))
    if not durations:
        raise SystemExit(f"{root}: no benchmark files; has the run finished?")
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default="demo", help="results/<run> (default demo)")
    parser.add_argument("--log", type=Path, help="Snakemake log (default: the newest in .snakemake/log)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    log = args.log or max(Path(".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    first, last = log_span(log)
    durations = job_durations(Path("results", args.run))
    train = [
        json.loads(p.read_text()) for p in Path("results", args.run, "models").glob("*/*/seed*/train.json")
    ]
    train_cpu = sum(t["cpu_seconds"] for t in train)
    wall = (last - first).total_seconds()
    print(f"{log}: {sum(map(len, durations.values()))} jobs, {len(train)} train.json")
    print(f"{'rule':24s} {'jobs':>5s} {'sum s':>8s} {'max s':>7s}")
    for rule, times in sorted(durations.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:24s} {len(times):5d} {sum(times):8.0f} {max(times):7.0f}")
    ratio = wall / (train_cpu / args.cores) if train_cpu else float("nan")
    n_jobs = sum(map(len, durations.values()))
    print(
        f"wall_s={wall:.0f} train_cpu_s={train_cpu:.0f} jobs={n_jobs} wall_over_train_cpu_per_core={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
