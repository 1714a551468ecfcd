"""HCE/CE training-step time ratio per architecture, at the paper's gene dimension and label set.

    python benchmarks/loss_cost.py                          # batch 2048, 19,331 genes, K = 164, every architecture
    python benchmarks/loss_cost.py --batch-size 512 --reps 20 --archs linear,mlp

Labels are scTab's 164 cell types (bundled list) closed over the bundled Cell Ontology v2022-09-15 with
``hcebench.hierarchy.ontology``, so ``R`` has the real reachability structure. Each architecture is built with its
registry defaults (scTab's for linear, MLP and TabNet). Steps are forward + loss + backward + clipping +
AdamW, as in ``hcebench.training.loop``. CE and HCE steps alternate on the same model and batch (after warm-up), so
drifts in machine load hit both equally; the ratio is of the medians. On CPU steps are timed in process CPU
time (robust to other jobs on the machine), on CUDA in synchronised wall time. The last line holds
``hce_over_ce_<arch>=<ratio>`` pairs.
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


def time_steps(arch: str, r: torch.Tensor, args, device: torch.device) -> tuple[float, float]:
    k = r.shape[0]
    torch.manual_seed(0)
    model = build_model(arch, {"lr": 1e-3, "weight_decay": 0.01}, args.genes, k).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    weights = torch.ones(k)
    losses = {name: make_loss(name, r, weights, args.hce_form).to(device) for name in ("ce", "hce")}
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
        step("ce"), step("hce")
    times = {"ce": [], "hce": []}
    for i in range(args.reps):
        order = ("ce", "hce") if i % 2 == 0 else ("hce", "ce")  # alternate which goes first
        for name in order:
            times[name].append(step(name))
    return statistics.median(times["ce"]), statistics.median(times["hce"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", default=",".join(REGISTRY), help="comma-separated registry names")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--genes", type=int, default=N_GENES)
    parser.add_argument("--reps", type=int, default=30, help="CE and HCE steps timed per architecture")
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
    print(
        f"device {device}, {torch.get_num_threads()} CPU threads; batch {args.batch_size}, {args.genes} genes, "
        f"K = {r.shape[0]} (scTab labels, CL v2022-09-15, {int(r.sum() - r.shape[0])} subtype pairs); "
        f"HCE form {args.hce_form}; median of {args.reps} interleaved steps each"
    )
    ratios = {}
    for arch in args.archs.split(","):
        ce, hce = time_steps(arch, r, args, device)
        ratios[arch] = hce / ce
        print(f"{arch:12s} CE {1e3 * ce:9.1f} ms/step   HCE {1e3 * hce:9.1f} ms/step   HCE/CE {hce / ce:.3f}")
    print(" ".join(f"hce_over_ce_{arch}={ratio:.3f}" for arch, ratio in ratios.items()))


if __name__ == "__main__":
    main()
