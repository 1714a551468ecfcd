"""Where and in what precision a model runs: device choice, bf16 autocast, and batched inference over a split.

Training (validation passes) and prediction both call ``predict_logits``, so a model is evaluated the same way
in both places.
"""

from __future__ import annotations

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


def autocast(device: torch.device, bf16: bool = True):
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


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
