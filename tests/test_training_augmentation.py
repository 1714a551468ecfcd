"""hcebench.training.augmentation: one bank vector added or subtracted per cell, clamped."""

import torch
from hcebench.training.augmentation import augment


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
