"""The authors' checkpoints as models: scTab / hce-classification Lightning checkpoints read into hcebench's networks.

The paper's trained models are PyTorch Lightning checkpoints of scTab's ``cellnet`` classifiers (``LinearClassifier``,
``MLPClassifier``, ``TabnetClassifier``; hce-classification trains the same classes with its HCE loss). A checkpoint
is a dict with ``state_dict`` (the network under the prefix ``classifier.``, plus buffers such as ``class_weights``
and ``child_lookup``) and ``hyper_parameters`` (``gene_dim``, ``type_dim``, ``use_hierarchical_loss`` and the
network's own: ``hidden_size``, ``n_hidden``, ``dropout``; ``n_d``, ``n_a``, ``n_steps``, ``gamma``,
``n_independent``, ``n_shared``, ``virtual_batch_size``, ``momentum``, ``mask_type``, ...).

``import_checkpoint`` reads one safely (``read_lightning_checkpoint``: ``torch.load(weights_only=True)``, tensors
and plain containers only; the optimiser and scheduler classes Lightning records among the hyperparameters are
read as inert placeholders, never imported; any other object is refused), checks its shapes against the run's
genes and labels, renames its weights onto hcebench's network (``map_state_dict``) and writes a ``model.pt`` that
``evaluate`` scores like a trained one. The mapping is a renaming only: the same tensors, so the logits are the
reference network's (tests/test_training_imported.py checks them bit for bit).

What the checkpoint cannot tell, the run must match: the gene order (scTab's gene list in its order: import scTab's store,
``training_store.source: sctab``, or build the store from scTab's gene list in the Census's order) and the label
order (scTab's categorical, ``filters.label_order: sctab``; an imported scTab store keeps it). The checkpoint's
``child_lookup`` buffer (scTab's child matrix in its label order) is compared with the run's ``R`` and the
disagreements are counted in ``train.json``: many of them mean another label order.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from hcebench.axes import BASELINE_LOSS, PAPER_LOSS
from hcebench.errors import CheckpointError
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path, write_json
from hcebench.models import build_model, hyperparameters, model_module
from hcebench.training.checkpoints import save_model

log = logging.getLogger(__name__)

#: The architectures a reference checkpoint can be (scTab's cellnet classifiers), by hcebench module.
REFERENCE_ARCHITECTURES = ("linear", "mlp", "tabnet")
#: Prefix of the network's weights in a Lightning checkpoint of scTab's classifiers.
PREFIX = "classifier."
#: Objects Lightning records among a classifier's hyperparameters (the optimiser and scheduler classes, its dict
#: type): read as inert placeholders, never imported. Anything else in a checkpoint is refused.
INERT_GLOBALS = (
    "torch.optim.adamw.AdamW",
    "torch.optim.adam.Adam",
    "torch.optim.sgd.SGD",
    "torch.optim.lr_scheduler.StepLR",
    "torch.optim.lr_scheduler.ExponentialLR",
    "torch.optim.lr_scheduler.CosineAnnealingLR",
    "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "lightning.fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)
#: The columns of a training history (``hcebench.training.loop``), written empty for an imported model.
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_macro_f1", "val_macro_f1_flat", "seconds")
#: The loss each value of scTab's ``use_hierarchical_loss`` hyperparameter means.
LOSS_OF_FLAG = {False: BASELINE_LOSS, True: PAPER_LOSS}


class Referenced:
    """What a class named in a checkpoint's hyperparameters is read as: a placeholder, never the class itself."""

    def __init__(self, *args, **kwargs):
        pass


def _placeholder(name: str):
    """The stand-in of global ``name``: ``dict`` for Lightning's AttributeDict (its items are plain), else a
    ``Referenced`` subclass carrying the name."""
    if name.endswith("AttributeDict"):
        return dict
    return type(name.rsplit(".", 1)[-1], (Referenced,), {"qualified_name": name})


