"""TabNet (Arik & Pfister, 2021) with scTab's configuration, written compactly for thousands of genes.

Per decision step an attentive transformer turns the previous step's attention features into a sparse
mask over genes (1.5-entmax, scaled by a prior that discourages reusing a gene: ``prior ← prior · (γ − M)``);
a feature transformer (GLU blocks, the first ``n_shared`` shared by all steps, then ``n_independent`` of the
step's own) reads the masked expression and emits ``n_d`` decision features (summed over steps through a
ReLU) and ``n_a`` attention features for the next step. A linear head maps the decision sum to logits.

Why not pytorch-tabnet: its network multiplies every mask by a groups × features matrix (identity by
default), a 19,331² float matrix (1.5 GB) and ~0.8 TFLOP per 2,048-cell step at the paper's gene count.
Without feature groups that product is the identity, so this implementation leaves it out.

The forward pass returns ``(logits, aux_loss)``: ``aux_loss`` is ``λ_sparse`` times the masks' mean
entropy, TabNet's sparsity regulariser; the training loop adds it to CE and HCE alike.

Initialisation and biases are scTab's (``cellnet/tabnet/tab_network.py``, from pytorch-tabnet): every Linear is
bias-free and xavier-normal initialised, the GLU layers' (shared and independent; ``in`` → ``2·out``, the doubled
width counted) with gain √((fan_in + fan_out) / √fan_in), the attentive transformers' and the final mapping's
with gain √((fan_in + fan_out) / √(4·fan_in)). Weight std is then √2 · fan_in^(−1/4) and fan_in^(−1/4): set by the
input width alone. Ghost batch norm splits a training batch into ``batch // virtual_batch_size`` equal chunks, as
scTab's ``GBN`` does (``torch.chunk``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hcebench.models.entmax import entmax15


@dataclass
class Hyperparameters:
    lr: float = 5e-3  # scTab's TabNet
    weight_decay: float = 0.05  # scTab's TabNet
    n_d: int = 128  # width of the decision features (scTab)
    n_a: int = 64  # width of the attention features (scTab)
    n_steps: int = 1  # decision steps (scTab); each adds a mask and a feature transformer pass
    gamma: float = 1.3  # mask prior relaxation: > 1 lets a gene be reused across steps (scTab)
    n_independent: int = 5  # GLU blocks owned by each step (scTab)
    n_shared: int = 3  # GLU blocks shared by all steps (scTab)
    virtual_batch_size: int = 256  # ghost batch norm chunk (scTab)
    momentum: float = 0.02  # batch-norm running-statistics momentum (pytorch-tabnet's default)
    lambda_sparse: float = 1e-5  # weight of the mask-entropy regulariser (scTab)
    # Weight initialisation: "sctab", xavier-normal with TabNet's gains (scTab, the paper); "torch", PyTorch's
    # default. scTab's gains give weights ~in^(-1/4), ~16x torch's at 2,000 genes; Adam's steps do not scale with
    # the weights, so they learn that much slower: fine over scTab's 50 epochs, too slow for a 4-epoch demo.
    init: str = "sctab"


INIT_SCHEMES = ("sctab", "torch")


def init_glu(fc: nn.Linear, scheme: str = "sctab") -> nn.Linear:
    """scTab's GLU-layer initialisation: xavier-normal with gain √((fan_in + fan_out) / √fan_in); "torch": as built."""
    if scheme == "torch":
        return fc
    fan_in, fan_out = fc.in_features, fc.out_features
    nn.init.xavier_normal_(fc.weight, gain=math.sqrt((fan_in + fan_out) / math.sqrt(fan_in)))
    return fc


def init_non_glu(fc: nn.Linear, scheme: str = "sctab") -> nn.Linear:
    """scTab's initialisation of the other layers: xavier-normal with gain √((fan_in + fan_out) / √(4·fan_in))."""
    if scheme == "torch":
        return fc
    fan_in, fan_out = fc.in_features, fc.out_features
    nn.init.xavier_normal_(fc.weight, gain=math.sqrt((fan_in + fan_out) / math.sqrt(4 * fan_in)))
    return fc


