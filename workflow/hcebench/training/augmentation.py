"""scTab's augmentation applied to a training minibatch on its device (the bank is ``hcebench.data.augmentation``).

Each cell gets one random bank vector added or subtracted (sign ±1 with probability ½) and the result is clamped
to [0, 9], the range of log1p-normalised values. The draws come from their own generator, saved in the
checkpoint, so an interrupted augmented run resumes bit for bit.
"""

from __future__ import annotations

import torch


def augment(x: torch.Tensor, bank: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add or subtract one random bank vector per cell, clamped to [0, 9]; ``x`` unchanged if the bank is empty."""
    if bank.shape[0] == 0:
        return x
    pick = torch.randint(0, bank.shape[0], (x.shape[0],), generator=generator, device="cpu").to(bank.device)
    sign = torch.randint(0, 2, (x.shape[0], 1), generator=generator, device="cpu").to(x.device) * 2.0 - 1.0
    return torch.clamp(x + sign.to(x.dtype) * bank[pick].to(x.dtype), 0.0, 9.0)
