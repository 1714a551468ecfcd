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

import numpy as np
import pandas as pd
import torch

from hcebench.data.store import SplitData, Store
from hcebench.errors import CheckpointError
from hcebench.evaluation.contract import CHUNK_CELLS, OBS_COLUMNS, contract_table
from hcebench.models import build_model
from hcebench.models.device import float32_matmul_precision, predict_logits, resolve_device
from hcebench.models.files import MODEL_FIELDS, load_torch_file, require_fields
from hcebench.progress import Progress

log = logging.getLogger(__name__)


class ReportingRows:
    """Rows ``start:stop`` of a store split as ``predict_logits`` reads them (consecutive batches of
    ``batch_size`` rows, the batches a whole-split prediction reads), logging progress as each batch is handed on.

    ``predict_logits`` asks its data only for ``sparse_batches``; a batch is counted when the next one is asked
    for, that is once the model has predicted it.
    """

    def __init__(self, data: SplitData, start: int, stop: int, progress: Progress):
        self.data, self.start, self.stop, self.progress = data, start, stop, progress

    def __len__(self) -> int:
        return self.stop - self.start

    def sparse_batches(self, batch_size: int, **kwargs) -> Iterator:
        order = [
            np.arange(i, min(i + batch_size, self.stop)) for i in range(self.start, self.stop, batch_size)
        ]
        for batch in self.data.read_batches(order, **kwargs):
            yield batch
            self.progress.advance(len(batch))


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
    reads and rebuilds its checkpoint once. ``checkpoint_path`` only names the file in errors. The whole table at
    once: for splits of millions of cells, write ``predict_chunks`` chunk by chunk instead."""
    labels = ckpt["labels"]
    tables = [
        contract_table(obs, labels, probs, label_names, save_probabilities)
        for obs, probs in predict_chunks(model, ckpt, split_dir, device, checkpoint_path, batch_size)
    ]
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def predict_chunks(
    model: torch.nn.Module,
    ckpt: dict,
    split_dir: str | os.PathLike,
    device: torch.device,
    checkpoint_path: str | os.PathLike = "model.pt",
    batch_size: int = 4096,
    chunk_cells: int | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The model's prediction of ``split_dir``, chunk by chunk: per chunk of consecutive cells, their obs
    (``contract.OBS_COLUMNS``) and their softmax probabilities (float32, cells × labels in ``ckpt["labels"]``
    order). A chunk is a whole number of batches (``chunk_cells``, default ``contract.CHUNK_CELLS``, rounded down
    to a multiple of ``batch_size``; smaller than one batch it is taken as it is, a test's setting), so the model
    sees the batches a whole-split prediction gives it and the probabilities are the same numbers;
    memory is one chunk's logits and probabilities (~0.7 KB per cell at 164 labels), whatever the split's size.
    An empty split gives one empty chunk. Progress (cells, rate, time left) is logged over the whole split."""
    split_dir = Path(split_dir)
    store = Store.holding(split_dir)
    if store.gene_ids != ckpt["genes"]:
        raise ValueError(
            f"{store.genes_source} lists other genes (or another order) than {checkpoint_path} was "
            "trained on; rebuild the set from the same training store"
        )
    data = store.split(split_dir.name, ckpt["labels"])
    trained = ckpt.get("settings") or {}
    chunk_cells = CHUNK_CELLS if chunk_cells is None else chunk_cells
    step = chunk_cells // batch_size * batch_size or chunk_cells
    progress = Progress(len(data), f"predict {split_dir.name} with {ckpt['architecture']}", log)
    start = 0
    for obs in data.obs_chunks(step, OBS_COLUMNS):
        rows = ReportingRows(data, start, start + len(obs), progress)
        with float32_matmul_precision(trained.get("float32_matmul_precision", "highest")):
            logits = predict_logits(model, rows, batch_size, device, trained.get("bf16", True))
        if len(obs) == 0:
            logits = np.zeros((0, len(ckpt["labels"])), np.float32)
        # The split is read once, front to back: the chunk's mapped pages are not read again.
        data.release_pages()
        yield obs, torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        start += len(obs)
    progress.finish()
