"""scTab's augmentation bank, checked by hand on a tiny matrix."""

import numpy as np
import scipy.sparse as sp
import torch
from hcebench.augmentation import augment, build_bank, group_means


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


def test_augment_shifts_by_a_bank_vector_and_clamps():
    bank = torch.tensor([[0.0, -1.5, 0.5]])
    x = torch.tensor([[1.0, 1.0, 8.8], [0.0, 0.5, 0.0]])
    out = augment(x, bank, torch.Generator().manual_seed(0))
    for row, base in zip(out, x, strict=True):
        plus = torch.clamp(base + bank[0], 0, 9)
        minus = torch.clamp(base - bank[0], 0, 9)
        assert torch.allclose(row, plus) or torch.allclose(row, minus)
    assert out.min() >= 0 and out.max() <= 9
    assert torch.equal(augment(x, torch.zeros((0, 3))), x)
