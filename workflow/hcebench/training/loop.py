"""Train one classifier with CE or HCE: the paper's loop, readable top to bottom.

AdamW, StepLR (× gamma every epoch), gradient clipping, class-balanced loss, and early stopping on the
validation split's hierarchy-corrected macro F1 (the paper's selection metric). The best epoch's weights
are kept. The same loop serves every architecture; only the model and its hyperparameters change. A model
may return ``(logits, aux_loss)``; ``aux_loss`` (e.g. TabNet's mask sparsity) is added to CE and HCE alike.

For real runs on shared machines:

- Numerics: bf16 autocast of the forward pass on CUDA (``training.bf16``; the losses compute in float32
  regardless) and ``torch.set_float32_matmul_precision`` (``training.float32_matmul_precision``; the paper trains
  in float32 with "high"), set for the run and restored after it; prediction reads both from ``model.pt``.
- A checkpoint, ``<out>/checkpoint.pt``, is written atomically after every epoch: model, optimiser,
  scheduler, the numpy and torch RNG states, and the loop's ``TrainState`` (history, best weights,
  early-stopping counter; ``hcebench.training.checkpoints``). A job started again with the same settings
  resumes from it; one with other settings ignores it.
- SIGTERM or SIGUSR1 (SLURM preemption, time limit; Snakemake cancelling a job) saves a checkpoint at the
  current minibatch and exits with status ``EXIT_INTERRUPTED``, so the scheduler reruns the job and it
  resumes. A resumed run finishes exactly as an uninterrupted one would (on CPU: bit for bit), because the
  checkpoint also holds the epoch's shuffle state and the position in it.
- A log line per epoch, ``history.tsv`` rewritten per epoch, TensorBoard scalars optionally.

Training minibatches come from the store (shuffled CSR rows, ``shuffle_block_rows`` consecutive rows per
shuffle block, read ``prefetch`` batches ahead by a background thread and densified on the device) or, with
``data_source: tiledbsoma_ml``, straight from the census's SOMA (``hcebench.data.soma_stream``). An architecture
whose entry sets ``augment: true`` has scTab's augmentation applied to every training batch on the device.
The checkpoint is deleted once ``model.pt``, ``history.tsv`` and ``train.json`` are written.

``train`` reads top to bottom: set up (data, model, loss, optimiser, generators) → resume from a matching
checkpoint, if any → per epoch: ``start_epoch``, ``epoch_batches`` → ``train_step`` each (a signal checkpoints
and exits here) → ``validate`` → ``record_epoch``, checkpoint, ``write_history`` → write ``model.pt``,
``history.tsv`` and ``train.json``.
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from hcebench.data.store import SplitData, Store, prefetched
from hcebench.errors import TrainingError
from hcebench.evaluation.metrics import f1_summary, macro_f1_union
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path, write_json
from hcebench.models import build_model, hyperparameters, logits_and_aux
from hcebench.models.device import autocast, float32_matmul_precision, predict_outputs, resolve_device
from hcebench.progress import Progress
from hcebench.settings import TrainingSettings
from hcebench.training.augmentation import augment
from hcebench.training.checkpoints import (
    CHECKPOINT,
    TrainState,
    load_checkpoint,
    save_checkpoint,
    save_model,
)
from hcebench.training.losses import hierarchy_corrected_targets, loss_settings, make_loss

if TYPE_CHECKING:
    from hcebench.data.soma_stream import SomaStream

log = logging.getLogger(__name__)

#: Exit status after a signal-triggered checkpoint: EX_TEMPFAIL, "try again" (non-zero so the job is rerun).
EXIT_INTERRUPTED = 75
RESUME_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclass
class TrainSettings:
    loss: str  # a name of hcebench.training.losses.REGISTRY ("ce", "hce", ...): the axis compared
    seed: int  # seeds init, shuffling, dropout and augmentation; one model per seed, ≥ 2 for the paired test
    hce_form: str = "paper"  # "paper" = −log(R·softmax + 1e−6), as published; "stable": log-sum-exp, no 1e−6
    # The loss's hyperparameters (config losses.<loss>); empty = the registry defaults. from_config fills them in,
    # so the checkpoint fingerprint and model.pt record every value the run used.
    loss_settings: dict = field(default_factory=dict)
    batch_size: int = 2048  # the paper's; smaller on a small atlas, so an epoch still takes tens of steps
    max_epochs: int = 50  # the paper's cap; early stopping (``patience``) usually ends training sooner
    patience: int = 10  # epochs without a better validation hierarchy-corrected macro F1 before stopping
    lr_gamma: float = 0.9  # StepLR: lr × gamma after each epoch (scTab); 1 = constant, lower decays faster
    drop_last: bool = False  # skip each epoch's short last minibatch (scTab's loader: true)
    # The validation macro F1 that selects the epoch: "present" = over the labels in the truth; "union" = over the
    # labels true or predicted (torchmetrics' macro MulticlassF1Score, the paper's).
    selection_f1: str = "present"
    grad_clip: float = 1.0  # max gradient norm per step (scTab), so one odd minibatch cannot derail a run
    device: str = "auto"  # "auto" = CUDA when visible; "cpu" for runs reproducible bit for bit (tests)
    bf16: bool = True  # bf16 autocast of the forward pass on CUDA (losses stay float32); ignored on CPU
    # torch.set_float32_matmul_precision for the run: "high" (TF32 on CUDA) is the paper's float32 setting;
    # "highest" (torch's default) keeps full float32 everywhere, so CPU results stay bit for bit as they were.
    float32_matmul_precision: str = "highest"
    tensorboard: bool = False  # also TensorBoard scalars in <out>/tensorboard (needs that package)
    data_source: str = "store"  # "store": fast, needs the store's copy; "tiledbsoma_ml": no copy, slower
    shuffle_block_rows: int = 1  # rows per shuffle block: 1 if the split fits in the page cache, else 64-256
    prefetch: int = 2  # minibatches a background thread reads ahead of the step; 0 reads them in the loop
    threads: int = 1  # torch CPU threads: the job's Snakemake threads, so jobs sharing a node share its cores

    @classmethod
    def from_config(
        cls,
        training: dict,
        loss: str,
        seed: int,
        threads: int = 1,
        entry: dict | None = None,
        loss_config: dict | None = None,
    ) -> TrainSettings:
        """Settings from the ``training`` block, with the architecture entry's ``training:`` overrides and the
        loss's ``losses.<loss>`` entry ``loss_config`` (registry defaults filled in; a bad key raises)."""
        keys = (
            "hce_form",
            "batch_size",
            "max_epochs",
            "patience",
            "lr_gamma",
            "drop_last",
            "selection_f1",
            "grad_clip",
            "device",
            "bf16",
            "float32_matmul_precision",
            "tensorboard",
            "data_source",
            "shuffle_block_rows",
            "prefetch",
        )
        values = {k: training[k] for k in keys if k in training}
        values.update((entry or {}).get("training") or {})
        values["loss_settings"] = loss_settings(loss, loss_config)
        return cls(loss=loss, seed=int(seed), threads=threads, **values)

    @classmethod
    def for_run(
        cls,
        training: TrainingSettings,
        loss: str,
        seed: int,
        threads: int = 1,
        loss_config: dict | None = None,
    ) -> TrainSettings:
        """A run's settings: its stage's (``hcebench.settings.TrainingSettings``, the architecture's overrides
        applied), its loss with the ``losses.<loss>`` entry ``loss_config`` (registry defaults filled in), its seed
        and the job's threads."""
        values = asdict(training)
        values["loss_settings"] = loss_settings(loss, loss_config)
        return cls(loss=loss, seed=int(seed), threads=threads, **values)

    def fingerprint(self) -> dict:
        """What a checkpoint must match to be resumed: everything that changes the result."""
        return {
            k: v for k, v in asdict(self).items() if k not in ("device", "threads", "tensorboard", "prefetch")
        }


