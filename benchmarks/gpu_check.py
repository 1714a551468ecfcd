"""The GPU checks in one prepared script: training-step feed, loss cost and a short real training run on CUDA.

    python benchmarks/gpu_check.py                 # on a CUDA machine; stops at once, status 2, without one
    python benchmarks/gpu_check.py --cpu-smoke     # the same code paths at tiny sizes on the CPU (~5 min on 2 cores)

Every figure goes under ``$OUT`` (``--out``; default ``results/gpu_check``): one ``<stage>.txt`` per stage (its
command, output and exit status), the training run's ``train.json`` and ``history.tsv`` files, and
``summary.txt`` / ``summary.json`` with each check, its figure, its target and PASS or FAIL. Stages run in turn,
each in a subprocess under its own time limit and all within ``--budget`` seconds (on the GPU 560, under the
device's 10-minute limit per command), and a stage that fails or overruns is recorded and the next one still runs:

1. ``env``: nvidia-smi, torch and its CUDA build, the packages that set the figures.
2. ``train_step``: benchmarks/train_step.py at the paper's sizes (config/paper.yaml's linear, MLP and TabNet,
   19,331 genes, K = 164, batch 2,048, augmentation, 128-row shuffle blocks, prefetch 2) on the GPU, with GPU busy
   time; target ``loader_fed_vs_memory_fed_<arch>`` ≥ 0.95 (the loader never starves the step).
3. ``loss_cost_<arch>``: benchmarks/loss_cost.py on the GPU (bf16 autocast as the loop's CUDA default), CE and
   HCE, one architecture per stage; target ``hce_over_ce_<arch>`` ≤ 1.03 for linear, MLP and TabNet (the
   transformer is reported, not judged; the smoke skips it).
4. ``training``: Snakemake trains linear, MLP and TabNet (paper entries, two epochs, seed 0) with CE and HCE
   from a small simulated census at 19,331 genes, through the workflow's own rules (simulate, select, hierarchy,
   store, augmentation bank, train); target: every ``train.json`` says it ran on CUDA, with a finite validation
   macro F1.

Exit status: 0 when every check passes, 1 when one fails, 2 when torch sees no CUDA device (nothing else runs).
With ``--cpu-smoke`` every stage runs on the CPU at tiny sizes (small store, batches of 128, a few steps, one
epoch; still 19,331 genes). Its figures are reported against the targets without judging them (a CPU says nothing
about a GPU's ratios), but a stage that fails or gives no figure, or a model that did not train on the device
asked for, fails it: the smoke proves the script and the code paths, not the GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
TARGET_FEED = 0.95  # loader-fed over memory-fed cells/s
TARGET_LOSS_COST = 1.03  # HCE over CE step time
JUDGED_ARCHS = ("linear", "mlp", "tabnet")
#: Seconds each stage may run at most; all of them together stay within ``--budget`` (the summary is always written).
LIMITS = {"env": 60, "train_step": 270, "loss_cost": 60, "training": 210}
#: The whole script's seconds on the GPU: under the device's 10-minute limit per command, with room to spare.
GPU_BUDGET = 560


def no_gpu_reason() -> str | None:
    """Why this machine cannot run the GPU checks, or None when torch sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return "torch is not installed: install the project (pip install -e .) with a CUDA build of torch"
    if torch.version.cuda is None:
        return (
            f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch==2.13.0 "
            "(the PyPI wheel on Linux) on the GPU machine"
        )
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device: run on a GPU node "
            "(check nvidia-smi and CUDA_VISIBLE_DEVICES), or pass --cpu-smoke to test this script on the CPU"
        )
    return None


def run_stage(
    name: str, cmd: list[str], out: Path, limit: float, deadline: float, cwd: Path = ROOT
) -> tuple[int, str]:
    """Run ``cmd`` for at most ``limit`` seconds and never past ``deadline`` (``time.monotonic``), leaving a few
    seconds to write the summary; write its command, output and status to ``out/<name>.txt``.

    The command runs in a session of its own, so that at the limit its children (Snakemake's jobs, a benchmark's
    subprocesses) are stopped with it; status 124 then."""
    limit = min(limit, deadline - time.monotonic() - 10)
    if limit < 5:
        (out / f"{name}.txt").write_text(f"$ {' '.join(cmd)}\n[not run: the time budget is spent]\n")
        print(f"[{name}] not run: the time budget is spent", flush=True)
        return 124, ""
    started = time.perf_counter()
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        text, _ = proc.communicate(timeout=limit)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        status = 124
        text += f"\n[{name}] stopped at its limit of {limit:.0f} s\n"
    seconds = time.perf_counter() - started
    (out / f"{name}.txt").write_text(f"$ {' '.join(cmd)}\n{text}\n[exit status {status}, {seconds:.0f} s]\n")
    print(f"[{name}] exit status {status} in {seconds:.0f} s", flush=True)
    return status, text


