"""Training-step throughput fed by the store loader against batches already in memory, and cold-read epoch time.

    python benchmarks/train_step.py                        # CPU: 20,000-cell store, 6 timed steps per feed
    python benchmarks/train_step.py --archs mlp --steps 4 --cold-blocks 128
    python benchmarks/train_step.py --device cuda --steps 300 --warmup 30 --memory-batches 16   # the GPU run

The paper-size GPU invocation is the last line (benchmarks/gpu_check.sh runs it). Every architecture is built from
its entry in config/paper.yaml (scTab's sizes; MLP and TabNet with augmentation from a random bank of the paper's
5,000 vectors) at 19,331 genes and K = 164 (scTab's labels closed over the bundled Cell Ontology, as
benchmarks/loss_cost.py builds them), with the paper's numerics (bf16 off, float32 matmul precision "high"). Each
step is ``hcebench.training.loop.train_step`` (augmentation, forward, loss, backward, clipping, AdamW), fed in two
ways, interleaved round by round on the same model so that other jobs on the machine slow both alike:

- loader-fed: ``hcebench.training.loop.epoch_batches``, as training reads: the store's minibatch order
  (``shuffle_block_rows`` rows per block, paper.yaml's 128), CSR rows read ``prefetch`` batches ahead by the
  background thread (``SplitData.read_batches``), densified on the device (on a CPU by that thread, into reused
  tensors: ``cpu_batches``); epoch after epoch;
- memory-fed: the first ``--memory-batches`` batches of that feed, already dense on the device, in turn.

Cells/s are wall time over the timed steps, data waits included. On CUDA each step is also bracketed by CUDA
events: GPU busy is their summed time over the wall time (and nvidia-smi's utilisation where pynvml is installed).
``loader_fed_vs_memory_fed_<arch>`` is loader-fed over memory-fed cells/s over CE and HCE together; at ≥ 0.95
the loader never starves the step. On a CPU each architecture also prints the process CPU per step of both feeds:
the difference is the loader thread's reading and densifying, which on cores the step already keeps busy bounds the
ratio at step CPU / (step CPU + loader CPU) however early the batches arrive (the data wait tells the two apart). It
also prints the floor under any CPU densifying: one core writing the batch's bytes once, and the ratio that leaves.

Then, per ``--cold-blocks`` value, one epoch of the store's loader (CSR batches, no model) read cold: every store
file is fsynced and dropped from the page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)`` first (mincore checks
that it left), then the same epoch again warm. That is the read cost of ``shuffle_block_rows`` when the split does
not fit in the page cache, the paper's case. The store is a permuted split built from a simulated census at
19,331 genes exactly as benchmarks/data_path.py builds one (its ``simulate`` and ``build``). Labels are drawn at
random in [0, K): a step's cost does not depend on them.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import mmap
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from data_path import build, simulate
from hcebench.data.store import SplitData, split_files
from hcebench.models import build_model, hyperparameters
from hcebench.models.device import float32_matmul_precision
from hcebench.training.loop import TrainSettings, epoch_batches, train_step
from hcebench.training.losses import make_loss
from loss_cost import N_GENES, reachability

ROOT = Path(__file__).resolve().parents[1]
#: The feeds timed side by side: the training loop's loader and batches in memory.
FEEDS = ("loader", "memory")
#: scTab's augmentation bank holds 5,000 difference vectors (config/paper.yaml, augmentation.n_vectors).
BANK_VECTORS = 5_000


# -- the store and the page cache ------------------------------------------------------------------
def store_files(split_dir: Path) -> list[Path]:
    return list(split_files(split_dir).values())


def drop_from_page_cache(paths: list[Path]) -> None:
    """Write back and evict every page of ``paths`` from the page cache (pages mapped by a process stay)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(paths: list[Path]) -> float:
    """Share of the pages of ``paths`` in the page cache, by mincore(2); NaN where it cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return float("nan")
    resident = total = 0
    for path in paths:
        size = path.stat().st_size
        if size == 0:
            continue
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
            view = (ctypes.c_char * size).from_buffer(mapped)  # a private mapping: reading it loads nothing
            pages = (size + page - 1) // page
            vec = (ctypes.c_ubyte * pages)()
            failed = libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), vec)
            del view
            if failed:
                return float("nan")
            resident += sum(v & 1 for v in vec)
            total += pages
    return resident / total if total else float("nan")


def store(args) -> Path:
    """The permuted store split of ``--cells`` simulated cells (built, or reused with ``--reuse``)."""
    root = Path(args.workdir or tempfile.mkdtemp(prefix="hcebench-train-step-"))
    split_dir = root / f"store_{args.cells}"
    if args.reuse and split_files(split_dir)["obs"].exists():
        print(f"store {split_dir} (reused)", flush=True)
        return split_dir
    census = root / f"census_{args.cells}" / "2023-05-15"
    if not (args.reuse and census.exists()):
        census, _ = simulate(root / f"census_{args.cells}", args.cells, args.seed)
    result = build(census, split_dir, args.chunk_size)
    print(f"store {split_dir}: {result['cells']:,} cells built in {result['seconds']:.0f} s", flush=True)
    return split_dir


def open_split(split_dir: Path, k: int) -> SplitData:
    split = SplitData.open(split_dir, N_GENES)
    split.y = np.random.default_rng(0).integers(0, k, len(split))  # random labels: the cost does not see them
    return split


# -- training steps, two feeds ---------------------------------------------------------------------
def paper_entries() -> tuple[dict, dict]:
    """config/paper.yaml's architecture entries and training block."""
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    return paper["architectures"], paper["training"]