class Interrupted(SystemExit):
    """Raised after a signal-triggered checkpoint; exits the process with ``EXIT_INTERRUPTED``."""

    def __init__(self, signum: int):
        super().__init__(EXIT_INTERRUPTED)
        self.signum = signum


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return the numpy generator that shuffles the training set."""
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False  # benchmark mode picks kernels by timing: not reproducible
    return np.random.default_rng(seed)


def load_training_data(store: Store, hierarchy_dir: Path) -> tuple[LabelHierarchy, SplitData, SplitData]:
    """The label hierarchy (checked against the store's label order) and the train and validation splits."""
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    if list(hierarchy.term_ids) != store.labels:
        raise ValueError(
            f"label order of {hierarchy_dir} differs from {store.meta_source}; rebuild both from the same selection"
        )
    return hierarchy, store.split("train", store.labels), store.split("val", store.labels)


def augmentation_bank(
    bank: np.ndarray | None, entry: dict, architecture: str, n_genes: int
) -> np.ndarray | None:
    """The bank as contiguous float32, checked against the store; ``None`` when the entry does not augment."""
    if not entry.get("augment", False):
        return None
    if bank is None:
        raise ValueError(
            f"architectures.{architecture}.augment is true but no augmentation bank was given; "
            "the train rule passes results/<run>/augmentation/bank.npy"
        )
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    if bank.ndim != 2 or bank.shape[1] != n_genes:
        raise ValueError(
            f"augmentation bank has shape {bank.shape}; expected (vectors, {n_genes} genes) "
            "of this store: rebuild it with the augmentation_bank rule"
        )
    return bank


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


def _interrupted(signum: int, where: str) -> Interrupted:
    """Log that the checkpoint ``where`` is written and the job exits; the exception to raise."""
    log.warning("signal %d: checkpoint %s; exiting with status %d", signum, where, EXIT_INTERRUPTED)
    return Interrupted(signum)


def _tensorboard_writer(settings: TrainSettings, out_dir: Path):
    if not settings.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning(
            "training.tensorboard is true but the tensorboard package is not installed; "
            "`pip install tensorboard` or set it to false. Continuing without."
        )
        return None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def more_epochs(state: TrainState, settings: TrainSettings) -> bool:
    """Whether training goes on: epochs left and the validation F1 improved within ``patience`` epochs."""
    return state.epoch < settings.max_epochs and state.stale < settings.patience


def start_epoch(state: TrainState, rng: np.random.Generator) -> None:
    """At a fresh epoch, remember the shuffle generator's state; at a resumed one, rewind the generator to it.

    Either way the epoch's shuffle is the same, so a resumed epoch skips exactly the minibatches done.
    """
    if state.batch == 0:
        state.epoch_rng = rng.bit_generator.state
        state.partial = (0.0, 0, 0.0)
    else:
        rng.bit_generator.state = state.epoch_rng


def epoch_batches(
    train_data: SplitData,
    stream: SomaStream | None,
    settings: TrainSettings,
    rng: np.random.Generator,
    device: torch.device,
    epoch: int,
    start: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) on the device for this epoch's minibatches from number ``start`` on, read ahead in a thread."""
    if stream is None:
        # Row sets of the (block-)shuffled split, each in a random order (ghost batches and BatchNorm see random
        # cells), read sorted; CSR until densified on the device, where the rows are put in that order.
        order = train_data.batch_order(
            settings.batch_size, rng, settings.shuffle_block_rows, drop_last=settings.drop_last
        )
        if device.type == "cpu":
            yield from cpu_batches(train_data, order[start:], settings)
            return
        # Reused read buffers are safe: each batch is densified (copied) before the next is asked for.
        for batch in train_data.read_batches(order[start:], prefetch=settings.prefetch, reuse_buffers=True):
            yield batch.to_dense(device), torch.from_numpy(batch.y).to(device)
    else:
        # Deterministic per (seed, epoch), so a resumed epoch replays the same order and skips what was done.
        read = itertools.islice(
            stream.batches(settings.batch_size, seed=settings.seed, epoch=epoch), start, None
        )
        if settings.drop_last:
            read = (xy for xy in read if len(xy[1]) == settings.batch_size)
        for x, y in prefetched(read, settings.prefetch):
            yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def cpu_batches(
    train_data: SplitData, order: list[np.ndarray], settings: TrainSettings
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) of ``order``'s minibatches on a CPU: read and densified ``settings.prefetch`` batches ahead by the
    background thread, each into one of a ring of reused dense tensors.

    A new batch_size × genes tensor per step costs its page faults, 2-3× the writes; densifying in the thread lets
    it overlap the step's single-threaded stretches (benchmarks/train_step.py, docs/data.md). The ring holds
    one tensor per batch alive at once: the step's, the ``prefetch`` queued ones and the one being written; the
    step is done with a batch before it asks for the next.
    """
    ring = [
        torch.empty((settings.batch_size, train_data.n_genes), dtype=torch.float32)
        for _ in range(settings.prefetch + 2)
    ]
    # One thread reads and densifies in turn, so a single reused CSR buffer pair is safe.
    read = train_data.read_batches(order, prefetch=0, reuse_buffers=True)
    dense = (
        (batch.to_dense("cpu", out=ring[i % len(ring)]), torch.from_numpy(batch.y))
        for i, batch in enumerate(read)
    )
    yield from prefetched(dense, settings.prefetch)


def train_step(
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrainSettings,
    device: torch.device,
    bank: torch.Tensor | None,
    aug_gen: torch.Generator,
) -> float:
    """One optimiser step on a minibatch (augmented first when there is a ``bank``); returns its loss."""
    if bank is not None:
        x = augment(x, bank, aug_gen)
    with autocast(device, settings.bf16):
        logits, aux = logits_and_aux(model(x))
    loss = loss_fn(logits, y)
    if aux is not None:
        loss = loss + aux.float()
    value = loss.item()
    if not math.isfinite(value):  # before the step: a NaN must never reach the weights, nor a model.pt
        raise TrainingError(
            f"training loss is {value} on a minibatch of {len(y)} cells: the store holds non-finite values or "
            "training diverged; check the data (hcebench checks counts where they enter) or lower the entry's lr"
        )
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    optimiser.step()
    return value


def validate(
    model: torch.nn.Module,
    val_data: SplitData,
    val_loss_fn: torch.nn.Module,
    settings: TrainSettings,
    device: torch.device,
    hierarchy: LabelHierarchy,
) -> dict:
    """Validation loss and macro F1, hierarchy-corrected (the selection metric) and flat.

    ``val_macro_f1``, the selection metric, averages over the labels present in the truth, or with
    ``settings.selection_f1 == "union"`` over the labels true or predicted (the paper's torchmetrics macro F1;
    ``val_macro_f1_present`` then keeps the other).

    The loss is what the paper's code logs as ``val_loss``: ``val_loss_fn`` (the training loss without class
    weights) on hierarchy-corrected targets, the prediction where it is the true label or a subtype of it and
    the true label otherwise, plus the model's auxiliary loss, in eval mode; a per-cell mean over the split.
    """
    logits, aux = predict_outputs(model, val_data, settings.batch_size, device, settings.bf16)
    logits = torch.from_numpy(logits)
    pred = logits.argmax(dim=1)
    targets = hierarchy_corrected_targets(torch.from_numpy(val_data.y), pred, hierarchy.reachability)
    val_loss = val_loss_fn(logits.to(device), targets.to(device)).item() + aux
    pred = pred.numpy()
    corrected = f1_summary(val_data.y, pred, hierarchy.reachability)
    flat = f1_summary(val_data.y, pred)
    scores = dict(val_loss=val_loss, val_macro_f1=corrected["macro_f1"], val_macro_f1_flat=flat["macro_f1"])
    if settings.selection_f1 == "union":  # the paper's selection metric; the other average is kept beside it
        scores["val_macro_f1_present"] = scores["val_macro_f1"]
        scores["val_macro_f1"] = macro_f1_union(val_data.y, pred, hierarchy.reachability)
    elif settings.selection_f1 != "present":
        raise ValueError(f"training.selection_f1 must be 'present' or 'union', not {settings.selection_f1!r}")
    return scores


def record_epoch(state: TrainState, row: dict, model: torch.nn.Module) -> None:
    """Add the epoch's ``row`` to the history; keep the weights if its validation F1 is the best yet."""
    state.history.append(row)
    if row["val_macro_f1"] > state.best_f1:
        state.best_f1, state.best_epoch, state.stale = row["val_macro_f1"], row["epoch"], 0
        state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    else:
        state.stale += 1
    state.epoch, state.batch = row["epoch"], 0  # row["epoch"] counts from 1: epochs finished


