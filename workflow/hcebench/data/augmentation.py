"""scTab's data augmentation bank: realistic between-sample shifts of expression, from the training split.

The bank follows scTab's notebook ``notebooks/data_augmentation/data_augmentation.ipynb`` step by step:

1. **Subsample.** ``subsample_cells`` training cells drawn without replacement with probability ∝ 1 / (cells of
   the cell's type), so every type is about equally represented: ``rng = np.random.default_rng(seed)``;
   ``rng.choice(n_cells, size, replace=False, p)``; the rows are then sorted.
2. **Means.** The mean expression (normalised, log1p scale) of every (type, tech_sample) in the subsample.
3. **Differences.** Per type, its tech_samples in sorted order, the ``n (n − 1) / 2`` pairs ``(i, j)``, ``i < j``,
   in lexicographic order, and ``min(n (n − 1) / 2 − 1, max_pairs_per_type)`` of them drawn without replacement;
   each gives ``mean_i − mean_j``. The ``− 1`` is scTab's count: one pair of every type is always left out, so a
   type seen in two tech_samples contributes nothing (and one seen in one, or none, cannot contribute).
4. **Threshold.** ``|Δ| ≤ min_abs`` set to 0 (noise, not batch structure), then clipped to ``±clip``.
5. **Cluster filter.** k-means with ``n_clusters`` clusters on the vectors (scikit-learn ``KMeans``,
   ``n_init="auto"``); only the vectors of clusters holding more than ``min_cluster_size`` vectors are kept,
   in their order, so rare, idiosyncratic shifts are dropped.
6. **Draw.** ``n_vectors`` of the kept vectors drawn uniformly without replacement with a fresh
   ``np.random.default_rng(seed)``; all of them, in order, when fewer are kept.

Where the notebook leaves a draw unseeded (the pairs, drawn with numba's global generator; the k-means
initialisation), the bank is made reproducible: the pairs continue the subsample's generator and k-means gets
``random_state=seed``. During training a random bank vector is added to or subtracted from each cell (sign ±1
with probability ½) and the result clamped to [0, 9] (``hcebench.training.augmentation``).

The bank is computed from the training split only, so no validation or test sample leaks into training. The
split may be larger than memory: only the subsampled rows are read, chunk by chunk, and only the (type,
tech_sample) groups in a drawn pair are averaged (the pairs depend on the group structure alone, so drawing them
before reading any expression changes nothing). Memory is bounded by the chunk, the drawn groups' means and the
bank itself (pairs × genes), not by the cells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans

from hcebench.data.store import SplitData
from hcebench.errors import ConfigError
from hcebench.settings import BankSettings

log = logging.getLogger(__name__)


def group_means(
    x: sp.csr_matrix | SplitData, groups: np.ndarray, n_groups: int | None = None, chunk_rows: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """Mean row of ``x`` per group code (0..G-1; -1 = no group) and the number of rows in each group.

    ``x`` is a scipy CSR matrix or a store split; it is read ``chunk_rows`` rows at a time, and of each chunk
    only the rows in a group, so memory is bounded by the chunk and the (groups × genes) sums, not by the
    number of cells (8 bytes per group and gene, once: the means are the sums divided in place). Progress is
    logged every tenth of the rows.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if len(groups) else 0
    n_rows, n_genes = x.shape
    sums = np.zeros((n_groups, n_genes), dtype=np.float64)
    step = max(n_rows // 10, 1)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        member = groups[start:stop] >= 0
        if member.any():
            rows = np.flatnonzero(member)
            if isinstance(x, SplitData):
                chunk = x.sparse_rows(start + rows).to_scipy()
                x.release_pages()  # read once, front to back
            else:
                chunk = x[start + rows]
            indicator = sp.csr_matrix(
                (np.ones(len(rows)), (groups[start + rows], np.arange(len(rows)))),
                shape=(n_groups, len(rows)),
            )
            # Added where the chunk's sums are nonzero: no second dense (groups × genes) array, even for a moment.
            part = (indicator @ chunk.astype(np.float64)).tocoo()
            sums[part.row, part.col] += part.data
        if stop // step > start // step and stop < n_rows:
            log.info("group means: %d of %d rows read", stop, n_rows)
    sizes = np.bincount(groups[groups >= 0], minlength=n_groups)
    sums /= np.maximum(sizes, 1)[:, None]  # in place: the (groups × genes) float64 sums are held once
    return sums, sizes


def subsample(labels: np.ndarray, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of ``n_cells`` cells drawn without replacement with probability ∝ 1 / (cells of its type).

    Every type then gets about ``n_cells / types`` cells, or all of its cells if it has fewer. ``n_cells`` at
    least the number of rows returns every row (after drawing them, so ``rng`` advances the same way).
    """
    codes, _ = pd.factorize(pd.Series(np.asarray(labels)))
    if (codes < 0).any():
        raise ValueError("subsample: labels must not be missing")
    weight = 1.0 / np.bincount(codes)[codes]
    p = weight / weight.sum()
    size = min(int(n_cells), len(codes))
    return np.sort(rng.choice(len(codes), size=size, replace=False, p=p))


def draw_pairs(n_samples: int, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """scTab's pairs of one type's ``n_samples`` tech_samples: ``min(n(n−1)/2 − 1, max_pairs)`` of them, (k, 2).

    Drawn without replacement from the pairs ``(i, j)``, ``i < j``, in lexicographic order; none when
    ``n(n−1)/2 − 1 ≤ 0`` (fewer than three tech_samples).
    """
    n_pairs = n_samples * (n_samples - 1) // 2
    k = min(n_pairs - 1, max_pairs)
    if k <= 0:
        return np.zeros((0, 2), np.int64)
    pairs = np.stack(np.triu_indices(n_samples, 1), axis=1)  # (i, j), i < j, row by row: lexicographic
    return pairs[rng.choice(n_pairs, size=k, replace=False)]


def pair_differences(
    x: sp.csr_matrix | SplitData,
    labels: np.ndarray,
    tech_samples: np.ndarray,
    rows: np.ndarray,
    max_pairs_per_type: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Differences of (type, tech_sample) mean expression over ``rows``, float32 (pairs, genes).

    Types in sorted order, each with its ``draw_pairs`` over its tech_samples in sorted order, concatenated.
    Only ``rows`` are read, and of the groups only those in a drawn pair are averaged.
    """
    cells = pd.MultiIndex.from_arrays([np.asarray(labels)[rows], np.asarray(tech_samples)[rows]])
    # The (type, tech_sample) groups, sorted, so each type's tech_samples are a contiguous run.
    keys = cells.unique().sort_values()
    codes = keys.get_indexer(cells)
    types, firsts, counts = np.unique(keys.get_level_values(0), return_index=True, return_counts=True)
    pairs = [first + draw_pairs(n, max_pairs_per_type, rng) for first, n in zip(firsts, counts, strict=True)]
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    silent = int((counts < 3).sum())
    log.info(
        "differences: %d pairs from %d types (%d types with fewer than 3 tech_samples in the subsample give none)",
        len(pairs),
        len(types) - silent,
        silent,
    )
    n_genes = x.shape[1]
    if len(pairs) == 0:
        return np.zeros((0, n_genes), np.float32)
    used = np.unique(pairs)
    # The state of this step: the used groups' means (8 bytes per group and gene) and the differences (4 per
    # pair and gene); both bounded by types × max_pairs_per_type, not by the cells.
    log.info("means of %d (type, tech_sample) groups in %d pairs × %d genes", len(used), len(pairs), n_genes)
    slot = np.full(len(keys), -1, dtype=np.int64)
    slot[used] = np.arange(len(used))
    member = np.full(x.shape[0], -1, dtype=np.int64)
    member[rows] = slot[codes]
    means, _ = group_means(x, member, len(used))
    out = np.empty((len(pairs), n_genes), np.float32)
    for start in range(0, len(pairs), BLOCK_ROWS):  # in blocks: no (pairs × genes) float64 temporaries
        block = pairs[start : start + BLOCK_ROWS]
        out[start : start + len(block)] = means[slot[block[:, 0]]] - means[slot[block[:, 1]]]
    return out


#: Rows per block of the (pairs × genes) array in element-wise steps: their temporaries (|Δ|, masks) are a
#: block's, never a second copy of the whole array (3.8 GB at scTab's 164 types × 300 pairs × 19,331 genes).
BLOCK_ROWS = 1024


def share_above(vectors: np.ndarray, min_abs: float) -> float:
    """The share of values with ``|Δ| > min_abs``, computed block by block."""
    if vectors.size == 0:
        return 0.0
    above = sum(
        int(np.count_nonzero(np.abs(vectors[start : start + BLOCK_ROWS]) > min_abs))
        for start in range(0, len(vectors), BLOCK_ROWS)
    )
    return above / vectors.size


def threshold(vectors: np.ndarray, min_abs: float, clip: float) -> np.ndarray:
    """``|Δ| ≤ min_abs`` set to 0, then clipped to ``±clip`` (in place, block by block; returned)."""
    for start in range(0, len(vectors), BLOCK_ROWS):
        block = vectors[start : start + BLOCK_ROWS]
        block[np.abs(block) <= min_abs] = 0.0
        np.clip(block, -clip, clip, out=block)
    return vectors


@dataclass
class ClusterFilter:
    """What the k-means filter did: vectors before and after it, and the cluster sizes (largest first)."""

    before: int
    kept: int
    drawn: int
    cluster_sizes: list[int]
    clusters_kept: int


def select_by_cluster(
    vectors: np.ndarray, n_clusters: int, min_cluster_size: int, n_vectors: int, seed: int
) -> tuple[np.ndarray, ClusterFilter]:
    """Keep the vectors of k-means clusters holding more than ``min_cluster_size``; draw ``n_vectors`` of them.

    k-means: scikit-learn ``KMeans(n_clusters, n_init="auto", random_state=seed)``. The draw is uniform,
    without replacement, from a fresh ``np.random.default_rng(seed)``; with fewer kept vectors than
    ``n_vectors`` all of them are returned, in order.
    """
    if len(vectors) < n_clusters:
        raise ConfigError(
            f"augmentation.n_clusters is {n_clusters} but the training split gives only {len(vectors)} "
            "difference vectors; lower augmentation.n_clusters (and min_cluster_size), or raise "
            "augmentation.subsample_cells or max_pairs_per_type"
        )
    log.info("k-means: %d vectors × %d genes into %d clusters", *vectors.shape, n_clusters)
    labels = KMeans(n_clusters=n_clusters, n_init="auto", random_state=seed).fit(vectors).labels_
    sizes = np.bincount(labels, minlength=n_clusters)
    big = sizes > min_cluster_size
    kept = np.flatnonzero(big[labels])  # row numbers, in order: no copy of the kept vectors yet
    if len(kept) == 0:
        raise ConfigError(
            f"augmentation.min_cluster_size is {min_cluster_size} but the largest of the {n_clusters} k-means "
            f"clusters holds {sizes.max()} of {len(vectors)} vectors, so the bank would be empty; lower "
            "augmentation.min_cluster_size below that (or augmentation.n_clusters)"
        )
    rng = np.random.default_rng(seed)
    if len(kept) >= n_vectors:
        kept = kept[rng.choice(len(kept), size=n_vectors, replace=False)]
    else:
        log.warning(
            "augmentation: only %d vectors in clusters above min_cluster_size %d, fewer than n_vectors %d; "
            "keeping all of them",
            len(kept),
            min_cluster_size,
            n_vectors,
        )
    stats = ClusterFilter(
        before=len(vectors),
        kept=int(sizes[big].sum()),
        drawn=len(kept),
        cluster_sizes=sorted(sizes.tolist(), reverse=True),
        clusters_kept=int(big.sum()),
    )
    return vectors[kept], stats


def build_bank(
    x: sp.csr_matrix | SplitData, labels: np.ndarray, tech_samples: np.ndarray, settings: BankSettings
) -> np.ndarray:
    """scTab's augmentation bank from a training split, float32 (vectors, genes); ``settings`` is the config's
    ``augmentation:`` block (its schema defaults are scTab's).

    ``x`` is the split (a store split larger than memory is read chunk by chunk; only the subsampled rows);
    ``labels`` and ``tech_samples`` give each row's cell type and tech_sample. The steps and their random
    draws are the module's: subsample, means, differences, threshold, cluster filter, draw. Bank statistics
    (vectors before and after the cluster filter, share nonzero) are logged.
    """
    labels, tech_samples = np.asarray(labels), np.asarray(tech_samples)
    if len(labels) != x.shape[0] or len(tech_samples) != x.shape[0]:
        raise ValueError(
            f"build_bank: {x.shape[0]} rows but {len(labels)} labels and {len(tech_samples)} tech_samples"
        )
    rng = np.random.default_rng(settings.seed)
    rows = subsample(labels, settings.subsample_cells, rng)
    log.info(
        "subsample: %d of %d training cells, %d types, drawn with probability ∝ 1 / cells of the type",
        len(rows),
        len(labels),
        len(np.unique(labels)),
    )
    vectors = pair_differences(x, labels, tech_samples, rows, settings.max_pairs_per_type, rng)
    if len(vectors) == 0:
        raise ConfigError(
            "augmentation: no cell type has three or more tech_samples in the subsample, so there are no "
            "difference vectors; raise augmentation.subsample_cells, or train without augment: true"
        )
    log.info(
        "differences above min_abs %g: %.2f%% of values",
        settings.min_abs,
        100 * share_above(vectors, settings.min_abs),
    )
    threshold(vectors, settings.min_abs, settings.clip)
    bank, stats = select_by_cluster(
        vectors, settings.n_clusters, settings.min_cluster_size, settings.n_vectors, settings.seed
    )
    log.info(
        "k-means: %d clusters of sizes %s; %d clusters of more than %d vectors kept: %d of %d vectors",
        settings.n_clusters,
        stats.cluster_sizes,
        stats.clusters_kept,
        settings.min_cluster_size,
        stats.kept,
        stats.before,
    )
    log.info(
        "bank: %d vectors × %d genes (drawn from %d kept), %.2f%% of values nonzero",
        bank.shape[0],
        bank.shape[1],
        stats.kept,
        100 * float((bank != 0).mean()),
    )
    return np.ascontiguousarray(bank, dtype=np.float32)
