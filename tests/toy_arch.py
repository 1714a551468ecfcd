"""A toy architecture that lives outside the package, added as a plugin: an installed distribution that lists this
module under the entry-point group ``hcebench.architectures`` (``plugins.install_toy_plugin`` makes one for the
tests), after which a config names it like a built-in:

architectures:
  toy:
    lr: 0.01
    weight_decay: 0.0
"""

from dataclasses import dataclass

from torch import nn


@dataclass
class Hyperparameters:
    lr: float = 0.01  # fast to train on the tiny census
    weight_decay: float = 0.0  # nothing to regularise in two small layers
    width: int = 8  # a bottleneck, so it is not the linear model under another name


class Model(nn.Module):
    def __init__(self, n_genes: int, n_classes: int, hp: Hyperparameters):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_genes, hp.width), nn.ReLU(), nn.Linear(hp.width, n_classes))

    def forward(self, x):
        return self.net(x)
