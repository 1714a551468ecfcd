"""Train one classifier with CE or HCE: the paper's loop, readable top to bottom.

AdamW, StepLR (× gamma every epoch), gradient clipping, class-balanced loss, and early stopping on the
validation split's hierarchy-corrected macro F1 (the paper's selection metric). The best epoch's weights
are kept. The same loop serves every architecture; only the model and its hyperparameters change. A model
may return ``(logits, aux_loss)``; ``aux_loss`` (e.g. TabNet's mask sparsity) is added to CE and HCE alike.

For real runs on shared machines:

- bf16 autocast of the forward pass on CUDA (``training.bf16``); the losses compute in float32 regardless.
- A checkpoint, ``<out>/checkpoint.pt``, is written atomically after every epoch: model, optimiser,
  scheduler, the numpy and torch RNG states, history, best weights and early-stopping counters. A job
  started again with the same settings resumes from it; one with other settings ignores it.
- SIGTERM or SIGUSR1 (SLURM preemption, time limit; Snakemake cancelling a job) saves a checkpoint at the
  current minibatch and exits with status ``EXIT_INTERRUPTED``, so the scheduler reruns the job and it
  resumes. A resumed run finishes exactly as an uninterrupted one would (on CPU: bit for bit), because the
  checkpoint also holds the epoch's shuffle state and the position in it.
- A log line per epoch, ``history.tsv`` rewritten per epoch, TensorBoard scalars optionally.

Training minibatches come from the store (shuffled CSR rows, ``shuffle_block_rows`` consecutive rows per
shuffle block, read ``prefetch`` batches ahead by a background thread and densified on the device) or, with
``data_source: tiledbsoma_ml``, straight from the census's SOMA (``hcebench.soma_stream``). An architecture
whose entry sets ``augment: true`` has scTab's augmentation applied to every training batch on the device.
The checkpoint is deleted once ``model.pt``, ``history.tsv`` and ``train.json`` are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .augmentation import augment
from .io import atomic_path, read_json, write_json
from .losses import make_loss
from .metrics import f1_summary
from .models import build_model, hyperparameters, logits_and_aux
from .ontology import LabelHierarchy
from .store import SplitData, _prefetched

if TYPE_CHECKING:
    from .soma_stream import SomaStream

log = logging.getLogger(__name__)

#: Exit status after a signal-triggered checkpoint: EX_TEMPFAIL, "try again" (non-zero so the job is rerun).
EXIT_INTERRUPTED = 75
CHECKPOINT = "checkpoint.pt"
RESUME_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclass
class TrainSettings:
    loss: str  # "ce" or "hce"
    seed: int
    hce_form: str = "paper"
    batch_size: int = 2048
    max_epochs: int = 50
    patience: int = 10
    lr_gamma: float = 0.9
    grad_clip: float = 1.0
    device: str = "auto"
    bf16: bool = True
    tensorboard: bool = False
    data_source: str = "store"  # "store" or "tiledbsoma_ml"
    shuffle_block_rows: int = 1
    prefetch: int = 2
    threads: int = 1

    @classmethod
    def from_config(
        cls, training: dict, loss: str, seed: int, threads: int = 1, entry: dict | None = None
    ) -> TrainSettings:
        """Settings from the ``training`` block, with the architecture entry's ``training:`` overrides."""
        keys = ("hce_form", "batch_size", "max_epochs", "patience", "lr_gamma", "grad_clip", "device",
                "bf16", "tensorboard", "data_source", "shuffle_block_rows", "prefetch")
        values = {k: training[k] for k in keys if k in training}
        values.update((entry or {}).get("training") or {})
        return cls(loss=loss, seed=int(seed), threads=threads, **values)

    def fingerprint(self) -> dict:
        """What a checkpoint must match to be resumed: everything that changes the result."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads", "tensorboard", "prefetch")}


class Interrupted(SystemExit):
    """Raised after a signal-triggered checkpoint; exits the process with ``EXIT_INTERRUPTED``."""

    def __init__(self, signum: int):
        super().__init__(EXIT_INTERRUPTED)
        self.signum = signum


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return the numpy generator that shuffles the training set."""
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False  # benchmark mode picks kernels by timing: not reproducible
    return np.random.default_rng(seed)


