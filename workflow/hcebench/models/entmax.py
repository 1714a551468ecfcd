"""entmax-1.5: a sparse alternative to softmax (Peters, Niculae & Martins, 2019), used for TabNet's masks.

α-entmax maps scores ``z`` to the probability vector ``p`` maximising ``p·z + H_α(p)`` with the Tsallis
entropy ``H_α``; ``α → 1`` is softmax and ``α = 2`` is sparsemax. For ``α = 1.5`` the solution is

    p_i = max(z_i / 2 - τ, 0) ** 2      with τ chosen so that Σ_i p_i = 1,

so scores far enough below the largest get exactly zero weight. ``entmax15`` finds ``τ`` exactly by
sorting (``O(n log n)`` per row); ``entmax_bisect`` finds it for any ``α`` by bisection and serves as
the reference in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _Entmax15(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, dim: int) -> Tensor:
        ctx.dim = dim
        x = z / 2
        x = x - x.amax(dim=dim, keepdim=True)  # shift invariance; keeps the squares small
        tau, _ = _tau15(x, dim)
        p = torch.clamp(x - tau, min=0) ** 2
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad: Tensor):
        (p,) = ctx.saved_tensors
        # Jacobian of 1.5-entmax: diag(s) − s sᵀ / Σs with s = sqrt(p) = z/2 − τ, zero off the support.
        s = p.sqrt()
        g = grad * s
        g = g - s * (g.sum(dim=ctx.dim, keepdim=True) / s.sum(dim=ctx.dim, keepdim=True))
        return g, None


#: Entries sorted first when looking for the support; masks over genes rarely need more, and a partial
#: sort (top-k) of 2,000–20,000 scores is several times faster than a full one.
_TOP_K = 128

#: Rows sorted in full at a time when their support reaches ``_TOP_K``. A full sort holds the row's values, int64
#: indices and the cumulative sums (~40 B per score): for 2,048 rows of 19,331 genes that is 1.6 GB, and how many
#: rows are wide depends on the trained weights and the cells. Sorting them in blocks bounds that transient at
#: ~50 MB whatever the weights; each row's result is the same (rows are independent).
_WIDE_ROWS = 64


def _tau15(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Threshold ``τ`` with ``Σ max(x - τ, 0)² = 1``, and the support size, along ``dim``.

    Tries the largest ``_TOP_K`` entries of every row first; a row's answer is exact when its support is smaller
    than that (the first entry left out of the support lies inside the top-k, so the support test saw it). Only the
    rows whose support reaches ``_TOP_K`` are then sorted in full: one wide mask in a batch (a trained TabNet has a
    few in a thousand) no longer sorts the whole batch.
    """
    n = x.shape[dim]
    if n <= _TOP_K:
        return _tau15_sorted(torch.sort(x, dim=dim, descending=True).values, dim)
    tau, support = _tau15_sorted(torch.topk(x, _TOP_K, dim=dim).values, dim)
    wide = support.squeeze(dim) >= _TOP_K
    if bool(wide.any()):
        scores = x.movedim(dim, -1)
        tau, support = tau.movedim(dim, -1).clone(), support.movedim(dim, -1).clone()
        where = wide.nonzero(as_tuple=True)
        for start in range(0, where[0].numel(), _WIDE_ROWS):
            block = tuple(w[start : start + _WIDE_ROWS] for w in where)
            srt = torch.sort(scores[block], dim=-1, descending=True).values
            tau[block], support[block] = _tau15_sorted(srt, -1)
        tau, support = tau.movedim(-1, dim), support.movedim(-1, dim)
    return tau, support


def _tau15_sorted(srt: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    n = srt.shape[dim]
    shape = [1] * srt.dim()
    shape[dim] = n
    rho = torch.arange(1, n + 1, device=srt.device, dtype=srt.dtype).view(shape)
    mean = srt.cumsum(dim) / rho
    mean_sq = (srt**2).cumsum(dim) / rho
    # For a support of the top-k entries, τ solves k·τ² − 2τ·Σx + Σx² − 1 = 0 (the smaller root).
    delta = (1 - rho * (mean_sq - mean**2)) / rho
    tau = mean - torch.sqrt(torch.clamp(delta, min=0))
    support = (tau <= srt).sum(dim=dim, keepdim=True)
    return tau.gather(dim, support - 1), support


def entmax15(z: Tensor, dim: int = -1) -> Tensor:
    """1.5-entmax of ``z`` along ``dim``: non-negative, sums to 1, exactly zero below a data-dependent threshold.

    Computed in float32 at least (bf16 scores under autocast are upcast) and returned in that precision.
    """
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    return _Entmax15.apply(z, dim % z.dim())


def entmax_bisect(z: Tensor, alpha: float, dim: int = -1, n_iter: int = 60) -> Tensor:
    """α-entmax of ``z`` along ``dim`` for any ``α > 1`` by bisection on ``τ`` (reference; no custom gradient).

    ``p_i = max((α − 1) z_i − τ, 0) ** (1 / (α − 1))``, normalised at the end to absorb the bisection error.
    """
    if alpha <= 1:
        raise ValueError(f"entmax_bisect needs alpha > 1 (alpha -> 1 is softmax), got {alpha}")
    x = (alpha - 1) * z
    power = 1 / (alpha - 1)
    hi = x.amax(dim=dim, keepdim=True)  # τ = max gives Σp = 0
    lo = hi - 1.0  # τ = max − 1 gives Σp ≥ 1 (the top entry alone contributes 1)
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        mass = (torch.clamp(x - mid, min=0) ** power).sum(dim=dim, keepdim=True)
        lo = torch.where(mass >= 1, mid, lo)
        hi = torch.where(mass >= 1, hi, mid)
    p = torch.clamp(x - lo, min=0) ** power
    return p / p.sum(dim=dim, keepdim=True)
