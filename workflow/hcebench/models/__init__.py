"""Architecture registry: one module per model, hyperparameters as a dataclass.

A model module defines ``Hyperparameters`` (a dataclass; every field has a default and a one-line reason)
and ``Model`` (an ``nn.Module`` built as ``Model(n_genes, n_classes, hp)`` that maps a dense
float32 batch of normalised expression to logits, or to ``(logits, aux_loss)`` where ``aux_loss`` is a
scalar regulariser the training loop adds to the loss, CE and HCE alike (TabNet's mask sparsity). Register
it in ``REGISTRY`` below, or point a config entry at it with ``model: "package.module"`` (any importable
module with the same two names).

Besides hyperparameters an entry may hold ``training:``, overrides of ``training.batch_size``,
``max_epochs`` and ``patience`` for that architecture alone (``TRAINING_OVERRIDES``), and ``augment:
true`` to train it with scTab's augmentation bank (``hcebench.data.augmentation``).

This subpackage also owns where a model runs (``device``: device choice, bf16 autocast, batched inference). It may
import root, ``hierarchy`` and ``data``; training and evaluation build on it.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

from hcebench.axes import CONTROL_PREFIX, EXTERNAL_METHODS, LOSSES
from hcebench.config import check_field_types
from hcebench.errors import ConfigError

REGISTRY: dict[str, str] = {
    "linear": "hcebench.models.linear",
    "mlp": "hcebench.models.mlp",
    "tabnet": "hcebench.models.tabnet",
    "transformer": "hcebench.models.transformer",
}

#: Config keys of an architecture entry that are not hyperparameters of the model.
NON_HPARAM_KEYS = {"model", "training", "augment", "losses"}
#: Keys of ``training`` an architecture entry may override for itself.
TRAINING_OVERRIDES = ("batch_size", "max_epochs", "patience")


def model_module(name: str, entry: dict[str, Any] | None = None) -> ModuleType:
    """The module implementing architecture ``name`` (registry, or the entry's ``model`` key)."""
    path = (entry or {}).get("model") or REGISTRY.get(name)
    if path is None:
        raise ConfigError(
            f"architectures.{name}: unknown architecture. Known: {', '.join(sorted(REGISTRY))}; "
            f"or add `model: <importable module>` to the entry"
        )
    try:
        module = importlib.import_module(path)
    except ImportError as err:
        raise ConfigError(f"architectures.{name}.model: cannot import {path!r}: {err}") from err
    for attr in ("Hyperparameters", "Model"):
        if not hasattr(module, attr):
            raise ConfigError(f"architectures.{name}: module {path} defines no `{attr}`")
    return module


def hyperparameters(name: str, entry: dict[str, Any]) -> Any:
    """Build the architecture's Hyperparameters dataclass from its config entry."""
    module = model_module(name, entry)
    cls = module.Hyperparameters
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in entry.items() if k not in NON_HPARAM_KEYS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"architectures.{name}: unknown hyperparameter(s) {unknown}; {cls.__module__}.Hyperparameters "
            f"accepts {sorted(known)}"
        )
    check_field_types(cls, values, f"architectures.{name}")
    return cls(**values)


def check_hyperparameters(name: str, entry: dict[str, Any]) -> None:
    hyperparameters(name, entry)
    overrides = entry.get("training") or {}
    unknown = sorted(set(overrides) - set(TRAINING_OVERRIDES))
    if unknown:
        raise ConfigError(
            f"architectures.{name}.training: cannot override {unknown}; allowed: {list(TRAINING_OVERRIDES)}"
        )


def check_architectures(config: dict[str, Any]) -> None:
    """Check every ``architectures`` entry of a loaded config against its model's ``Hyperparameters``."""
    for name, entry in config["architectures"].items():
        check_hyperparameters(name, entry)
        unknown = sorted(set(entry.get("losses") or ()) - set(LOSSES))
        if unknown:
            raise ConfigError(
                f"architectures.{name}.losses: unknown loss(es) {unknown}; choose from {list(LOSSES)}"
            )
        if name in EXTERNAL_METHODS or name.startswith(CONTROL_PREFIX):
            raise ConfigError(
                f"architectures.{name}: the name is taken by an external method's results; rename the entry"
            )


def architecture_losses(config: dict[str, Any], name: str) -> list[str]:
    """The losses architecture ``name`` trains with: its entry's ``losses``, else ``training.losses``."""
    return list(config["architectures"][name].get("losses") or config["training"]["losses"])


def logits_and_aux(output: Any) -> tuple[Any, Any]:
    """Split a model's output into ``(logits, aux_loss)``; ``aux_loss`` is ``None`` for a plain logits tensor."""
    if isinstance(output, tuple):
        logits, aux = output
        return logits, aux
    return output, None


def build_model(name: str, entry: dict[str, Any], n_genes: int, n_classes: int):
    """Instantiate architecture ``name`` for ``n_genes`` inputs and ``n_classes`` outputs."""
    module = model_module(name, entry)
    return module.Model(n_genes, n_classes, hyperparameters(name, entry))
