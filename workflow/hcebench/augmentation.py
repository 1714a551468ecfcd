"""scTab's data augmentation: shift cells by realistic between-sample differences.

The bank holds differences between tech_samples of the per-cell-type mean expression (normalised, log1p
scale): for a cell type seen in tech_samples s and t, Δ = mean_s − mean_t. Small differences (|Δ| ≤
``min_abs``) are zeroed, since they are noise rather than batch structure, and large ones are clipped to
±``clip``. During training a random bank vector is added to or subtracted from each cell (sign ±1 with
probability ½) and the result clamped to [0, 9], the range of log1p-normalised values.

The bank is computed from the training split only, so no validation or test sample leaks into training.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch


def group_means(x: sp.csr_matrix, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean row of ``x`` per group code (0..G-1) and the number of rows in each group."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    indicator = sp.csr_matrix(
        (np.ones(len(groups), np.float32), (groups, np.arange(len(groups)))), shape=(n_groups, x.shape[0])
    )
    sums = np.asarray((indicator @ x).todense(), dtype=np.float64)
    sizes = np.bincount(groups, minlength=n_groups)
    return sums / np.maximum(sizes, 1)[:, None], sizes


def build_bank(
    x: sp.csr_matrix,
    labels: np.ndarray,
    tech_samples: np.ndarray,
    *,
    min_cells: int = 10,
    min_abs: float = 0.25,
    clip: float = 1.5,
    max_pairs_per_type: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """Difference vectors between tech_samples of each cell type's mean expression, float32 (n, genes).

    Only (type, tech_sample) groups with at least ``min_cells`` cells contribute; each type contributes at most
    ``max_pairs_per_type`` pairs (chosen at random with ``seed``) so abundant types do not dominate the bank.
    """
    groups = pd.MultiIndex.from_arrays([np.asarray(labels), np.asarray(tech_samples)])
    codes, uniques = groups.factorize()
    means, sizes = group_means(x, codes)
    group_label = uniques.get_level_values(0).to_numpy()
    rng = np.random.default_rng(seed)
    vectors = []
    for label in sorted(set(group_label.tolist())):
        members = np.flatnonzero((group_label == label) & (sizes >= min_cells))
        pairs = list(itertools.combinations(members, 2))
        if len(pairs) > max_pairs_per_type:
            pairs = [pairs[i] for i in rng.choice(len(pairs), max_pairs_per_type, replace=False)]
        for s, t in pairs:
            delta = means[s] - means[t]
            delta[np.abs(delta) <= min_abs] = 0.0
            vectors.append(np.clip(delta, -clip, clip))
    if not vectors:
        return np.zeros((0, x.shape[1]), np.float32)
    return np.stack(vectors).astype(np.float32)


def augment(x: torch.Tensor, bank: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add or subtract one random bank vector per cell, clamped to [0, 9]; ``x`` unchanged if the bank is empty."""
    if bank.shape[0] == 0:
        return x
    pick = torch.randint(0, bank.shape[0], (x.shape[0],), generator=generator, device="cpu").to(bank.device)
    sign = torch.randint(0, 2, (x.shape[0], 1), generator=generator, device="cpu").to(x.device) * 2.0 - 1.0
    return torch.clamp(x + sign.to(x.dtype) * bank[pick].to(x.dtype), 0.0, 9.0)
