"""hcebench.data.augmentation: scTab's augmentation bank, step by step by hand, and from a store read in chunks."""

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hcebench.data.augmentation import (
    build_bank,
    draw_pairs,
    group_means,
    select_by_cluster,
    subsample,
    threshold,
)
from hcebench.data.store import SplitData, SplitWriter
from hcebench.errors import ConfigError
from hcebench.settings import BankSettings

#: scTab's bank settings (the schema's defaults for augmentation:).
SCTAB_BANK = BankSettings(
    subsample_cells=500_000,
    max_pairs_per_type=300,
    min_abs=0.25,
    clip=1.5,
    n_clusters=50,
    min_cluster_size=2000,
    n_vectors=5000,
    seed=1,
)


def bank_settings(**changes) -> BankSettings:
    return dataclasses.replace(SCTAB_BANK, **changes)


def test_group_means_by_hand():
    x = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], dtype=np.float32))
    means, sizes = group_means(x, np.array([0, 0, 1]))
    np.testing.assert_allclose(means, [[2.0, 1.0], [5.0, 5.0]])
    assert sizes.tolist() == [2, 1]


def test_subsample_draws_a_cell_with_probability_inverse_to_its_type_size():
    # Three cells of A, one of B: P(B's cell) = 1 / (3 · 1/3 + 1) = 1/2, each A cell 1/6.
    labels = np.array(["A", "A", "A", "B"])
    rng = np.random.default_rng(0)
    freq = np.bincount([subsample(labels, 1, rng)[0] for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(freq, [1 / 6, 1 / 6, 1 / 6, 1 / 2], atol=0.03)


def test_subsample_balances_types_without_replacement():
    labels = np.random.default_rng(1).permutation(np.array(["A"] * 9000 + ["B"] * 900 + ["C"] * 90))
    counts = np.zeros(3)
    for seed in range(40):
        rows = subsample(labels, 60, np.random.default_rng(seed))
        assert len(np.unique(rows)) == 60 and np.all(np.diff(rows) > 0)  # distinct, sorted
        counts += [(labels[rows] == t).sum() for t in "ABC"]
    # Uniform sampling would give 54 / 5.4 / 0.5 per draw; ∝ 1 / type size gives ~20 each.
    np.testing.assert_allclose(counts / 40, [20, 20, 20], atol=2.5)
    # Asking for at least every cell returns every cell.
    assert subsample(labels[:50], 500, np.random.default_rng(0)).tolist() == list(range(50))


def test_draw_pairs_follows_sctab_count():
    rng = np.random.default_rng(0)
    # scTab draws min(n(n-1)/2 - 1, max) pairs: none for one or two tech_samples.
    assert draw_pairs(1, 300, rng).shape == (0, 2) and draw_pairs(2, 300, rng).shape == (0, 2)
    three = draw_pairs(3, 300, rng)
    assert len(three) == 2 and {tuple(p) for p in three} < {(0, 1), (0, 2), (1, 2)}
    assert len(draw_pairs(25, 300, rng)) == 299  # 300 pairs exist, one fewer is drawn
    thirty = draw_pairs(30, 300, rng)
    assert len(thirty) == 300 and len({tuple(p) for p in thirty}) == 300
    assert (thirty[:, 0] < thirty[:, 1]).all() and thirty.min() >= 0 and thirty.max() < 30


def test_threshold_zeroes_small_differences_then_clips():
    v = np.array([[-0.2, -2.0, 0.5, 0.25, -0.25, 1.6]], np.float32)
    np.testing.assert_array_equal(threshold(v, 0.25, 1.5), [[0.0, -1.5, 0.5, 0.0, 0.0, 1.5]])


def test_bank_by_hand():
    # Type "a" in tech_samples s1, s2, s3 (means m1, m2, m3): 3 pairs, scTab draws 2 of them. Type "b" in two
    # tech_samples gives none.
    m = {"s1": [1.0, 1.0, 1.0], "s2": [1.2, 3.0, 0.5], "s3": [0.0, 1.0, 3.0]}
    rows = [m["s1"]] * 2 + [m["s2"]] * 3 + [m["s3"]] * 2 + [[7, 7, 7]] * 2 + [[0, 0, 0]] * 2
    x = sp.csr_matrix(np.array(rows, dtype=np.float32))
    labels = np.array(["a"] * 7 + ["b"] * 4)
    tech = np.array(["s1", "s1", "s2", "s2", "s2", "s3", "s3", "s1", "s1", "s2", "s2"])
    settings = bank_settings(subsample_cells=100, n_clusters=1, min_cluster_size=0, n_vectors=10)
    bank = build_bank(x, labels, tech, settings)
    # Δ(s1, s2) = [−0.2, −2, 0.5] → [0, −1.5, 0.5]; Δ(s1, s3) = [1, 0, −2] → [1, 0, −1.5];
    # Δ(s2, s3) = [1.2, 2, −2.5] → [1.2, 1.5, −1.5].
    possible = {(0.0, -1.5, 0.5), (1.0, 0.0, -1.5), (1.2, 1.5, -1.5)}
    got = {tuple(np.round(row, 5).tolist()) for row in bank}
    assert bank.shape == (2, 3) and bank.dtype == np.float32 and len(got) == 2 and got < possible
    np.testing.assert_array_equal(bank, build_bank(x, labels, tech, settings))  # seeded: reproducible
    with pytest.raises(ConfigError, match="subsample_cells"):  # no type in three tech_samples
        build_bank(x[7:], labels[7:], tech[7:], settings)


def _blobs(sizes, centres, seed=0):
    rng = np.random.default_rng(seed)
    parts = [c + 0.01 * rng.standard_normal((n, len(c))) for n, c in zip(sizes, centres, strict=True)]
    blob = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(blob))
    return np.concatenate(parts).astype(np.float32)[order], blob[order]


def test_cluster_filter_keeps_only_clusters_above_the_threshold():
    # Three far-apart blobs of 60, 40 and 7 vectors: k-means with 3 clusters must find exactly them.
    vectors, blob = _blobs([60, 40, 7], [[0, 0, 0, 0], [5, 0, 0, 0], [0, 0, 5, 5]])
    bank, stats = select_by_cluster(vectors, 3, 10, 30, seed=1)
    assert (stats.before, stats.kept, stats.drawn, stats.clusters_kept) == (107, 100, 30, 2)
    assert stats.cluster_sizes == [60, 40, 7]
    # 30 distinct vectors, none from the small blob.
    index = {v.tobytes(): i for i, v in enumerate(vectors)}
    picked = np.array([index[v.tobytes()] for v in bank])
    assert len(set(picked)) == 30 and (blob[picked] != 2).all()
    # Fewer kept than asked for: all of them, in their order.
    everything, stats = select_by_cluster(vectors, 3, 10, 500, seed=1)
    np.testing.assert_array_equal(everything, vectors[blob != 2])
    assert stats.drawn == 100
    # "More than": a cluster of exactly min_cluster_size is dropped.
    only_big, _ = select_by_cluster(vectors, 3, 40, 500, seed=1)
    np.testing.assert_array_equal(only_big, vectors[blob == 0])
    with pytest.raises(ConfigError, match="min_cluster_size"):
        select_by_cluster(vectors, 3, 60, 500, seed=1)
    with pytest.raises(ConfigError, match="n_clusters"):
        select_by_cluster(vectors[:2], 3, 0, 5, seed=1)


def test_bank_logs_its_statistics(caplog):
    rng = np.random.default_rng(2)
    n, genes = 300, 8
    x = sp.csr_matrix(rng.gamma(2.0, 1.0, (n, genes)).astype(np.float32))
    labels = rng.choice(["a", "b"], n)
    tech = rng.choice([f"s{i}" for i in range(6)], n)
    with caplog.at_level(logging.INFO, logger="hcebench.data.augmentation"):
        bank = build_bank(
            x,
            labels,
            tech,
            bank_settings(subsample_cells=200, n_clusters=2, min_cluster_size=0, n_vectors=20),
        )
    text = caplog.text
    assert "subsample: 200 of 300" in text and "28 pairs from 2 types" in text  # 2 × (15 − 1)
    assert "of 28 vectors" in text and f"bank: {len(bank)} vectors" in text and "nonzero" in text


def test_bank_from_a_store_split_reads_only_the_subsample_and_equals_the_in_memory_bank(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(4)
    n, genes = 400, 11
    dense = np.where(rng.random((n, genes)) < 0.5, 0, rng.gamma(2.0, 1.0, (n, genes))).astype(np.float32)
    labels = rng.choice(["a", "b", "c"], n, p=[0.7, 0.2, 0.1])
    tech = rng.choice(["s1", "s2", "s3", "s4", "s5"], n)
    writer = SplitWriter(tmp_path / "s", genes)
    for start in range(0, n, 50):
        writer.append(
            sp.csr_matrix(dense[start : start + 50]),
            pd.DataFrame({"label": labels[start : start + 50], "tech_sample": tech[start : start + 50]}),
        )
    writer.close()
    split = SplitData.open(tmp_path / "s", genes)
    codes = pd.factorize(pd.Series(labels) + "/" + pd.Series(tech))[0]
    codes[::7] = -1  # rows outside every group are skipped
    chunked, sizes = group_means(split, codes, chunk_rows=13)
    whole, whole_sizes = group_means(sp.csr_matrix(dense), codes)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    assert sizes.tolist() == whole_sizes.tolist() and sizes.sum() == n - len(codes[::7])

    read = []
    real = SplitData.sparse_rows
    monkeypatch.setattr(
        SplitData, "sparse_rows", lambda self, rows, *a, **k: read.append(rows) or real(self, rows)
    )
    settings = bank_settings(
        subsample_cells=120,
        max_pairs_per_type=4,
        min_abs=0.1,
        n_clusters=2,
        min_cluster_size=0,
        n_vectors=100,
    )
    from_store = build_bank(split, labels, tech, settings)
    in_memory = build_bank(sp.csr_matrix(dense), labels, tech, settings)
    assert from_store.shape == (12, genes)  # 3 types × min(5·4/2 − 1, 4) pairs
    np.testing.assert_allclose(from_store, in_memory, atol=1e-6)
    # Only subsampled rows are read: the subsample's 120 rows at most, none twice.
    rows = np.concatenate(read)
    assert len(rows) <= 120 and len(np.unique(rows)) == len(rows)
    assert set(rows) <= set(subsample(labels, 120, np.random.default_rng(1)).tolist())
