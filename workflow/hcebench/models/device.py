"""Where and in what precision a model runs: device choice, bf16 autocast, float32 matmul precision, and batched
inference over a split.

Training (validation passes) and prediction both call ``predict_outputs``, so a model is evaluated the same way
in both places; prediction reads ``bf16`` and ``float32_matmul_precision`` from the checkpoint's training settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from hcebench.data.store import SplitData
from hcebench.models import logits_and_aux


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


#: torch.set_float32_matmul_precision's values: "highest" = full float32 (torch's default), "high" = TF32 on CUDA
#: tensor cores (the paper's setting), "medium" = bf16 internally.
MATMUL_PRECISIONS = ("highest", "high", "medium")


@contextlib.contextmanager
def float32_matmul_precision(name: str) -> Iterator[None]:
    """Run the block with ``torch.set_float32_matmul_precision(name)``, then restore the previous setting.

    The setting is global to the process; restoring it keeps one run's choice out of the next (tests train many
    models in one process).
    """
    if name not in MATMUL_PRECISIONS:
        raise ValueError(
            f"training.float32_matmul_precision is {name!r}; choose one of {list(MATMUL_PRECISIONS)}"
        )
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(name)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def autocast(device: torch.device, bf16: bool = True):
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


@torch.no_grad()
def predict_outputs(
    model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device, bf16: bool = True
) -> tuple[np.ndarray, float]:
    """Logits of every cell of ``data`` (float32, in order) in eval mode, and the model's auxiliary loss (e.g.
    TabNet's sparsity term) averaged over batches weighted by their cells; 0 for a model without one."""
    model.eval()
    out = []
    aux_sum = 0.0
    # On a CPU every batch is densified into one reused tensor: a fresh batch-sized tensor per batch costs its page
    # faults (a third of a linear model's prediction time at 19,331 genes); the logits are new tensors each batch.
    dense = None
    for batch in data.sparse_batches(batch_size, reuse_buffers=True):  # each batch densified before the next
        if device.type == "cpu" and (dense is None or dense.shape[0] < len(batch)):
            dense = torch.empty((len(batch), batch.n_genes), dtype=torch.float32)
        with autocast(device, bf16):
            logits, aux = logits_and_aux(model(batch.to_dense(device, out=dense)))
        out.append(logits.float().cpu().numpy())
        if aux is not None:
            aux_sum += float(aux) * len(out[-1])
    logits = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    return logits, aux_sum / max(len(logits), 1)


def predict_logits(
    model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device, bf16: bool = True
) -> np.ndarray:
    """Logits of every cell of ``data`` (float32, in order), the model in eval mode."""
    return predict_outputs(model, data, batch_size, device, bf16)[0]
