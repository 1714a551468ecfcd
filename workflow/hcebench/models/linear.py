"""Linear classifier: a single affine map from normalised expression to logits (scTab's baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Hyperparameters:
    lr: float = 5e-4  # scTab's linear baseline
    weight_decay: float = 0.01  # scTab's linear baseline


class Model(nn.Module):
    def __init__(self, n_genes: int, n_classes: int, hp: Hyperparameters):
        super().__init__()
        self.hp = hp
        self.fc = nn.Linear(n_genes, n_classes)

    def forward(self, x):
        return self.fc(x)
