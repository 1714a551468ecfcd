"""Train one classifier with CE or HCE: the paper's loop, readable top to bottom.

AdamW, StepLR (× gamma every epoch), gradient clipping, class-balanced loss, and early stopping on the
validation split's hierarchy-corrected macro F1 (the paper's selection metric). The best epoch's weights
are kept. The same loop serves every architecture; only the model and its hyperparameters change.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .io import atomic_path, read_json, write_json
from .losses import make_loss
from .metrics import f1_summary
from .models import build_model, hyperparameters
from .ontology import LabelHierarchy
from .store import SplitData


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
    threads: int = 1

    @classmethod
    def from_config(cls, training: dict, loss: str, seed: int, threads: int = 1) -> TrainSettings:
        keys = ("hce_form", "batch_size", "max_epochs", "patience", "lr_gamma", "grad_clip", "device")
        return cls(loss=loss, seed=int(seed), threads=threads, **{k: training[k] for k in keys})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


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
def predict_logits(model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x).to(device)).float().cpu().numpy() for x, _ in data.batches(batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train(
    store: str | os.PathLike,
    hierarchy_dir: str | os.PathLike,
    architecture: str,
    entry: dict,
    settings: TrainSettings,
    out_dir: str | os.PathLike,
) -> dict:
    """Train ``architecture`` and write ``model.pt``, ``history.tsv`` and ``train.json`` into ``out_dir``."""
    store, hierarchy_dir = Path(store), Path(hierarchy_dir)
    torch.set_num_threads(settings.threads)
    rng = seed_everything(settings.seed)
    device = resolve_device(settings.device)
    meta, hierarchy, train_data, val_data = load_training_data(store, hierarchy_dir)

    hp = hyperparameters(architecture, entry)
    model = build_model(architecture, entry, meta["n_genes"], hierarchy.k).to(device)
    weights = torch.from_numpy(np.load(store / "class_weights.npy"))
    reach = torch.from_numpy(hierarchy.reachability.astype(np.float32))
    loss_fn = make_loss(settings.loss, reach, weights, settings.hce_form).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=settings.lr_gamma)

    history, best_f1, best_state, best_epoch, stale = [], -math.inf, None, -1, 0
    for epoch in range(settings.max_epochs):
        started = time.perf_counter()
        model.train()
        total, n_seen = 0.0, 0
        for x, y in train_data.batches(settings.batch_size, rng=rng):
            if len(y) < 2:  # BatchNorm cannot normalise a single cell
                continue
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            loss = loss_fn(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimiser.step()
            total += loss.item() * len(y)
            n_seen += len(y)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()

        logits = predict_logits(model, val_data, settings.batch_size, device)
        val_loss = loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(val_data.y).to(device)).item()
        pred = logits.argmax(axis=1)
        corrected = f1_summary(val_data.y, pred, hierarchy.reachability)
        flat = f1_summary(val_data.y, pred)
        history.append(
            dict(epoch=epoch, lr=lr, train_loss=total / max(n_seen, 1), val_loss=val_loss,
                 val_macro_f1=corrected["macro_f1"], val_macro_f1_flat=flat["macro_f1"],
                 seconds=time.perf_counter() - started)
        )
        if corrected["macro_f1"] > best_f1:
            best_f1, best_epoch, stale = corrected["macro_f1"], epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break

    out_dir = Path(out_dir)
    checkpoint = {
        "state_dict": best_state,
        "architecture": architecture,
        "entry": entry,
        "labels": list(hierarchy.term_ids),
        "reachability_hash": hierarchy.content_hash,
        "genes": pd.read_parquet(store / "var.parquet")["feature_id"].tolist(),
        "settings": asdict(settings),
        "best_epoch": best_epoch,
    }
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(out_dir / "history.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)
    summary = {
        "architecture": architecture,
        "loss": settings.loss,
        "seed": settings.seed,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "best_val_macro_f1": best_f1,
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "device": str(device),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    write_json(out_dir / "train.json", summary)
    return summary