def last_pairs(text: str) -> dict[str, float]:
    """The ``key=value`` pairs of the last line of ``text`` that has any."""
    for line in reversed(text.strip().splitlines()):
        pairs = re.findall(r"(\w+)=([-+0-9.eE]+|nan|inf)", line)
        if pairs:
            return {k: float(v) for k, v in pairs}
    return {}


class Summary:
    """Checks as (name, figure, target, verdict), written to summary.txt and summary.json.

    On the GPU a check passes when its stage ran, gave the figure and met the target. In the CPU smoke the targets
    are reported, not judged (``judge_target``), but a stage that failed or gave no figure still fails."""

    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.rows: list[dict] = []

    def check(
        self, name: str, value: float | None, target: str, ran: bool, met: bool, judge_target=None
    ) -> None:
        judged = not self.smoke if judge_target is None else judge_target
        found = ran and value is not None and not math.isnan(value)
        if not found:
            verdict = "FAIL"
        elif judged:
            verdict = "PASS" if met else "FAIL"
        else:
            verdict = "ran"
        self.rows.append({"check": name, "value": value, "target": target, "verdict": verdict})

    def failed(self) -> bool:
        return any(row["verdict"] == "FAIL" for row in self.rows)

    def write(self, out: Path, header: str) -> None:
        lines = [header]
        for row in self.rows:
            value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
            lines.append(f"{row['verdict']:5s} {row['check']:48s} {value:>8s}   target {row['target']}")
        (out / "summary.txt").write_text("\n".join(lines) + "\n")
        (out / "summary.json").write_text(json.dumps({"header": header, "checks": self.rows}, indent=1))
        print("\n".join(lines), flush=True)