class GhostBatchNorm(nn.Module):
    """Batch norm over ``batch // virtual_batch_size`` equal chunks in training (a regulariser), plain BN in eval."""

    def __init__(self, width: int, virtual_batch_size: int, momentum: float):
        super().__init__()
        self.virtual_batch_size = virtual_batch_size
        self.bn = nn.BatchNorm1d(width, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        n_chunks = x.shape[0] // self.virtual_batch_size
        if not self.training or n_chunks <= 1:
            return self.bn(x)
        # scTab's GBN: n_chunks chunks of ⌈batch / n_chunks⌉ cells, the last one smaller.
        chunks = x.chunk(n_chunks)
        if (
            chunks[-1].shape[0] < 2
        ):  # batch norm cannot normalise a single cell: fold it into the previous chunk
            chunks = (*chunks[:-2], torch.cat(chunks[-2:]))
        return torch.cat([self.bn(c) for c in chunks])


class GLUBlock(nn.Module):
    """``fc`` (to twice the output width) → ghost BN → gated linear unit."""

    def __init__(self, fc: nn.Linear, hp: Hyperparameters):
        super().__init__()
        self.fc = fc
        self.bn = GhostBatchNorm(fc.out_features, hp.virtual_batch_size, hp.momentum)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.glu(self.bn(self.fc(x)), dim=-1)


class FeatureTransformer(nn.Module):
    """Shared GLU blocks then the step's own; every block after the first adds a residual scaled by √½."""

    def __init__(self, n_genes: int, shared: nn.ModuleList, hp: Hyperparameters):
        super().__init__()
        width = hp.n_d + hp.n_a
        # The shared Linear layers are the same objects in every step; batch norms are per step.
        fcs = list(shared)
        for _ in range(hp.n_independent):
            fcs.append(init_glu(nn.Linear(width if fcs else n_genes, 2 * width, bias=False), hp.init))
        if not fcs:
            raise ValueError("architectures.<tabnet>: n_shared + n_independent must be at least 1")
        self.blocks = nn.ModuleList(GLUBlock(fc, hp) for fc in fcs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks[0](x)
        for block in self.blocks[1:]:
            x = (x + block(x)) * math.sqrt(0.5)
        return x


class AttentiveTransformer(nn.Module):
    """Attention features → a sparse mask over genes, scaled by the prior of earlier steps."""

    def __init__(self, n_genes: int, hp: Hyperparameters):
        super().__init__()
        self.fc = init_non_glu(nn.Linear(hp.n_a, n_genes, bias=False), hp.init)
        self.bn = GhostBatchNorm(n_genes, hp.virtual_batch_size, hp.momentum)

    def forward(self, a: Tensor, prior: Tensor) -> Tensor:
        return entmax15(self.bn(self.fc(a)) * prior, dim=-1)


class Model(nn.Module):
    def __init__(self, n_genes: int, n_classes: int, hp: Hyperparameters):
        super().__init__()
        if hp.init not in INIT_SCHEMES:
            raise ValueError(
                f"architectures.<tabnet>.init is {hp.init!r}; choose one of {list(INIT_SCHEMES)}"
            )
        self.hp = hp
        width = hp.n_d + hp.n_a
        self.input_bn = nn.BatchNorm1d(n_genes, momentum=0.01)
        shared = nn.ModuleList(
            init_glu(nn.Linear(n_genes if i == 0 else width, 2 * width, bias=False), hp.init)
            for i in range(hp.n_shared)
        )
        # Step 0 only produces the first attention features; steps 1..n_steps each apply a mask.
        self.transformers = nn.ModuleList(
            FeatureTransformer(n_genes, shared, hp) for _ in range(hp.n_steps + 1)
        )
        self.attention = nn.ModuleList(AttentiveTransformer(n_genes, hp) for _ in range(hp.n_steps))
        self.head = init_non_glu(
            nn.Linear(hp.n_d, n_classes, bias=False), hp.init
        )  # scTab's final mapping: no bias

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hp = self.hp
        x = self.input_bn(x)
        a = self.transformers[0](x)[:, hp.n_d :]
        prior = torch.ones_like(x)
        decision = x.new_zeros(x.shape[0], hp.n_d)
        entropy = x.new_zeros(())
        for attention, transformer in zip(self.attention, self.transformers[1:], strict=True):
            mask = attention(a, prior)
            entropy = entropy + (-mask * torch.log(mask + 1e-15)).sum(dim=-1).mean()
            prior = prior * (hp.gamma - mask)
            out = transformer(mask * x)
            decision = decision + torch.relu(out[:, : hp.n_d])
            a = out[:, hp.n_d :]
        aux = hp.lambda_sparse * entropy / max(hp.n_steps, 1)
        return self.head(decision), aux
