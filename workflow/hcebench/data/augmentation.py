"""scTab's data augmentation: shift cells by realistic between-sample differences.

The bank holds differences between tech_samples of the per-cell-type mean expression (normalised, log1p
scale): for a cell type seen in tech_samples s and t, Δ = mean_s − mean_t. Small differences (|Δ| ≤
``min_abs``) are zeroed, since they are noise rather than batch structure, and large ones are clipped to
±``clip``. During training a random bank vector is added to or subtracted from each cell (sign ±1 with
probability ½) and the result clamped to [0, 9] (``hcebench.training.augmentation``).

The bank is computed from the training split only, so no validation or test sample leaks into training.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.data.store import SplitData


def group_means(
    x: sp.csr_matrix | SplitData, groups: np.ndarray, n_groups: int | None = None, chunk_rows: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """Mean row of ``x`` per group code (0..G-1; -1 = no group) and the number of rows in each group.

    ``x`` is a scipy CSR matrix or a store split; it is read ``chunk_rows`` rows at a time, so memory is
    bounded by the chunk and the (groups × genes) sums, not by the number of cells.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if len(groups) else 0
    n_rows, n_genes = x.shape
    sums = np.zeros((n_groups, n_genes), dtype=np.float64)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        member = groups[start:stop] >= 0
        if not member.any():
            continue
        rows = np.flatnonzero(member)
        if isinstance(x, SplitData):
            chunk = x.sparse_rows(start + rows).to_scipy()
        else:
            chunk = x[start + rows]
        indicator = sp.csr_matrix(
            (np.ones(len(rows)), (groups[start + rows], np.arange(len(rows)))), shape=(n_groups, len(rows))
        )
        sums += np.asarray((indicator @ chunk.astype(np.float64)).todense())
    sizes = np.bincount(groups[groups >= 0], minlength=n_groups)
    return sums / np.maximum(sizes, 1)[:, None], sizes


def build_bank(
    x: sp.csr_matrix | SplitData,
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
    ``x`` may be a store split larger than RAM: pairs are chosen from the group sizes first, then only the
    groups in a chosen pair are averaged, chunk by chunk.
    """
    groups = pd.MultiIndex.from_arrays([np.asarray(labels), np.asarray(tech_samples)])
    codes, uniques = groups.factorize()
    sizes = np.bincount(codes, minlength=len(uniques))
    group_label = uniques.get_level_values(0).to_numpy()
    rng = np.random.default_rng(seed)
    pairs = []
    for label in sorted(set(group_label.tolist())):
        members = np.flatnonzero((group_label == label) & (sizes >= min_cells))
        candidates = list(itertools.combinations(members, 2))
        if len(candidates) > max_pairs_per_type:
            candidates = [
                candidates[i] for i in rng.choice(len(candidates), max_pairs_per_type, replace=False)
            ]
        pairs.extend(candidates)
    n_genes = x.shape[1]
    if not pairs:
        return np.zeros((0, n_genes), np.float32)
    used = np.unique(np.asarray(pairs).ravel())
    slot = np.full(len(uniques), -1, dtype=np.int64)
    slot[used] = np.arange(len(used))
    means, _ = group_means(x, slot[codes], len(used))
    vectors = np.empty((len(pairs), n_genes), np.float32)
    for i, (s, t) in enumerate(pairs):
        delta = means[slot[s]] - means[slot[t]]
        delta[np.abs(delta) <= min_abs] = 0.0
        vectors[i] = np.clip(delta, -clip, clip)
    return vectors
