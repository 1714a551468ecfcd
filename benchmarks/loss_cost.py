"""Training-step time of every registered loss over CE's, per architecture, at the paper's gene dimension and labels.

    python benchmarks/loss_cost.py                          # batch 2048, 19,331 genes, K = 164, every arch and loss
    python benchmarks/loss_cost.py --batch-size 512 --reps 20 --archs linear,mlp --losses ce,hce,hxe

Labels are scTab's 164 cell types (bundled list) closed over the bundled Cell Ontology v2022-09-15 with
``hcebench.hierarchy.ontology``, so ``R`` has the real reachability structure. Each architecture is built with its
registry defaults (scTab's for linear, MLP and TabNet), each loss with its registry defaults. Steps are forward +
loss + backward + clipping + AdamW, as in ``hcebench.training.loop``. The losses' steps interleave on the same model
and batch (after warm-up; the order rotates every round), so drifts in machine load hit all of them equally; the
ratio is of the medians. On CPU steps are timed in process CPU time (robust to other jobs on the machine), on CUDA
in synchronised wall time. First a line with each loss's own cost (forward + backward on a batch of logits, no
model); then one line per architecture x loss: the measured step ratio, and the ratio that loss's own extra cost
implies (CE step + loss alone - CE alone, over the CE step), which the noise of a shared machine hardly moves. The
last line holds the measured ``<loss>_over_ce_<arch>=<ratio>`` pairs. The target is <= 1.03 x CE per step at
K = 164; a loss that cannot meet it says why in its module docstring.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import resources

import numpy as np
import torch
from hcebench.hierarchy.ontology import bundled_obo_path, load_ontology
from hcebench.models import REGISTRY, build_model, logits_and_aux
from hcebench.training.losses import REGISTRY as LOSSES
from hcebench.training.losses import make_loss

N_GENES = 19_331  # scTab's protein-coding genes measured by Census 2023-05-15


def reachability() -> torch.Tensor:
    path = (
        resources.files("hcebench") / "resources" / "sctab_cell_types_2023-05-15.txt"
    )  # one CL name per line
    ontology = load_ontology(bundled_obo_path())
    labels = [ontology.id_of(name) for name in path.read_text().splitlines() if name.strip()]
    hierarchy = ontology.closure(labels)
    return torch.from_numpy(hierarchy.reachability.astype(np.float32))


def batch(n: int, genes: int, k: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """~10 % non-zero log1p-normalised values (a real cell's sparsity) and uniform labels."""
    x = np.zeros((n, genes), np.float32)
    nz = rng.random((n, genes)) < 0.1
    x[nz] = np.log1p(rng.gamma(1.0, 2.0, nz.sum())).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(rng.integers(0, k, n))


def time_steps(arch: str, r: torch.Tensor, names: list[str], args, device: torch.device) -> dict[str, float]:
    """Median seconds per training step of each loss in ``names`` on one model and batch."""
    k = r.shape[0]
    torch.manual_seed(0)
    model = build_model(arch, {"lr": 1e-3, "weight_decay": 0.01}, args.genes, k).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weights = torch.ones(k)
    losses = {name: make_loss(name, r, weights, args.hce_form).to(device) for name in names}
    x, y = batch(args.batch_size, args.genes, k, np.random.default_rng(0))
    x, y = x.to(device), y.to(device)

    # On CPU, process CPU time: unlike wall time it does not count the time other jobs hold the cores, so the
    # ratio survives a shared machine (run with --threads 1 so it is one core's time). On CUDA, synchronised wall.
    clock = time.perf_counter if device.type == "cuda" else time.process_time

    def step(name: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = clock()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits, aux = logits_and_aux(model(x))
        loss = losses[name](logits, y) + (aux.float() if aux is not None else 0.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - started

    for _ in range(args.warmup):
        for name in names:
            step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.reps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:  # rotate which goes first
            times[name].append(step(name))
    return {name: statistics.median(values) for name, values in times.items()}


def time_losses_alone(r: torch.Tensor, names: list[str], args, device: torch.device) -> dict[str, float]:
    """Median seconds of each loss's forward + backward on a batch of logits, without a model: the loss's own cost,
    which machine noise hardly blurs (a step's noise is a few % of tens of ms; this is ~1 ms)."""
    k = r.shape[0]
    gen = torch.Generator().manual_seed(1)
    # The model's output dtype: bf16 under the loop's CUDA autocast, float32 on CPU.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    z0 = torch.randn(args.batch_size, k, generator=gen).to(device=device, dtype=dtype)
    y = torch.randint(0, k, (args.batch_size,), generator=gen).to(device)
    losses = {name: make_loss(name, r, torch.ones(k), args.hce_form).to(device) for name in names}
    clock = time.perf_counter if device.type == "cuda" else time.process_time

    def run(name: str) -> float:
        z = z0.clone().requires_grad_()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = clock()
        losses[name](z, y).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - started

    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.warmup + max(args.reps, 25)):
        for name in names:
            seconds = run(name)
            if i >= args.warmup:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", default=",".join(REGISTRY), help="comma-separated registry names")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--genes", type=int, default=N_GENES)
    parser.add_argument(
        "--losses", default=",".join(LOSSES), help="comma-separated loss names (ce is always timed)"
    )
    parser.add_argument("--reps", type=int, default=30, help="steps timed per loss and architecture")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--hce-form", default="paper", choices=["paper", "stable"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    r = reachability()
    names = ["ce", *(name for name in args.losses.split(",") if name != "ce")]
    unknown = [name for name in names if name not in LOSSES]
    if unknown:
        parser.error(f"--losses: unknown {unknown}; choose from {list(LOSSES)}")
    print(
        f"device {device}, {torch.get_num_threads()} CPU threads; batch {args.batch_size}, {args.genes} genes, "
        f"K = {r.shape[0]} (scTab labels, CL v2022-09-15, {int(r.sum() - r.shape[0])} subtype pairs); "
        f"HCE form {args.hce_form}; median of {args.reps} interleaved steps each"
    )
    alone = time_losses_alone(r, names, args, device)
    print(
        "loss alone (forward + backward on the logits): "
        + ", ".join(f"{name} {1e3 * alone[name]:.2f} ms" for name in names)
    )
    ratios = {}
    for arch in args.archs.split(","):
        seconds = time_steps(arch, r, names, args, device)
        for name in names:
            ratio = seconds[name] / seconds["ce"]
            # The step ratio the loss's own extra cost implies: free of the step-to-step noise of a shared machine.
            implied = (seconds["ce"] + alone[name] - alone["ce"]) / seconds["ce"]
            print(
                f"{arch:12s} {name:12s} {1e3 * seconds[name]:9.1f} ms/step   over CE {ratio:.3f}   "
                f"(from the loss alone {implied:.3f})"
            )
            if name != "ce":
                ratios[f"{name}_over_ce_{arch}"] = ratio
    print(" ".join(f"{key}={ratio:.3f}" for key, ratio in ratios.items()))


if __name__ == "__main__":
    main()
