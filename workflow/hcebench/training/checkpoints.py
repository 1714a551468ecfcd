"""The training loop's progress, its resumable checkpoint, and the final ``model.pt``.

``TrainState`` is where the loop is (epoch, minibatch, the epoch's running loss), what it has seen (history,
the best weights so far) and the early-stopping counter. A checkpoint holds it together with the model,
optimiser, scheduler and every random generator the loop draws from, so a resumed run finishes exactly as an
uninterrupted one would (on CPU: bit for bit). It also holds the run's *identity* (architecture entry,
settings, data); a checkpoint of another identity is ignored, never resumed. The state is stored as a plain
dict (``TrainState.as_dict``), not the dataclass. Both files are written atomically, hold tensors and plain
containers only, and are read with ``hcebench.models.files.load_torch_file`` (``torch.load(weights_only=True)``):
a file that would run code is refused. A checkpoint that cannot be read (refused, truncated, corrupt) is set aside
as ``checkpoint.pt.unusable`` and training starts afresh; the loop never dies on it, nor resumes from it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from hcebench.errors import CheckpointError
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.models.files import load_torch_file, plain, require_fields, write_torch_file

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
#: Suffix a checkpoint that cannot be read is renamed with, so the next attempt starts cleanly.
UNUSABLE_SUFFIX = ".unusable"
CHECKPOINT_FIELDS = ("identity", "state", "model", "optimiser", "scheduler", "rng", "torch_rng", "aug_rng")


@dataclass
class TrainState:
    """The loop's progress: what a checkpoint holds besides model, optimiser, scheduler and generators."""

    epoch: int = 0  # the epoch under way (= epochs finished)
    batch: int = 0  # the next minibatch of that epoch; 0 between epochs
    history: list[dict] = field(default_factory=list)  # one row of history.tsv per finished epoch
    best_f1: float = -math.inf  # best validation hierarchy-corrected macro F1 so far
    best_state: dict[str, torch.Tensor] | None = None  # the model's weights (on CPU) at that best epoch
    best_epoch: int = 0  # counted from 1, as history.tsv's ``epoch`` and the log line; 0 before the first
    stale: int = 0  # epochs since the best one: early stopping at ``patience``
    epoch_rng: dict | None = None  # the shuffle generator's state at the epoch's start, replayed on resume
    partial: tuple[float, int, float] = (0.0, 0, 0.0)  # this epoch so far: Σ loss × cells, cells, seconds

    def as_dict(self) -> dict:
        """The fields as a plain dict, in order, values not copied: what a checkpoint stores."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def save_checkpoint(
    path: Path,
    *,
    identity: dict,
    state: TrainState,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng: np.random.Generator,
    aug_gen: torch.Generator,
    device: torch.device,
) -> None:
    """Write everything a resumed run needs to ``path``, atomically (a kill mid-write leaves the old one)."""
    write_torch_file(
        {
            "identity": plain(identity),
            "state": plain(state.as_dict()),
            "model": model.state_dict(),
            "optimiser": plain(optimiser.state_dict()),
            "scheduler": plain(scheduler.state_dict()),
            "rng": plain(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "aug_rng": aug_gen.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        },
        path,
        "training checkpoint",
    )


def load_checkpoint(
    path: Path,
    *,
    identity: dict,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng: np.random.Generator,
    aug_gen: torch.Generator,
    device: torch.device,
) -> TrainState | None:
    """Restore model, optimiser, scheduler and generators from ``path`` in place; return the loop's state.

    ``None`` (and nothing restored) when there is no checkpoint, when it was written for another ``identity``, or
    when it cannot be read: then it is renamed ``<path>.unusable`` (kept for inspection) and training restarts.
    """
    if not path.exists():
        return None
    try:
        ckpt = load_torch_file(path, "training checkpoint")
        require_fields(ckpt, CHECKPOINT_FIELDS, path, "training checkpoint")
    except CheckpointError as err:
        aside = path.with_name(path.name + UNUSABLE_SUFFIX)
        path.replace(aside)
        log.warning("%s; set aside as %s, training starts afresh", err, aside)
        return None
    if ckpt.get("identity") != plain(identity):
        log.warning("ignoring %s: written for another architecture entry, settings or data", path)
        return None
    model.load_state_dict(ckpt["model"])
    optimiser.load_state_dict(ckpt["optimiser"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rng.bit_generator.state = ckpt["rng"]
    torch.set_rng_state(ckpt["torch_rng"])
    aug_gen.set_state(ckpt["aug_rng"])
    if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    state = TrainState(**ckpt["state"])
    log.info("resumed from %s at epoch %d, minibatch %d", path, state.epoch + 1, state.batch)
    return state


def save_model(
    path: Path,
    *,
    weights: dict[str, torch.Tensor] | None,
    architecture: str,
    entry: dict,
    hierarchy: LabelHierarchy,
    genes: list[str],
    settings: dict,
    best_epoch: int,
) -> None:
    """Write the trained model atomically: the best epoch's ``weights`` and what rebuilding it needs.

    ``hcebench.evaluation.predict`` rebuilds the model from ``architecture``, ``entry`` and the gene and label
    counts, and refuses a split whose genes differ from ``genes``. ``settings`` is ``asdict(TrainSettings)``.
    """
    write_torch_file(
        {
            "state_dict": weights,
            "architecture": architecture,
            "entry": plain(entry),
            "labels": list(hierarchy.term_ids),
            "reachability_hash": hierarchy.content_hash,
            "genes": list(genes),
            "settings": plain(settings),
            "best_epoch": int(best_epoch),
        },
        path,
        "model",
    )
