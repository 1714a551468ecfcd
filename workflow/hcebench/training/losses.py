"""Cross-entropy (CE) and hierarchical cross-entropy (HCE) for single-label classification over a DAG.

Notation: ``z`` are the logits of one cell over ``K`` labels, ``p = softmax(z)``, ``y`` the true label
index and ``R`` the reachability matrix of ``hcebench.hierarchy.ontology.LabelHierarchy``:

    R[i, j] = 1  iff  j == i  or  label j is a subtype of label i,

so row ``R[y]`` marks ``desc(y)``, every label that counts as "a ``y``" (``y`` included).

    CE                    l = -log p_y
    HCE, paper form       l = -log(sum_j R[y, j] * p_j + eps)             (eps = 1e-6 in the paper)
    HCE, stable form      l = logsumexp(z) - logsumexp_{j in desc(y)} z_j  (the same without eps)

HCE moves probability mass anywhere inside the true label's subtree at no cost, so a cell annotated
"T cell" is not penalised for a confident "CD8 T cell". Because ``R`` is reflexive the subtree mass
is at least ``p_y``, so ``HCE <= CE`` for every sample, with equality for labels without subtypes in
the label set (the paper form up to its ``eps``), and for every label when ``R`` is the identity.
The paper form saturates at ``-log(eps) ~= 13.8`` with a vanishing gradient when the subtree holds
almost no mass, and is slightly negative, ``-log(1 + eps)``, when it holds all of it. The stable
form has neither quirk. Both are offered (``training.hce_form``); record which one a result used.

The validation loss is logged as the paper's code logs it (microsoft/hce-classification, ``BaseClassifier``'s
``validation_step``): the training loss *without* class weights, on hierarchy-corrected targets
(``hierarchy_corrected_targets``: the prediction where it is the true label or a subtype of it, else the true
label); build it with ``make_loss(name, reachability, class_weights=None)``.

Reduction follows ``torch.nn.functional.cross_entropy``: with class weights ``w`` the mean is
``sum_i w[y_i] l_i / sum_i w[y_i]``; ``"sum"`` is ``sum_i w[y_i] l_i``; ``"none"`` returns
``w[y_i] l_i`` per sample.

Cost: the HCE forms gather the ``B x K`` rows ``R[y]``; neither forms a ``B x K x K`` product or a
``(B x K) @ (K x K)`` matmul. The paper form is a softmax, a product with the rows and a row sum;
the stable form is two fused cross-entropies, ``CE(z, y) - CE(z masked to desc(y), y)``. Per batch
of 2,048 cells and 164 labels (one CPU thread, forward + backward) CE takes ~0.7 ms, the paper form
~1 ms and the stable form ~3 ms, small beside any model's first layer. All arithmetic runs in
float32 (float64 inputs stay float64) with autocast disabled, so under bf16/fp16 autocast the loss,
and the log of a small subtree mass, are computed at full precision.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcebench.layout import LOSSES

HCE_FORMS = ("paper", "stable")
PAPER_EPS = 1e-6


# -- functional ----------------------------------------------------------------------------------
def cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """CE ``-log softmax(z)_y``, reduced like ``F.cross_entropy`` (class-weighted mean by default).

    ``logits``: ``(B, K)``; ``target``: ``(B,)`` integer label indices; ``weight``: ``(K,)`` class weights.
    bf16/fp16 logits are upcast to float32; the result is float32 (float64 for float64 input).
    """
    _check_inputs(logits, target, None, weight)
    with _full_precision(logits):
        z = _upcast(logits)
        w = None if weight is None else weight.to(device=z.device, dtype=z.dtype)
        return F.cross_entropy(z, target.long(), weight=w, reduction=reduction)


def hce_paper(
    logits: Tensor,
    target: Tensor,
    reachability: Tensor | np.ndarray,
    weight: Tensor | None = None,
    eps: float = PAPER_EPS,
    reduction: str = "mean",
) -> Tensor:
    """HCE in the paper's form: ``-log(sum_j R[y, j] softmax(z)_j + eps)``, class-weighted mean.

    ``reachability``: ``(K, K)`` 0/1 (bool, integer or float) with ``R[i, j] = 1`` iff ``j == i`` or
    ``j`` is a subtype of ``i``. Saturates at ``-log(eps)`` (zero gradient) when the subtree of ``y``
    holds less than about ``eps`` of the probability mass; see ``hce_stable``.
    """
    _check_inputs(logits, target, reachability, weight)
    with _full_precision(logits):
        z = _upcast(logits)
        rows = _rows(reachability, target, z)  # (B, K): R[y_i]
        mass = (torch.softmax(z, dim=-1) * rows).sum(dim=-1)
        return _reduce(-torch.log(mass + eps), target, weight, reduction)


def hce_stable(
    logits: Tensor,
    target: Tensor,
    reachability: Tensor | np.ndarray,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """HCE in log space: ``logsumexp(z) - logsumexp_{j in desc(y)} z_j``, class-weighted mean.

    Equals ``-log(sum_j R[y, j] softmax(z)_j)`` exactly (no epsilon), finite and with a useful
    gradient however little mass the subtree of ``y`` holds. ``desc(y)`` is never empty because
    ``R`` is reflexive.

    Computed as ``CE(z, y) - CE(z restricted to desc(y), y)``, i.e. ``-log P(desc(y)) = -log p_y +
    log p(y | desc(y))``: two fused cross-entropy kernels on the logits and on the logits with
    everything outside the subtree set to ``-inf``.
    """
    _check_inputs(logits, target, reachability, weight)
    with _full_precision(logits):
        z = _upcast(logits)
        rows = torch.as_tensor(reachability, device=z.device).index_select(0, target)
        outside = ~rows if rows.dtype == torch.bool else rows == 0  # (B, K): not a subtype of y_i
        y = target.long()
        full = F.cross_entropy(z, y, reduction="none")
        within = F.cross_entropy(z.masked_fill(outside, float("-inf")), y, reduction="none")
        return _reduce(full - within, target, weight, reduction)


# -- modules -------------------------------------------------------------------------------------
class CrossEntropyLoss(nn.Module):
    """``cross_entropy`` as a module; the class weights are a buffer and follow ``.to(device)``."""

    weight: Tensor | None

    def __init__(self, weight: Tensor | np.ndarray | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("weight", _as_weight(weight, None))
        self.reduction = _check_reduction(reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, self.weight, self.reduction)

    def extra_repr(self) -> str:
        return f"weighted={self.weight is not None}, reduction={self.reduction!r}"


class HierarchicalCrossEntropyLoss(nn.Module):
    """HCE as a module. ``R`` and the class weights are buffers and follow ``.to(device)``.

    ``form="paper"`` is ``hce_paper`` (with ``eps``), ``form="stable"`` is ``hce_stable`` (``eps``
    unused). ``reachability`` may be a ``LabelHierarchy``, an array or a tensor; it must be a square
    0/1 matrix with ones on its diagonal. The buffer is float32 for the paper form (it multiplies
    probabilities) and bool for the stable form (it masks logits): the cheapest gather for each.
    """

    reachability: Tensor
    weight: Tensor | None

    def __init__(
        self,
        reachability,
        weight: Tensor | np.ndarray | None = None,
        form: Literal["paper", "stable"] = "paper",
        eps: float = PAPER_EPS,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if form not in HCE_FORMS:
            raise ValueError(f"unknown HCE form {form!r}; choose one of {HCE_FORMS}")
        if form == "paper" and not eps > 0:
            raise ValueError(f"the paper form needs eps > 0 (got {eps}); use form='stable' for no epsilon")
        r = _as_reachability(reachability)
        self.register_buffer("reachability", r if form == "paper" else r.bool())
        self.register_buffer("weight", _as_weight(weight, r.shape[0]))
        self.form = form
        self.eps = float(eps)
        self.reduction = _check_reduction(reduction)

    @property
    def k(self) -> int:
        return self.reachability.shape[0]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.form == "paper":
            return hce_paper(logits, target, self.reachability, self.weight, self.eps, self.reduction)
        return hce_stable(logits, target, self.reachability, self.weight, self.reduction)

    def extra_repr(self) -> str:
        eps = f", eps={self.eps:g}" if self.form == "paper" else ""
        return f"k={self.k}, form={self.form!r}{eps}, weighted={self.weight is not None}, reduction={self.reduction!r}"


def make_loss(
    name: str,
    reachability=None,
    class_weights: Tensor | np.ndarray | None = None,
    hce_form: str = "paper",
) -> nn.Module:
    """Build the loss a config names: ``"ce"`` (``reachability`` ignored) or ``"hce"``.

    ``name`` comes from ``training.losses`` and ``hce_form`` from ``training.hce_form``; a bad value
    raises ``ValueError`` naming the key.
    """
    if name == "ce":
        return CrossEntropyLoss(class_weights)
    if name == "hce":
        if hce_form not in HCE_FORMS:
            raise ValueError(
                f"training.hce_form: unknown HCE form {hce_form!r}; choose one of {list(HCE_FORMS)} "
                "('paper' is -log(sum of subtree probabilities + 1e-6), 'stable' the same in log space)"
            )
        if reachability is None:
            raise ValueError("the 'hce' loss needs the reachability matrix of the label hierarchy")
        return HierarchicalCrossEntropyLoss(reachability, class_weights, form=hce_form)
    raise ValueError(
        f"training.losses: unknown loss {name!r}; choose from {list(LOSSES)} (hcebench.layout.LOSSES)"
    )


def hierarchy_corrected_targets(target: Tensor, pred: Tensor, reachability: Tensor | np.ndarray) -> Tensor:
    """The targets the paper's validation loss is computed on: ``pred`` where ``R[target, pred] = 1``, else ``target``.

    A prediction of the true label or of a subtype of it counts as correct, so the loss is taken against the
    prediction itself; any other prediction leaves the true label as the target. ``target`` and ``pred`` are
    ``(B,)`` integer label indices.
    """
    r = torch.as_tensor(np.asarray(reachability) if not isinstance(reachability, Tensor) else reachability)
    r = r.to(target.device)
    correct = r[target.long(), pred.long()] != 0
    return torch.where(correct, pred.to(target.dtype), target)


# -- internals -----------------------------------------------------------------------------------
def _upcast(logits: Tensor) -> Tensor:
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _full_precision(logits: Tensor):
    # Autocast would run softmax/logsumexp in fp32 anyway on CUDA but not every op on every
    # backend; switching it off makes the precision of the loss independent of the caller.
    return torch.autocast(device_type=logits.device.type, enabled=False)


def _rows(reachability: Tensor | np.ndarray, target: Tensor, z: Tensor) -> Tensor:
    """``R[target]`` as a ``(B, K)`` tensor of ``z``'s dtype and device."""
    r = torch.as_tensor(reachability, device=z.device)
    return r.index_select(0, target).to(z.dtype)


def _reduce(loss: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> Tensor:
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


def _check_inputs(logits: Tensor, target: Tensor, reachability, weight) -> None:
    # Shape checks only: value checks on target would synchronise with the GPU every step.
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, n_labels), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    if target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"target must hold integer label indices, got dtype {target.dtype}")
    k = logits.shape[1]
    if reachability is not None and tuple(reachability.shape) != (k, k):
        raise ValueError(f"reachability must be ({k}, {k}) for {k} logits, got {tuple(reachability.shape)}")
    if weight is not None and tuple(weight.shape) != (k,):
        raise ValueError(f"class weights must have shape ({k},), got {tuple(weight.shape)}")


def _check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _as_reachability(reachability) -> Tensor:
    r = getattr(reachability, "reachability", reachability)  # accept a LabelHierarchy
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


def _as_weight(weight, k: int | None) -> Tensor | None:
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