def loader_feed(split: SplitData, settings: TrainSettings, device: torch.device):
    """(x, y) on the device as training reads them, epoch after epoch (a new prefetch thread per epoch)."""
    rng, epoch = np.random.default_rng(settings.seed), 0
    while True:
        yield from epoch_batches(split, None, settings, rng, device, epoch, 0)
        epoch += 1


class Timed:
    """Cells, wall seconds, process CPU seconds (every thread: the step's and the loader's), data-wait seconds and
    (on CUDA) GPU-busy seconds of the steps of one feed."""

    def __init__(self):
        self.cells, self.seconds, self.cpu, self.wait, self.gpu, self.steps = 0, 0.0, 0.0, 0.0, 0.0, 0

    def rate(self) -> float:
        return self.cells / self.seconds if self.seconds else float("nan")


def run_steps(feed, n: int, step, device: torch.device, into: Timed | None) -> None:
    """``n`` steps on batches from ``feed``; with ``into``, their wall time, data waits and GPU time."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    events = []
    started, cpu_started = time.perf_counter(), time.process_time()
    wait = 0.0
    cells = 0
    for _ in range(n):
        asked = time.perf_counter()
        x, y = next(feed)
        wait += time.perf_counter() - asked
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        step(x, y)
        if cuda:
            end.record()
            events.append((begin, end))
        cells += len(y)
    if cuda:
        torch.cuda.synchronize()
    if into is not None:
        into.seconds += time.perf_counter() - started
        into.cpu += time.process_time() - cpu_started
        into.wait += wait
        into.cells += cells
        into.steps += n
        into.gpu += sum(b.elapsed_time(e) for b, e in events) / 1e3


def cycle(batches: list):
    while True:
        yield from batches


def gpu_utilisation() -> str:
    """nvidia-smi's utilisation over its last sample period, where torch can ask it (pynvml)."""
    try:
        return f"{torch.cuda.utilization()} %"
    except Exception:  # no pynvml, or no NVML on this machine
        return "n/a (no pynvml)"


def time_feeds(arch: str, loss: str, split: SplitData, r: torch.Tensor, args, device) -> dict[str, Timed]:
    """Each feed's timed steps of ``arch`` trained with ``loss`` (``FEEDS``)."""
    entries, training = paper_entries()
    entry = entries[arch]
    k = r.shape[0]
    torch.manual_seed(0)
    settings = TrainSettings(
        loss=loss,
        seed=0,
        hce_form=training.get("hce_form", "paper"),
        batch_size=args.batch_size,
        shuffle_block_rows=args.block_rows,
        prefetch=args.prefetch,
        device=device.type,
        bf16=training.get("bf16", False),
        float32_matmul_precision=training.get("float32_matmul_precision", "high"),
    )
    model = build_model(arch, entry, N_GENES, k).to(device)
    hp = hyperparameters(arch, entry)
    optimiser = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    loss_fn = make_loss(loss, r, torch.ones(k), settings.hce_form).to(device)
    bank = None
    if entry.get("augment") and not args.no_augment:
        # scTab's vectors are sparse (|Δ| ≤ 0.25 zeroed) and clipped to ±1.5: a random bank of that shape.
        gen = torch.Generator().manual_seed(1)
        bank = torch.randn(BANK_VECTORS, N_GENES, generator=gen).clamp_(-1.5, 1.5)
        bank[bank.abs() <= 1.0] = 0.0
        bank = bank.to(device)
    aug_gen = torch.Generator().manual_seed(0)
    model.train()

    def step(x, y):
        train_step(model, optimiser, loss_fn, x, y, settings, device, bank, aug_gen)

    timed = {name: Timed() for name in FEEDS}
    steps = args.arch_steps.get(arch, args.steps)
    with float32_matmul_precision(settings.float32_matmul_precision):
        fed = loader_feed(split, settings, device)
        # The memory-fed batches are the loader's own first batches, already dense on the device (copies: on a CPU
        # the loader writes every batch into one reused tensor).
        batches = [(x.clone(), y.clone()) for x, y in (next(fed) for _ in range(args.memory_batches))]
        feeds = {
            "loader": fed,
            "memory": cycle([b for b in batches if len(b[1]) == args.batch_size] or batches),
        }
        for name in timed:
            run_steps(feeds[name], args.warmup, step, device, None)
        names = list(timed)
        for i, n in enumerate(len(c) for c in np.array_split(np.arange(steps), args.rounds)):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate which goes first
                run_steps(feeds[name], n, step, device, timed[name])
        for feed in feeds.values():
            feed.close()  # stops the prefetch threads
    return timed


