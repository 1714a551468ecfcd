"""hcebench.data.augmentation: scTab's augmentation bank, by hand and from a store read in chunks."""

import numpy as np
import scipy.sparse as sp
from hcebench.data.augmentation import build_bank, group_means


def test_group_means_by_hand():
    x = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], dtype=np.float32))
    means, sizes = group_means(x, np.array([0, 0, 1]))
    np.testing.assert_allclose(means, [[2.0, 1.0], [5.0, 5.0]])
    assert sizes.tolist() == [2, 1]


def test_bank_differences_are_thresholded_and_clipped():
    # Type "a" in tech_samples s1 (mean [1, 1, 1]) and s2 (mean [1.2, 3, 0.5]); type "b" in one sample only.
    rows = [[1, 1, 1]] * 2 + [[1.2, 3, 0.5]] * 2 + [[7, 7, 7]] * 2
    x = sp.csr_matrix(np.array(rows, dtype=np.float32))
    labels = np.array(["a", "a", "a", "a", "b", "b"])
    tech = np.array(["s1", "s1", "s2", "s2", "s1", "s1"])
    bank = build_bank(x, labels, tech, min_cells=2)
    # Δ = s1 − s2 = [−0.2, −2, 0.5]: −0.2 is below the 0.25 threshold, −2 is clipped to −1.5.
    np.testing.assert_allclose(bank, [[0.0, -1.5, 0.5]], atol=1e-6)
    assert build_bank(x, labels, tech, min_cells=3).shape == (0, 3)  # groups too small


def test_bank_from_a_store_split_read_in_chunks_equals_the_in_memory_bank(tmp_path):
    import pandas as pd
    from hcebench.data.store import SplitData, SplitWriter

    rng = np.random.default_rng(4)
    n, genes = 120, 11
    dense = np.where(rng.random((n, genes)) < 0.5, 0, rng.gamma(2.0, 1.0, (n, genes))).astype(np.float32)
    labels = rng.choice(["a", "b", "c"], n)
    tech = rng.choice(["s1", "s2", "s3", "s4"], n)
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
    kwargs = dict(min_cells=3, min_abs=0.1, max_pairs_per_type=2, seed=1)
    from_store = build_bank(split, labels, tech, **kwargs)
    in_memory = build_bank(sp.csr_matrix(dense), labels, tech, **kwargs)
    assert from_store.shape == (6, genes)  # 3 types × at most 2 pairs each
    np.testing.assert_allclose(from_store, in_memory, atol=1e-6)
