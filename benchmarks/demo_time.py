"""Where a finished run's wall time went: training CPU against everything else (issue: demo overhead).

    python benchmarks/demo_time.py                    # results/demo and the newest .snakemake/log
    python benchmarks/demo_time.py --run tiny --log .snakemake/log/2026-...snakemake.log

Reads the Snakemake log of the run (job start and finish stamps, rule names) and every ``train.json`` of the run
(``cpu_seconds``: the training loop's process CPU time, set-up to model.pt). Prints jobs per rule with their
summed and longest durations, then the last line::

    wall_s=<first to last stamp> train_cpu_s=<sum> jobs=<n> wall_over_train_cpu_per_core=<wall / (train_cpu / cores)>

The ratio is 1.0 when the wall time is exactly the training CPU spread over the cores: the rest (data, start-up
of every job, evaluation, figures) then costs nothing. Stamps are whole seconds, so short jobs read 0-1 s.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def parse_log(path: Path) -> tuple[datetime, datetime, dict[str, list[float]]]:
    """First and last stamp of a Snakemake log and each rule's job durations (seconds)."""
    stamps, started, rule_of, durations = [], {}, {}, defaultdict(list)
    stamp, rule = None, None
    for line in path.read_text().splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            stamps.append(stamp)
        elif m := START.match(line):
            rule = m.group(1)
        elif (m := JOBID.match(line)) and rule is not None:
            started[m.group(1)], rule_of[m.group(1)] = stamp, rule
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            durations[rule_of[m.group(1)]].append((stamp - started[m.group(1)]).total_seconds())
    if not stamps:
        raise SystemExit(f"{path}: no timestamps; is it a Snakemake log?")
    return stamps[0], stamps[-1], durations


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default="demo", help="results/<run> (default demo)")
    parser.add_argument("--log", type=Path, help="Snakemake log (default: the newest in .snakemake/log)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    log = args.log or max(Path(".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    first, last, durations = parse_log(log)
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