def training_config(smoke: bool) -> dict:
    """A small run of the workflow at 19,331 genes: paper entries of linear, MLP and TabNet, two epochs, seed 0."""
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    return {
        "run": "gpu_check",
        "census": {
            "source": "simulated",
            "chunk_size": 2000,
            "simulate": {
                "seed": 3,
                "n_genes": 19331,
                "n_train_datasets": 8,
                "n_ood_datasets": 2,
                "cells_per_dataset": [150, 200] if smoke else [400, 600],
            },
        },
        "filters": {"min_cells_per_type": 20, "min_tech_samples_per_type": 2},
        "training": {
            "seeds": [0],
            "losses": ["ce", "hce"],
            "max_epochs": 1 if smoke else 2,
            "patience": 2,
            "batch_size": 128 if smoke else 512,
            "device": "cpu" if smoke else "cuda",
            "bf16": False,
            "float32_matmul_precision": "high",
            "shuffle_block_rows": 128,
            "prefetch": 2,
        },
        # scTab's bank, scaled to a few thousand training cells (as tests/data/tiny_config.yaml scales it).
        "augmentation": {"subsample_cells": 5000, "n_clusters": 5, "min_cluster_size": 10, "n_vectors": 200},
        "architectures": {arch: paper["architectures"][arch] for arch in JUDGED_ARCHS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-smoke", action="store_true", help="run every stage on the CPU at tiny sizes")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "results" / "gpu_check"))
    parser.add_argument(
        "--workdir",
        default=None,
        help="scratch space for the census, store and run (default: a temporary directory)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for all stages (default {GPU_BUDGET}; smoke 1200)",
    )
    args = parser.parse_args()
    smoke = args.cpu_smoke
    deadline = time.monotonic() + (args.budget or (1200 if smoke else GPU_BUDGET))
    if not smoke:
        reason = no_gpu_reason()
        if reason:
            print(f"gpu_check: no GPU: {reason}", file=sys.stderr)
            sys.exit(2)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Not under out: the census and store (~0.5 GB) are scratch, and $OUT comes back from the GPU machine.
    work = (
        Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="hcebench-gpu-check-"))
    )
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    device = "cpu" if smoke else "cuda"
    summary = Summary(smoke)

    env = (
        "import torch, platform; from hcebench.provenance import package_versions; "
        "print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, "
        "'cudnn', torch.backends.cudnn.version()); "
        "print([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]); "
        "print(package_versions())"
    )
    run_stage("env", [py, "-c", env], out, LIMITS["env"], deadline)
    if not smoke:
        run_stage("nvidia_smi", ["nvidia-smi"], out, LIMITS["env"], deadline)

    # 2. The training step fed by the loader against batches in memory; cold reads per shuffle_block_rows.
    if smoke:
        sizes = ["--cells", "600", "--batch-size", "128", "--steps", "2", "--rounds", "1", "--warmup", "1"]
        sizes += ["--memory-batches", "2", "--arch-steps", "", "--cold-blocks", "1,16,128,1024"]
    else:
        sizes = ["--cells", "20000", "--steps", "200", "--warmup", "20", "--memory-batches", "16"]
    status, text = run_stage(
        "train_step",
        [py, str(BENCH / "train_step.py"), "--device", device, "--workdir", str(work / "train_step"), *sizes],
        out,
        LIMITS["train_step"],
        deadline,
    )
    feed = last_pairs(text)
    for arch in JUDGED_ARCHS:
        value = feed.get(f"loader_fed_vs_memory_fed_{arch}")
        summary.check(
            f"train_step loader_fed_vs_memory_fed_{arch}",
            value,
            f">= {TARGET_FEED}",
            ran=status == 0,
            met=value is not None and value >= TARGET_FEED,
        )

    # 3. HCE's cost over CE per step on the GPU, one architecture per stage (a slow one cannot take the others).
    cost_args = ["--device", device]
    if smoke:
        cost_args += ["--batch-size", "64", "--reps", "2", "--warmup", "1"]
    help_text = subprocess.run(
        [py, str(BENCH / "loss_cost.py"), "--help"], capture_output=True, text=True
    ).stdout
    if (
        "--losses" in help_text
    ):  # a loss_cost.py that times every registered loss: CE and HCE are what is judged
        cost_args += ["--losses", "ce,hce"]
    for arch in JUDGED_ARCHS + (() if smoke else ("transformer",)):
        status, text = run_stage(
            f"loss_cost_{arch}",
            [py, str(BENCH / "loss_cost.py"), "--archs", arch, *cost_args],
            out,
            LIMITS["loss_cost"],
            deadline,
        )
        value = last_pairs(text).get(f"hce_over_ce_{arch}")
        summary.check(
            f"loss_cost hce_over_ce_{arch}",
            value,
            f"<= {TARGET_LOSS_COST}" if arch in JUDGED_ARCHS else "reported",
            ran=status == 0,
            met=value is not None and value <= TARGET_LOSS_COST,
            judge_target=None if arch in JUDGED_ARCHS else False,
        )

    # 4. A short real training run through the workflow's rules.
    wf = work / "workflow"
    wf.mkdir(parents=True, exist_ok=True)
    config = wf / "gpu_check.yaml"
    config.write_text(yaml.safe_dump(training_config(smoke), sort_keys=False))
    targets = [
        f"results/gpu_check/models/{arch}/{loss}/seed0/train.json"
        for arch in JUDGED_ARCHS
        for loss in ("ce", "hce")
    ]
    cores = str(os.cpu_count() or 1)
    snakemake = [py, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(wf)]
    snakemake += ["--configfile", str(config), "--cores", cores, *targets]
    status, _ = run_stage("training", snakemake, out, LIMITS["training"], deadline)
    for target in targets:
        summary_path = wf / target
        arch, loss = summary_path.parts[-4], summary_path.parts[-3]
        trained_on, f1 = "missing", float("nan")
        if summary_path.exists():
            trained = json.loads(summary_path.read_text())
            trained_on, f1 = trained.get("device", "?"), float(trained.get("best_val_macro_f1", float("nan")))
            keep = out / "training" / arch / loss
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("train.json", "history.tsv"):
                if (summary_path.parent / name).exists():
                    (keep / name).write_text((summary_path.parent / name).read_text())
        summary.check(
            f"training {arch} {loss} on {trained_on}: best val macro F1",
            f1,
            f"device {device}, finite F1",
            ran=status == 0,
            met=trained_on.startswith(device),
            judge_target=True,  # where a model trained is no GPU figure: the smoke checks it too
        )

    mode = "CPU smoke (figure targets reported, not judged)" if smoke else "GPU"
    summary.write(out, f"gpu_check {mode}, {time.strftime('%Y-%m-%d %H:%M')}; figures in {out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)  # scratch: the figures are under out
    sys.exit(1 if summary.failed() else 0)


if __name__ == "__main__":
    main()
