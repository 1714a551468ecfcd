"""What every loss of the registry shares: input checks, full precision under autocast, the class-weighted
reduction, the conversion of ``R`` and class weights, and the validation loss's hierarchy-corrected targets.

Keeping these in one place is what makes the losses comparable: each computes in float32 whatever the caller's
autocast (float64 inputs stay float64) and reduces exactly as ``torch.nn.functional.cross_entropy`` does, so a
difference between two runs is the loss, not its numerics or its normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def upcast(logits: Tensor) -> Tensor:
    """bf16/fp16 logits as float32; float32 and float64 unchanged."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def full_precision(logits: Tensor):
    """A context that switches autocast off on the logits' device.

    Autocast would run softmax/logsumexp in fp32 anyway on CUDA but not every op on every backend; switching it
    off makes the precision of the loss independent of the caller.
    """
    return torch.autocast(device_type=logits.device.type, enabled=False)


def gather_rows(matrix: Tensor | np.ndarray, target: Tensor, z: Tensor) -> Tensor:
    """``matrix[target]`` as a ``(B, K)`` tensor of ``z``'s dtype and device (``R[y]``, a target row per cell)."""
    m = torch.as_tensor(matrix, device=z.device)
    return m.index_select(0, target).to(z.dtype)


def reduce_loss(loss: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> Tensor:
    """Per-cell losses reduced like ``F.cross_entropy``: with class weights ``w`` the mean is
    ``sum_i w[y_i] l_i / sum_i w[y_i]``, ``"sum"`` is ``sum_i w[y_i] l_i``, ``"none"`` returns ``w[y_i] l_i``."""
    if weight is not None:
        w = weight.to(device=loss.device, dtype=loss.dtype).index_select(0, target)
        loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if weight is None else loss.sum() / w.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_inputs(logits: Tensor, target: Tensor, matrix, weight, matrix_name: str = "reachability") -> None:
    """Shape checks only: value checks on ``target`` would synchronise with the GPU every step."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, n_labels), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    if target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"target must hold integer label indices, got dtype {target.dtype}")
    k = logits.shape[1]
    if matrix is not None and tuple(matrix.shape) != (k, k):
        raise ValueError(f"{matrix_name} must be ({k}, {k}) for {k} logits, got {tuple(matrix.shape)}")
    if weight is not None and tuple(weight.shape) != (k,):
        raise ValueError(f"class weights must have shape ({k},), got {tuple(weight.shape)}")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def as_reachability(reachability) -> Tensor:
    """``R`` (a ``LabelHierarchy``, an array or a tensor) as a float32 CPU tensor, checked to be a square 0/1
    matrix with ones on its diagonal."""
    r = getattr(reachability, "reachability", reachability)  # accept a LabelHierarchy
    if r is None:
        raise ValueError("this loss needs the reachability matrix of the label hierarchy; got None")
    r = torch.as_tensor(np.asarray(r) if not isinstance(r, Tensor) else r).detach().cpu()
    if r.dim() != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"reachability must be a square matrix, got shape {tuple(r.shape)}")
    r = r.to(torch.float32)
    if not bool(((r == 0) | (r == 1)).all()):
        raise ValueError("reachability must hold only 0 and 1")
    if not bool((r.diagonal() == 1).all()):
        bad = torch.nonzero(r.diagonal() != 1).flatten().tolist()
        raise ValueError(f"reachability must be reflexive (ones on the diagonal); zero at rows {bad[:10]}")
    return r


def reachability_array(reachability) -> np.ndarray:
    """``R`` as a checked boolean numpy array, for the hierarchy computations a loss makes once when built."""
    return as_reachability(reachability).numpy().astype(bool)


def as_weight(weight, k: int | None) -> Tensor | None:
    """Class weights as a float32 CPU vector of length ``k`` (any length when ``k`` is None), or None."""
    if weight is None:
        return None
    w = torch.as_tensor(np.asarray(weight) if not isinstance(weight, Tensor) else weight).detach().cpu()
    w = w.to(torch.float32)
    if w.dim() != 1 or (k is not None and w.shape[0] != k):
        raise ValueError(
            f"class weights must be a vector of length {k or 'n_labels'}, got shape {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("class weights must be finite and non-negative")
    return w


def hierarchy_corrected_targets(target: Tensor, pred: Tensor, reachability: Tensor | np.ndarray) -> Tensor:
    """The targets the paper's validation loss is computed on: ``pred`` where ``R[target, pred] = 1``, else ``target``.

    A prediction of the true label or of a subtype of it counts as correct, so the loss is taken against the
    prediction itself; any other prediction leaves the true label as the target. ``target`` and ``pred`` are
    ``(B,)`` integer label indices. Every loss of the registry takes these targets like any others.
    """
    r = torch.as_tensor(np.asarray(reachability) if not isinstance(reachability, Tensor) else reachability)
    r = r.to(target.device)
    correct = r[target.long(), pred.long()] != 0
    return torch.where(correct, pred.to(target.dtype), target)