def write_history(path: Path, history: list[dict]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)


def log_epoch(row: dict, state: TrainState, settings: TrainSettings, writer) -> None:
    """A log line per epoch; TensorBoard scalars when ``writer`` is one."""
    log.info(
        "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_macro_f1 %.4f  best %.4f (epoch %d)  %.1f s",
        row["epoch"],
        settings.max_epochs,
        row["train_loss"],
        row["val_loss"],
        row["val_macro_f1"],
        state.best_f1,
        state.best_epoch,
        row["seconds"],
    )
    if writer is not None:
        for key in ("lr", "train_loss", "val_loss", "val_macro_f1", "val_macro_f1_flat"):
            writer.add_scalar(key, row[key], row["epoch"])
        writer.flush()


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
    store, hierarchy_dir, out_dir = Store(store), Path(hierarchy_dir), Path(out_dir)

    # Set up: data, model, loss and optimiser. Three generators, each seeded from settings.seed: numpy's `rng`
    # shuffles the training set, torch's global one initialises weights and draws dropout, `aug_gen` augments.
    torch.set_num_threads(settings.threads)
    rng = seed_everything(settings.seed)
    device = resolve_device(settings.device)
    hierarchy, train_data, val_data = load_training_data(store, hierarchy_dir)
    if (settings.data_source == "tiledbsoma_ml") != (stream is not None):
        raise ValueError(
            f"training.data_source is {settings.data_source!r} but a stream was "
            f"{'not ' if stream is None else ''}given; the train script builds it from the census"
        )
    bank = augmentation_bank(bank, entry, architecture, store.n_genes)
    bank_t = None if bank is None else torch.from_numpy(bank).to(device)
    aug_gen = torch.Generator().manual_seed(settings.seed)
    hp = hyperparameters(architecture, entry)
    model = build_model(architecture, entry, store.n_genes, hierarchy.k).to(device)
    weights = torch.from_numpy(store.class_weights)
    reach = torch.from_numpy(hierarchy.reachability.astype(np.float32))
    loss_fn = make_loss(settings.loss, reach, weights, settings.hce_form, settings.loss_settings).to(device)
    # logged unweighted (on hierarchy-corrected targets), whatever the loss
    val_loss_fn = make_loss(settings.loss, reach, None, settings.hce_form, settings.loss_settings).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=settings.lr_gamma)

    # Maybe resume: from a checkpoint of this very run (same entry, settings and data), else from scratch.
    identity = {
        "architecture": architecture,
        "entry": entry,
        "settings": settings.fingerprint(),
        "reachability_hash": hierarchy.content_hash,
        "n_cells": store.meta.get("n_cells"),
        "bank": None if bank is None else hashlib.sha1(bank.tobytes()).hexdigest(),
        # history.tsv's epochs count from 1: a checkpoint whose history counts from 0 is not resumed
        "epochs_from": 1,
    }
    ckpt_path = out_dir / CHECKPOINT
    resumable = dict(
        model=model, optimiser=optimiser, scheduler=scheduler, rng=rng, aug_gen=aug_gen, device=device
    )
    state = load_checkpoint(ckpt_path, identity=identity, **resumable) or TrainState()

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, identity=identity, state=state, **resumable)

    writer = _tensorboard_writer(settings, out_dir)
    n_train = len(train_data) if stream is None else len(stream)
    # == len(train_data.batch_order(...)): the short last batch is not one with drop_last.
    n_batches = (
        n_train // settings.batch_size if settings.drop_last else math.ceil(n_train / settings.batch_size)
    )
    with _SignalFlag() as flag, float32_matmul_precision(settings.float32_matmul_precision):
        while more_epochs(state, settings):
            epoch = state.epoch
            start_epoch(state, rng)
            started = time.perf_counter()
            total, n_seen, seconds_before = state.partial

            # Train: a step per minibatch. A signal checkpoints at the next minibatch and exits (the last
            # minibatch's signal is handled after validation, at the epoch's end).
            model.train()
            batches = epoch_batches(train_data, stream, settings, rng, device, epoch, state.batch)
            # A line a minute inside a long epoch (cells, rate, time left); the epoch's own line closes it.
            progress = Progress(
                n_train,
                f"{architecture} {settings.loss} seed {settings.seed}, epoch {epoch + 1}: trained on",
                log,
                start=min(state.batch * settings.batch_size, n_train),
                final_line=False,
            )
            for b, (x, y) in enumerate(batches, start=state.batch):
                if len(y) >= 2:  # BatchNorm cannot normalise a single cell
                    try:
                        loss = train_step(model, optimiser, loss_fn, x, y, settings, device, bank_t, aug_gen)
                    except TrainingError as err:
                        raise TrainingError(
                            f"{architecture}, epoch {epoch + 1}, minibatch {b}: {err}"
                        ) from None
                    total += loss * len(y)
                    n_seen += len(y)
                progress.update(min((b + 1) * settings.batch_size, n_train))
                if flag.signum is not None and b + 1 < n_batches:
                    state.batch = b + 1
                    state.partial = (total, n_seen, seconds_before + time.perf_counter() - started)
                    checkpoint()
                    raise _interrupted(flag.signum, f"at epoch {epoch + 1}, minibatch {b + 1}")
            lr = scheduler.get_last_lr()[0]
            scheduler.step()

            # Validate; record the epoch (best weights, early-stopping counter), checkpoint, log.
            scores = validate(model, val_data, val_loss_fn, settings, device, hierarchy)
            row = dict(
                epoch=epoch + 1,  # counted from 1, as the log line and train.json's best_epoch count
                lr=lr,
                train_loss=total / max(n_seen, 1),
                **scores,
                seconds=seconds_before + time.perf_counter() - started,
            )
            record_epoch(state, row, model)
            checkpoint()
            write_history(out_dir / "history.tsv", state.history)
            log_epoch(row, state, settings, writer)
            if flag.signum is not None and more_epochs(state, settings):
                raise _interrupted(flag.signum, f"after epoch {epoch + 1}")
    if writer is not None:
        writer.close()

    # Write the outputs (the best epoch's weights); the checkpoint is then obsolete.
    save_model(
        out_dir / "model.pt",
        weights=state.best_state,
        architecture=architecture,
        entry=entry,
        hierarchy=hierarchy,
        genes=store.gene_ids,
        settings=asdict(settings),
        best_epoch=state.best_epoch,
    )
    write_history(out_dir / "history.tsv", state.history)
    summary = {
        "architecture": architecture,
        "loss": settings.loss,
        "seed": settings.seed,
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.history),
        "best_val_macro_f1": state.best_f1,
        "train_seconds": float(sum(h["seconds"] for h in state.history)),
        # CPU time of this call (all threads): unlike wall time, it holds on a shared, oversubscribed machine.
        # After a resume it covers the resumed part only.
        "cpu_seconds": time.process_time() - cpu_started,
        "device": str(device),
        "data_source": settings.data_source,
        "augment": bank is not None,
        "augmentation_vectors": 0 if bank is None else int(bank.shape[0]),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    write_json(out_dir / "train.json", summary)
    with contextlib.suppress(FileNotFoundError):
        ckpt_path.unlink()  # finished: the outputs above replace it
    return summary