def read_lightning_checkpoint(path: str | os.PathLike) -> dict:
    """A Lightning checkpoint, read without running code: ``CheckpointError`` for a file that names any object
    beyond tensors, plain containers and ``INERT_GLOBALS``, for a damaged file, or for one without a state_dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: check architectures.<name>.checkpoints")
    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - any failure to read the container is a damaged file
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch file ({err}); download it again"
        ) from None
    foreign = sorted(set(named) - set(INERT_GLOBALS))
    if foreign:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds Python objects {foreign[:5]} that only a full unpickle could "
            "rebuild, and unpickling can run code. A scTab / hce-classification checkpoint holds tensors, plain "
            "hyperparameters and at most the optimiser's and scheduler's classes: get the file from the authors' "
            "release again"
        )
    try:
        with torch.serialization.safe_globals([(_placeholder(n), n) for n in named]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - weights_only refusals and truncated files alike
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} could not be read safely ({reason}); download it again"
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise CheckpointError(
            f"checkpoint {path} has no state_dict: it is not a PyTorch Lightning checkpoint of scTab's classifiers"
        )
    return content


def reference_architecture(state_dict: dict, path) -> str:
    """Which scTab classifier a state dict is: ``linear``, ``mlp`` or ``tabnet`` (by its key names)."""
    if f"{PREFIX}final_mapping.weight" in state_dict:
        return "tabnet"
    if f"{PREFIX}linear.weight" in state_dict and f"{PREFIX}encoder.0.weight" in state_dict:
        return "mlp"
    if f"{PREFIX}weight" in state_dict:
        return "linear"
    shown = sorted(state_dict)[:6]
    raise CheckpointError(
        f"checkpoint {path}: its state_dict (keys {shown} ...) is none of scTab's classifiers (linear: "
        f"{PREFIX}weight; MLP: {PREFIX}encoder.*, {PREFIX}linear.*; TabNet: {PREFIX}final_mapping.weight)"
    )


def _network(state_dict: dict) -> dict[str, torch.Tensor]:
    """The network's own tensors, without the prefix (the classifier's buffers, e.g. child_lookup, dropped)."""
    return {k[len(PREFIX) :]: v for k, v in state_dict.items() if k.startswith(PREFIX)}


def _take(source: dict, key: str, path) -> torch.Tensor:
    if key not in source:
        raise CheckpointError(f"checkpoint {path}: the state_dict lacks {PREFIX}{key}")
    return source[key]


def mlp_entry(net: dict, hparams: dict) -> dict:
    """hcebench MLP hyperparameters of scTab's MLP: the layer count and width read off the weights (``encoder.<4 i>``
    is hidden layer i), dropout from the hyperparameters (inactive in evaluation anyway)."""
    layers = sorted(
        int(m.group(1)) for k in net if (m := re.fullmatch(r"encoder\.(\d+)\.weight", k)) and net[k].ndim == 2
    )
    return {
        "n_layers": len(layers),
        "hidden": int(net["linear.weight"].shape[1]),
        "dropout": float(hparams.get("dropout", 0.1)),
    }


def tabnet_entry(net: dict, hparams: dict, path) -> dict:
    """hcebench TabNet hyperparameters of scTab's TabNet: widths and block counts read off the weights, γ, the ghost
    batch size and momentum from the hyperparameters (γ changes the mask prior, so it must be recorded)."""
    mask = hparams.get("mask_type", "entmax")
    if mask != "entmax":
        raise CheckpointError(
            f"checkpoint {path}: TabNet with mask_type {mask!r}; hcebench's TabNet implements scTab's entmax masks only"
        )
    if "gamma" not in hparams:
        raise CheckpointError(
            f"checkpoint {path}: TabNet hyperparameters lack gamma (the mask prior's relaxation)"
        )
    n_steps = len({k.split(".")[2] for k in net if k.startswith("encoder.att_transformers.")})
    width = int(net["encoder.initial_splitter.specifics.glu_layers.0.fc.weight"].shape[0]) // 2
    n_d = int(net["final_mapping.weight"].shape[1])

    def count(block: str) -> int:
        return len(
            {k.split(".")[4] for k in net if k.startswith(f"encoder.initial_splitter.{block}.glu_layers.")}
        )

    return {
        "n_d": n_d,
        "n_a": width - n_d,
        "n_steps": n_steps,
        "gamma": float(hparams["gamma"]),
        "n_independent": count("specifics"),
        "n_shared": count("shared"),
        "virtual_batch_size": int(hparams.get("virtual_batch_size", 256)),
        "momentum": float(hparams.get("momentum", 0.02)),
        "lambda_sparse": float(hparams.get("lambda_sparse", 1e-5)),
    }


def map_state_dict(kind: str, net: dict, hp, path) -> dict[str, torch.Tensor]:
    """scTab's network weights (``net``, unprefixed) under hcebench's key names for architecture ``kind``."""
    out: dict[str, torch.Tensor] = {}
    if kind == "linear":
        out["fc.weight"], out["fc.bias"] = _take(net, "weight", path), _take(net, "bias", path)
    elif kind == "mlp":
        # Both are n × (Linear, BatchNorm1d, SiLU, Dropout) in one Sequential, then a Linear head.
        for key, value in net.items():
            if key.startswith("encoder."):
                out["body." + key[len("encoder.") :]] = value
            elif key.startswith("linear."):
                out["head." + key[len("linear.") :]] = value
    elif kind == "tabnet":
        bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        for name in bn:
            out[f"input_bn.{name}"] = _take(net, f"encoder.initial_bn.{name}", path)
        splitters = ["encoder.initial_splitter"] + [
            f"encoder.feat_transformers.{s}" for s in range(hp.n_steps)
        ]
        for t, prefix in enumerate(splitters):
            blocks = [f"{prefix}.shared.glu_layers.{i}" for i in range(hp.n_shared)]
            blocks += [f"{prefix}.specifics.glu_layers.{j}" for j in range(hp.n_independent)]
            for b, block in enumerate(blocks):
                out[f"transformers.{t}.blocks.{b}.fc.weight"] = _take(net, f"{block}.fc.weight", path)
                for name in bn:
                    out[f"transformers.{t}.blocks.{b}.bn.bn.{name}"] = _take(
                        net, f"{block}.bn.bn.{name}", path
                    )
        for s in range(hp.n_steps):
            prefix = f"encoder.att_transformers.{s}"
            out[f"attention.{s}.fc.weight"] = _take(net, f"{prefix}.fc.weight", path)
            for name in bn:
                out[f"attention.{s}.bn.bn.{name}"] = _take(net, f"{prefix}.bn.bn.{name}", path)
        out["head.weight"] = _take(net, "final_mapping.weight", path)
    else:
        raise CheckpointError(f"checkpoint {path}: no mapping for architecture {kind!r}")
    return out


def import_checkpoint(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    architecture: str,
    entry: dict,
    loss: str,
    seed: int,
    hierarchy: LabelHierarchy,
    genes: list[str],
) -> dict:
    """Read the Lightning checkpoint at ``path`` and write ``model.pt``, an empty ``history.tsv`` and ``train.json``
    into ``out_dir``, as training would: the model ``architecture`` (its entry ``entry`` names the network with
    ``model:`` or by its own name) for the run's ``genes`` and labels (``hierarchy``), recorded as ``loss`` /
    ``seed``. Every mismatch is a ``CheckpointError`` naming the file and the fix; nothing is written then."""
    path, out_dir = Path(path), Path(out_dir)
    content = read_lightning_checkpoint(path)
    state_dict, hparams = content["state_dict"], dict(content.get("hyper_parameters") or {})
    kind = reference_architecture(state_dict, path)
    module = model_module(architecture, entry).__name__
    if module != f"hcebench.models.{kind}":
        raise CheckpointError(
            f"checkpoint {path} holds scTab's {kind} classifier but architectures.{architecture} builds {module}; set "
            f"its model: {kind}"
        )
    net = _network(state_dict)
    problems = []
    n_genes = int(
        net[
            "weight"
            if kind == "linear"
            else "encoder.0.weight"
            if kind == "mlp"
            else "encoder.initial_bn.weight"
        ].shape[-1]
    )
    out_key = {"linear": "weight", "mlp": "linear.weight", "tabnet": "final_mapping.weight"}[kind]
    n_labels = int(net[out_key].shape[0])
    if n_genes != len(genes):
        problems.append(f"it reads {n_genes} genes, the run's store has {len(genes)}")
    if n_labels != hierarchy.k:
        problems.append(f"it predicts {n_labels} labels, the run has {hierarchy.k}")
    for key, have in (("gene_dim", n_genes), ("type_dim", n_labels)):
        if key in hparams and int(hparams[key]) != have:
            problems.append(f"its hyper_parameters say {key} {hparams[key]} but its weights have {have}")
    flag = hparams.get("use_hierarchical_loss")
    if flag is not None and LOSS_OF_FLAG.get(bool(flag)) != loss:
        problems.append(
            f"it was trained with use_hierarchical_loss={flag} ({LOSS_OF_FLAG[bool(flag)]}), not {loss}"
        )
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit run {architecture}/{loss}/seed{seed}: {'; '.join(problems)}. The store "
            "must hold scTab's genes in scTab's order (training_store.source: sctab) and the labels scTab's 164 in "
            "its order (filters.label_order: sctab); put each checkpoint where architectures.<name>.checkpoints "
            "names its loss and seed"
        )
    values = {k: v for k, v in entry.items() if k != "checkpoints"}
    if kind == "mlp":
        values.update(mlp_entry(net, hparams))
    elif kind == "tabnet":
        values.update(tabnet_entry(net, hparams, path))
    hp = hyperparameters(architecture, values)
    weights = map_state_dict(kind, net, hp, path)
    model = build_model(architecture, values, len(genes), hierarchy.k)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape)
    )
    if missing or extra or wrong:
        raise CheckpointError(
            f"checkpoint {path}: its {kind} weights do not fit hcebench's network (missing {missing[:4]}, unexpected "
            f"{extra[:4]}, other shapes {wrong[:4]}); is it a checkpoint of scTab's cellnet classifiers?"
        )
    model.load_state_dict(weights)  # checks the whole set once more, by torch's rules
    child = state_dict.get("child_lookup")
    disagree = None
    if isinstance(child, torch.Tensor) and tuple(child.shape) == (hierarchy.k, hierarchy.k):
        sctab = child.numpy().astype(bool) | np.eye(hierarchy.k, dtype=bool)
        disagree = int((sctab != hierarchy.reachability.astype(bool)).sum())
        if disagree:
            log.warning(
                "checkpoint %s: its child matrix and the run's R differ at %d of %d pairs (a different label order "
                "gives hundreds; a different CL release a few)",
                path,
                disagree,
                hierarchy.k**2,
            )
    settings = {
        "loss": loss,
        "seed": int(seed),
        # The reference checkpoints hold float32 weights; predict in plain float32.
        "bf16": False,
        "float32_matmul_precision": "highest",
        "imported_from": str(path),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(
        out_dir / "model.pt",
        weights={k: v.detach().clone() for k, v in model.state_dict().items()},
        architecture=architecture,
        entry=values,
        hierarchy=hierarchy,
        genes=list(genes),
        settings=settings,
        best_epoch=int(content.get("epoch", -1)),
    )
    with atomic_path(out_dir / "history.tsv") as tmp:  # no epoch was run here: the header alone
        tmp.write_text("\t".join(HISTORY_COLUMNS) + "\n")
    summary = {
        "architecture": architecture,
        "loss": loss,
        "seed": int(seed),
        "imported_from": str(path),
        "reference_architecture": kind,
        "best_epoch": int(content.get("epoch", -1)),
        "epochs_run": 0,
        "hyperparameters": asdict(hp),
        "child_matrix_vs_R_disagreements": disagree,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    write_json(out_dir / "train.json", summary)
    return summary
