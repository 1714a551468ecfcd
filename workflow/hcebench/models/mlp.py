"""Multi-layer perceptron with scTab's shape: n_layers × (Linear → BatchNorm → SiLU → Dropout), then a linear head."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Hyperparameters:
    lr: float = 2e-3  # scTab's MLP
    weight_decay: float = 0.05  # scTab's MLP
    n_layers: int = 8  # scTab: 8 hidden layers
    hidden: int = 128  # scTab: 128 units each; the first layer (genes × hidden) dominates the cost
    dropout: float = 0.1  # scTab


class Model(nn.Module):
    def __init__(self, n_genes: int, n_classes: int, hp: Hyperparameters):
        super().__init__()
        self.hp = hp
        layers: list[nn.Module] = []
        width = n_genes
        for _ in range(hp.n_layers):
            layers += [
                nn.Linear(width, hp.hidden),
                nn.BatchNorm1d(hp.hidden),
                nn.SiLU(),
                nn.Dropout(hp.dropout),
            ]
            width = hp.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.body(x))