def dense_write_seconds(batch_size: int, n_genes: int, repeats: int = 9) -> float:
    """CPU seconds one core takes to write a float32 batch_size × n_genes batch once (zeros into a reused array; the
    median of ``repeats``): the least any CPU densifying must spend. A cell holds ~10 % of the genes, whose values
    land on ~75 % of the batch's 64-byte cache lines, so scattering the values alone into a zeroed batch costs as much
    as writing all of it (measured: docs/data.md)."""
    batch = np.ones((batch_size, n_genes), dtype=np.float32)  # touched: no page faults in the timed writes
    seconds = []
    for _ in range(repeats):
        started = time.process_time()
        batch.fill(0.0)  # numpy writes on the calling thread only
        seconds.append(time.process_time() - started)
    return statistics.median(seconds)


def cpu_share(arch: str, loader: Timed, memory: Timed, write_s: float) -> str:
    """What the loader's own CPU costs a CPU step: process CPU per step loader-fed minus memory-fed is the loader's
    thread (reading and densifying). Where the memory-fed step already keeps every core busy, that CPU can only come
    out of the step's, so loader-fed throughput is at most step CPU / (step CPU + loader CPU) of memory-fed; and,
    with ``write_s`` (``dense_write_seconds``) the least a loader that densifies can spend, never above
    step CPU / (step CPU + write_s)."""
    step_cpu = memory.cpu / memory.steps
    loader_cpu = max(loader.cpu / loader.steps - step_cpu, 0.0)
    return (
        f"{arch:8s} CPU per step: memory-fed {1e3 * step_cpu:.0f} ms ({memory.cpu / memory.seconds:.2f} cores busy), "
        f"the loader's thread {1e3 * loader_cpu:.0f} ms more; with the cores shared, loader-fed at most "
        f"{step_cpu / (step_cpu + loader_cpu):.3f} of memory-fed; writing the dense batch alone takes one core "
        f"{1e3 * write_s:.0f} ms, so no loader that densifies on these cores gets above "
        f"{step_cpu / (step_cpu + write_s):.3f}"
    )


# -- cold reads ------------------------------------------------------------------------------------
def time_epoch_read(split: SplitData, batch_size: int, block_rows: int, seed: int) -> tuple[int, float]:
    """One epoch of CSR batches as the loader reads them (no model, no prefetch thread): cells and seconds."""
    order = split.batch_order(batch_size, np.random.default_rng(seed), block_rows)
    started, cells = time.perf_counter(), 0
    for batch in split.read_batches(order, prefetch=0, reuse_buffers=True):
        cells += len(batch)
    return cells, time.perf_counter() - started