def autocast(device: torch.device, bf16: bool = True):
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def load_training_data(store: Path, hierarchy_dir: Path) -> tuple[dict, LabelHierarchy, SplitData, SplitData]:
    meta = read_json(store / "meta.json")
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    if list(hierarchy.term_ids) != meta["labels"]:
        raise ValueError(
            f"label order of {hierarchy_dir} differs from {store}/meta.json; rebuild both from the same selection"
        )
    train = SplitData.open(store / "train", meta["n_genes"], meta["labels"])
    val = SplitData.open(store / "val", meta["n_genes"], meta["labels"])
    return meta, hierarchy, train, val


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device, bf16: bool = True
) -> np.ndarray:
    model.eval()
    out = []
    for batch in data.sparse_batches(batch_size, reuse_buffers=True):  # each batch densified before the next
        with autocast(device, bf16):
            logits, _ = logits_and_aux(model(batch.to_dense(device)))
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class _SignalFlag:
    """Records SIGTERM/SIGUSR1 instead of dying, so the loop can checkpoint first; restores handlers on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _SignalFlag:
        for sig in RESUME_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._record)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def _record(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _tensorboard_writer(settings: TrainSettings, out_dir: Path):
    if not settings.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("training.tensorboard is true but the tensorboard package is not installed; "
                    "`pip install tensorboard` or set it to false. Continuing without.")
        return None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def train(
    store: str | os.PathLike,
    hierarchy_dir: str | os.PathLike,
    architecture: str,
    entry: dict,
    settings: TrainSettings,
    out_dir: str | os.PathLike,
    *,
    bank: np.ndarray | None = None,
    stream: SomaStream | None = None,
) -> dict:
    """Train ``architecture`` and write ``model.pt``, ``history.tsv`` and ``train.json`` into ``out_dir``.

    ``bank`` is scTab's augmentation bank (vectors × genes), required when the entry sets ``augment: true``.
    ``stream`` replaces the store's training split as the minibatch source (``data_source: tiledbsoma_ml``).
    Resumes from ``out_dir/checkpoint.pt`` when it was written with the same architecture entry, settings
    and data. On SIGTERM/SIGUSR1 writes that checkpoint and raises ``Interrupted`` (a ``SystemExit`` with
    status ``EXIT_INTERRUPTED``).
    """
    cpu_started = time.process_time()
    store, hierarchy_dir, out_dir = Path(store), Path(hierarchy_dir), Path(out_dir)
    torch.set_num_threads(settings.threads)
    rng = seed_everything(settings.seed)
    device = resolve_device(settings.device)
    meta, hierarchy, train_data, val_data = load_training_data(store, hierarchy_dir)
    if (settings.data_source == "tiledbsoma_ml") != (stream is not None):
        raise ValueError(f"training.data_source is {settings.data_source!r} but a stream was "
                         f"{'not ' if stream is None else ''}given; the train script builds it from the census")
    augmenting = bool(entry.get("augment", False))
    if augmenting:
        if bank is None:
            raise ValueError(f"architectures.{architecture}.augment is true but no augmentation bank was given; "
                             "the train rule passes results/<run>/augmentation/bank.npy")
        bank = np.ascontiguousarray(bank, dtype=np.float32)
        if bank.ndim != 2 or bank.shape[1] != meta["n_genes"]:
            raise ValueError(f"augmentation bank has shape {bank.shape}; expected (vectors, {meta['n_genes']} genes) "
                             "of this store: rebuild it with the augmentation_bank rule")
        bank_t = torch.from_numpy(bank).to(device)
    aug_gen = torch.Generator().manual_seed(settings.seed)

    hp = hyperparameters(architecture, entry)
    model = build_model(architecture, entry, meta["n_genes"], hierarchy.k).to(device)
    weights = torch.from_numpy(np.load(store / "class_weights.npy"))
    reach = torch.from_numpy(hierarchy.reachability.astype(np.float32))
    loss_fn = make_loss(settings.loss, reach, weights, settings.hce_form).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=settings.lr_gamma)

    identity = {
        "architecture": architecture,
        "entry": entry,
        "settings": settings.fingerprint(),
        "reachability_hash": hierarchy.content_hash,
        "n_cells": meta.get("n_cells"),
        "bank": hashlib.sha1(bank.tobytes()).hexdigest() if augmenting else None,
    }
    state = {"epoch": 0, "batch": 0, "history": [], "best_f1": -math.inf, "best_state": None, "best_epoch": -1,
             "stale": 0, "epoch_rng": None, "partial": (0.0, 0, 0.0)}
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("identity") == identity:
            model.load_state_dict(ckpt["model"])
            optimiser.load_state_dict(ckpt["optimiser"])
            scheduler.load_state_dict(ckpt["scheduler"])
            rng.bit_generator.state = ckpt["rng"]
            torch.set_rng_state(ckpt["torch_rng"])
            aug_gen.set_state(ckpt["aug_rng"])
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
            state = ckpt["state"]
            log.info("resumed from %s at epoch %d, minibatch %d", ckpt_path, state["epoch"], state["batch"])
        else:
            log.warning("ignoring %s: written for another architecture entry, settings or data", ckpt_path)

    def save_checkpoint() -> None:
        with atomic_path(ckpt_path) as tmp:
            torch.save({
                "identity": identity, "state": state,
                "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "aug_rng": aug_gen.get_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            }, tmp)

    def epoch_batches(epoch: int, start: int):
        """(x, y) on the device for this epoch's minibatches from number ``start`` on, read ahead in a thread."""
        if stream is None:
            # Sorted row sets of the (block-)shuffled split; CSR until densified on the device.
            order = train_data.batch_order(settings.batch_size, rng, settings.shuffle_block_rows)
            # Reused read buffers are safe: each batch is densified (copied) before the next is asked for.
            for batch in train_data.read_batches(order[start:], prefetch=settings.prefetch, reuse_buffers=True):
                yield batch.to_dense(device), torch.from_numpy(batch.y).to(device)
        else:
            # Deterministic per (seed, epoch), so a resumed epoch replays the same order and skips what was done.
            read = itertools.islice(stream.batches(settings.batch_size, seed=settings.seed, epoch=epoch), start, None)
            for x, y in _prefetched(read, settings.prefetch):
                yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    writer = _tensorboard_writer(settings, out_dir)
    n_train = len(train_data) if stream is None else len(stream)
    n_batches = math.ceil(n_train / settings.batch_size)  # == len(train_data.batch_order(...))
    with _SignalFlag() as flag:
        while state["epoch"] < settings.max_epochs and state["stale"] < settings.patience:
            epoch = state["epoch"]
            if state["batch"] == 0:
                state["epoch_rng"] = rng.bit_generator.state  # replayed to rebuild this epoch's shuffle on resume
                state["partial"] = (0.0, 0, 0.0)
            else:
                rng.bit_generator.state = state["epoch_rng"]
            started = time.perf_counter()
            total, n_seen, seconds_before = state["partial"]
            model.train()
            for b, (x, y) in enumerate(epoch_batches(epoch, state["batch"]), start=state["batch"]):
                if len(y) >= 2:  # BatchNorm cannot normalise a single cell
                    if augmenting:
                        x = augment(x, bank_t, aug_gen)
                    with autocast(device, settings.bf16):
                        logits, aux = logits_and_aux(model(x))
                    loss = loss_fn(logits, y)
                    if aux is not None:
                        loss = loss + aux.float()
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                    optimiser.step()
                    total += loss.item() * len(y)
                    n_seen += len(y)
                if flag.signum is not None and b + 1 < n_batches:
                    state["batch"] = b + 1
                    state["partial"] = (total, n_seen, seconds_before + time.perf_counter() - started)
                    save_checkpoint()
                    log.warning("signal %d: checkpoint at epoch %d, minibatch %d; exiting with status %d",
                                flag.signum, epoch, b + 1, EXIT_INTERRUPTED)
                    raise Interrupted(flag.signum)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()

            logits = torch.from_numpy(predict_logits(model, val_data, settings.batch_size, device, settings.bf16))
            val_y = torch.from_numpy(val_data.y)
            val_loss = loss_fn(logits.to(device), val_y.to(device)).item()
            pred = logits.argmax(dim=1).numpy()
            corrected = f1_summary(val_data.y, pred, hierarchy.reachability)
            flat = f1_summary(val_data.y, pred)
            row = dict(epoch=epoch, lr=lr, train_loss=total / max(n_seen, 1), val_loss=val_loss,
                       val_macro_f1=corrected["macro_f1"], val_macro_f1_flat=flat["macro_f1"],
                       seconds=seconds_before + time.perf_counter() - started)
            state["history"].append(row)
            if corrected["macro_f1"] > state["best_f1"]:
                state.update(best_f1=corrected["macro_f1"], best_epoch=epoch, stale=0)
                state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                state["stale"] += 1
            state.update(epoch=epoch + 1, batch=0)
            save_checkpoint()
            with atomic_path(out_dir / "history.tsv") as tmp:
                pd.DataFrame(state["history"]).to_csv(tmp, sep="\t", index=False)
            log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_macro_f1 %.4f  best %.4f (epoch %d)  %.1f s",
                     epoch + 1, settings.max_epochs, row["train_loss"], val_loss, corrected["macro_f1"],
                     state["best_f1"], state["best_epoch"] + 1, row["seconds"])
            if writer is not None:
                for key in ("lr", "train_loss", "val_loss", "val_macro_f1", "val_macro_f1_flat"):
                    writer.add_scalar(key, row[key], epoch)
                writer.flush()
            if flag.signum is not None and state["epoch"] < settings.max_epochs and state["stale"] < settings.patience:
                log.warning("signal %d: checkpoint after epoch %d; exiting with status %d",
                            flag.signum, epoch, EXIT_INTERRUPTED)
                raise Interrupted(flag.signum)
    if writer is not None:
        writer.close()

    history = state["history"]
    final = {
        "state_dict": state["best_state"],
        "architecture": architecture,
        "entry": entry,
        "labels": list(hierarchy.term_ids),
        "reachability_hash": hierarchy.content_hash,
        "genes": pd.read_parquet(store / "var.parquet")["feature_id"].tolist(),
        "settings": asdict(settings),
        "best_epoch": state["best_epoch"],
    }
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(final, tmp)
    with atomic_path(out_dir / "history.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)
    summary = {
        "architecture": architecture,
        "loss": settings.loss,
        "seed": settings.seed,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "best_val_macro_f1": state["best_f1"],
        "train_seconds": float(sum(h["seconds"] for h in history)),
        # CPU time of this call (all threads): unlike wall time, it holds on a shared, oversubscribed machine.
        # After a resume it covers the resumed part only.
        "cpu_seconds": time.process_time() - cpu_started,
        "device": str(device),
        "data_source": settings.data_source,
        "augment": augmenting,
        "augmentation_vectors": int(bank.shape[0]) if augmenting else 0,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    write_json(out_dir / "train.json", summary)
    with contextlib.suppress(FileNotFoundError):
        ckpt_path.unlink()  # finished: the outputs above replace it
    return summary
