"""Architecture registry: one module per model, hyperparameters as a dataclass.

A model module defines ``Hyperparameters`` (a dataclass; every field has a default and a one-line reason)
and ``Model`` (an ``nn.Module`` built as ``Model(n_genes, n_classes, hp)`` that maps a dense
float32 batch of normalised expression to logits, or to ``(logits, aux_loss)`` where ``aux_loss`` is a
scalar regulariser the training loop adds to the loss, CE and HCE alike (TabNet's mask sparsity). Register
it in ``REGISTRY`` below, or point a config entry at it with ``model: "package.module"`` (any importable
module with the same two names).

Besides hyperparameters an entry may hold ``training:``, overrides of ``training.batch_size``,
``max_epochs`` and ``patience`` for that architecture alone (``TRAINING_OVERRIDES``), and ``augment:
true`` to train it with scTab's augmentation bank (``hcebench.data.augmentation``). ``checkpoints:`` makes the entry
a set of the authors' trained checkpoints, imported instead of trained (``hcebench.training.imported``).

This subpackage also owns where a model runs (``device``: device choice, bf16 autocast, batched inference). It may
import root, ``hierarchy`` and ``data``; training and evaluation build on it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
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

#: The modules an entry with ``checkpoints:`` may build: the networks of scTab's checkpoints (hcebench.training.imported).
CHECKPOINT_MODULES = {f"hcebench.models.{n}": n for n in ("linear", "mlp", "tabnet")}
#: Config keys of an architecture entry that are not hyperparameters of the model.
NON_HPARAM_KEYS = {"model", "training", "augment", "losses", "checkpoints"}
#: Keys of ``training`` an architecture entry may override for itself.
TRAINING_OVERRIDES = ("batch_size", "max_epochs", "patience")


#: The entry-point group through which an installed package adds architectures (``<name> = "<package.module>"``
#: under ``[project.entry-points."hcebench.architectures"]`` of its pyproject.toml).
PLUGIN_GROUP = "hcebench.architectures"


def architecture_modules() -> dict[str, str]:
    """Every architecture a config may name, with its module: the built-ins (``REGISTRY``), then those installed
    packages add under ``PLUGIN_GROUP`` (a plugin does not replace a built-in of the same name)."""
    found = dict(REGISTRY)
    for point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        found.setdefault(point.name, point.value)
    return found


def model_module(name: str, entry: dict[str, Any] | None = None) -> ModuleType:
    """The module implementing architecture ``name``: the built-in or installed plugin of that name, or of the
    entry's ``model`` key (an entry may reuse one under another name). A config names architectures, never modules:
    a module path in a config (or in a model file's recorded entry) is not imported, so planning, a dry run
    included, runs no code but the suite's and what was installed."""
    key = (entry or {}).get("model") or name
    known = architecture_modules()
    if key not in known:
        where = f"architectures.{name}.model" if (entry or {}).get("model") else f"architectures.{name}"
        raise ConfigError(
            f"{where}: unknown architecture {key!r}. Known: {', '.join(sorted(known))}. To add your own, install "
            f"a package that lists its module under the entry-point group {PLUGIN_GROUP!r} (docs/recipes.md, Add an "
            "architecture); a module named in a config is never imported"
        )
    path = known[key]
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
        if entry.get("checkpoints") and model_module(name, entry).__name__ not in CHECKPOINT_MODULES:
            raise ConfigError(
                f"architectures.{name}.checkpoints: the authors' checkpoints are scTab's linear, MLP or TabNet "
                f"classifiers; set architectures.{name}.model to one of {sorted(CHECKPOINT_MODULES.values())}"
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
