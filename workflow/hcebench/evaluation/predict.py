"""Per-cell predictions of a trained checkpoint on any split of a store, as the contract table.

The contract (columns, provenance, reading and writing) is ``hcebench.evaluation.contract``; this module adds the model.
A model predicts in the numerics it was trained in: ``bf16`` and ``float32_matmul_precision`` are read from the
training settings its checkpoint records (a checkpoint from before the latter was recorded: "highest").
A prediction logs its progress every minute (cells done, rate, time left; ``hcebench.progress``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch

from hcebench.data.store import SplitData, Store
from hcebench.errors import CheckpointError
from hcebench.evaluation.contract import contract_table
from hcebench.models import build_model
from hcebench.models.device import float32_matmul_precision, predict_logits, resolve_device
from hcebench.models.files import MODEL_FIELDS, load_torch_file, require_fields
from hcebench.progress import Progress

log = logging.getLogger(__name__)


class ReportingSplit:
    """A store split as ``predict_logits`` reads it, logging progress as each batch is handed on.

    ``predict_logits`` asks its data only for ``sparse_batches``; a batch is counted when the next one is asked
    for, that is once the model has predicted it.
    """

    def __init__(self, data: SplitData, progress: Progress):
        self.data, self.progress = data, progress

    def __len__(self) -> int:
        return len(self.data)

    def sparse_batches(self, batch_size: int, **kwargs) -> Iterator:
        for batch in self.data.sparse_batches(batch_size, **kwargs):
            yield batch
            self.progress.advance(len(batch))
        self.progress.finish()


def load_model(checkpoint_path: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model from its ``model.pt``, read safely (a file that would run code is refused)."""
    ckpt = load_torch_file(checkpoint_path, "model")
    require_fields(ckpt, MODEL_FIELDS, checkpoint_path, "model")
    model = build_model(ckpt["architecture"], ckpt["entry"], len(ckpt["genes"]), len(ckpt["labels"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"model {checkpoint_path}: its weights do not fit architecture {ckpt['architecture']!r} "
            f"({str(err).splitlines()[0]}); delete it and rerun the train job"
        ) from None
    return model.to(device).eval(), ckpt


def predict_split(
    checkpoint_path: str | os.PathLike,
    split_dir: str | os.PathLike,
    label_names: dict[str, str],
    *,
    batch_size: int = 4096,
    device: str = "auto",
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """Predict every cell of ``split_dir`` (a store split) with the checkpoint; return the contract table."""
    dev = resolve_device(device)
    model, ckpt = load_model(checkpoint_path, dev)
    return predict_loaded(
        model, ckpt, split_dir, label_names, dev, checkpoint_path, batch_size, save_probabilities
    )


def predict_loaded(
    model: torch.nn.Module,
    ckpt: dict,
    split_dir: str | os.PathLike,
    label_names: dict[str, str],
    device: torch.device,
    checkpoint_path: str | os.PathLike = "model.pt",
    batch_size: int = 4096,
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """``predict_split`` with a model ``load_model`` already built on ``device``: a job predicting several splits
    reads and rebuilds its checkpoint once. ``checkpoint_path`` only names the file in errors."""
    split_dir = Path(split_dir)
    store = Store.holding(split_dir)
    if store.gene_ids != ckpt["genes"]:
        raise ValueError(
            f"{store.genes_source} lists other genes (or another order) than {checkpoint_path} was "
            "trained on; rebuild the set from the same training store"
        )
    data = store.split(split_dir.name, ckpt["labels"])
    trained = ckpt.get("settings") or {}
    progress = Progress(len(data), f"predict {split_dir.name} with {ckpt['architecture']}", log)
    reporting = ReportingSplit(data, progress)
    with float32_matmul_precision(trained.get("float32_matmul_precision", "highest")):
        logits = torch.from_numpy(
            predict_logits(model, reporting, batch_size, device, trained.get("bf16", True))
        )
    probs = torch.softmax(logits, dim=1).numpy()
    return contract_table(data.obs, ckpt["labels"], probs, label_names, save_probabilities)