def cold_reads(split_dir: Path, k: int, args) -> list[str]:
    """Per ``--cold-blocks`` value, the median over ``--cold-repeats`` of an epoch read cold, then warm."""
    lines = []
    files = store_files(split_dir)
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    for block in [int(b) for b in args.cold_blocks.split(",") if b]:
        cold, warm, left = [], [], []
        for repeat in range(args.cold_repeats):
            gc.collect()  # no SplitData of an earlier pass may keep the files mapped: mapped pages are not dropped
            drop_from_page_cache(files)
            left.append(resident_fraction(files))
            split = open_split(split_dir, k)
            cells, seconds = time_epoch_read(split, args.batch_size, block, args.seed + repeat)
            cold.append(seconds)
            warm.append(time_epoch_read(split, args.batch_size, block, args.seed + repeat)[1])
            del split
        cold_s, warm_s = statistics.median(cold), statistics.median(warm)
        lines.append(
            f"epoch read, shuffle_block_rows {block:>5}: cold {cold_s:7.2f} s ({cells / cold_s:>9,.0f} cells/s), "
            f"warm {warm_s:6.2f} s ({cells / warm_s:>9,.0f} cells/s); median of {args.cold_repeats}, store pages "
            f"cached before each cold pass at most {100 * max(left):.1f} % of {size_mb:,.0f} MB"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", default="linear,mlp,tabnet", help="entries of config/paper.yaml")
    parser.add_argument("--losses", default="ce,hce")
    parser.add_argument("--cells", type=int, default=20_000, help="cells of the simulated census and store")
    parser.add_argument("--chunk-size", type=int, default=500, help="cells per SOMA read of the store build")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument(
        "--block-rows", type=int, default=128, help="shuffle_block_rows of the loader-fed steps"
    )
    parser.add_argument("--prefetch", type=int, default=2, help="batches read ahead (training.prefetch)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per feed, architecture and loss")
    parser.add_argument(
        "--arch-steps",
        default=None,
        help="per-architecture timed steps, e.g. tabnet=2 (default on CPU: tabnet=2, ~20 s a step on 2 cores)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds the timed steps are split into"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per feed first")
    parser.add_argument("--memory-batches", type=int, default=4, help="distinct batches of the memory feed")
    parser.add_argument("--cold-blocks", default="1,16,128,1024", help="shuffle_block_rows of the cold reads")
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold reads per block size (median)")
    parser.add_argument("--no-augment", action="store_true", help="no augmentation for mlp and tabnet")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--workdir", default=None, help="where the census and store go (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse a census and store already in --workdir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    if args.arch_steps is None:
        args.arch_steps = "tabnet=2" if device.type == "cpu" else ""
    try:
        args.arch_steps = {a: int(n) for a, n in (p.split("=") for p in args.arch_steps.split(",") if p)}
    except ValueError:
        parser.error(f"--arch-steps {args.arch_steps!r}: write arch=steps pairs, e.g. tabnet=2")
    if min([args.steps, *args.arch_steps.values()]) < args.rounds:
        parser.error(f"--steps and --arch-steps must be at least --rounds ({args.rounds})")

    r = reachability()
    k = r.shape[0]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(
        f"device {device} ({gpu}), {torch.get_num_threads()} torch CPU threads, {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}); torch {torch.__version__}; batch {args.batch_size}, "
        f"{N_GENES} genes, K = {k}; shuffle_block_rows {args.block_rows}, prefetch {args.prefetch}; "
        f"{args.steps} timed steps per feed in {args.rounds} interleaved rounds after {args.warmup} warm-up",
        flush=True,
    )
    split_dir = store(args)
    split = open_split(split_dir, k)

    ratios = {}
    write_s = dense_write_seconds(args.batch_size, N_GENES) if device.type == "cpu" else 0.0
    for arch in args.archs.split(","):
        totals: dict[str, Timed] = {}
        for loss in args.losses.split(","):
            timed = time_feeds(arch, loss, split, r, args, device)
            for name, t in timed.items():
                total = totals.setdefault(name, Timed())
                total.cells += t.cells
                total.seconds += t.seconds
                total.cpu += t.cpu
                total.steps += t.steps
            loader, memory = timed["loader"], timed["memory"]
            extra = ""
            if device.type == "cuda":
                extra = (
                    f"; GPU busy {100 * loader.gpu / loader.seconds:.0f} % loader-fed, "
                    f"{100 * memory.gpu / memory.seconds:.0f} % memory-fed (nvidia-smi {gpu_utilisation()})"
                )
            print(
                f"{arch:8s} {loss:4s} loader-fed {loader.rate():>9,.0f} cells/s, memory-fed "
                f"{memory.rate():>9,.0f} cells/s, ratio {loader.rate() / memory.rate():.3f}; step "
                f"{1e3 * memory.seconds / memory.steps:.1f} ms, data wait {1e3 * loader.wait / loader.steps:.1f} ms "
                f"loader-fed{extra}",
                flush=True,
            )
        ratios[arch] = totals["loader"].rate() / totals["memory"].rate()
        if device.type == "cpu":
            print(cpu_share(arch, totals["loader"], totals["memory"], write_s), flush=True)
    del split
    cold_reads(split_dir, k, args)
    print(" ".join(f"loader_fed_vs_memory_fed_{arch}={ratio:.3f}" for arch, ratio in ratios.items()))


if __name__ == "__main__":
    main()
