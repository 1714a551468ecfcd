"""The loss registry: CE, HCE and the hierarchy-aware family, each an axis of the grid like an architecture.

A loss module (one per loss; ``ce`` and ``hce`` keep the paper's definitions untouched) defines

- ``Hyperparameters``: a dataclass, every field a default and a one-line reason (a field with
  ``metadata={"set_by": "<config key>"}`` is set from that key, not from the ``losses:`` block: HCE's form is
  ``training.hce_form``);
- ``build(reachability, class_weights, hp)``: an ``nn.Module`` whose ``forward(logits, target)`` returns the
  class-weighted mean, in float32 whatever the autocast (``hcebench.training.losses.shared``), after
  precomputing once whatever it needs from the hierarchy (a target matrix, distances);
- ``FORMULA`` and ``REFERENCE``: one line each, what docs/losses.md tabulates.

Register it in ``REGISTRY`` and list it in ``hcebench.axes.LOSSES`` (the config's choices and the
``{loss}`` wildcard; a test keeps the two equal). ``make_loss`` builds any of them; the training loop calls it for
the training loss (class-weighted) and for the validation loss (unweighted, on hierarchy-corrected targets), so a
registered loss needs nothing else. Hyperparameters come from the config's ``losses: {<name>: {...}}`` block
(``loss_settings``).

This subpackage of ``hcebench.training`` may import root modules and ``hcebench.hierarchy`` (the Hasse diagram).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

import numpy as np
from torch import Tensor, nn

from hcebench.axes import LOSSES
from hcebench.errors import ConfigError
from hcebench.training.losses.ce import CrossEntropyLoss, cross_entropy
from hcebench.training.losses.hce import (
    HCE_FORMS,
    PAPER_EPS,
    HierarchicalCrossEntropyLoss,
    hce_paper,
    hce_stable,
)
from hcebench.training.losses.shared import hierarchy_corrected_targets

__all__ = [
    "HCE_FORMS",
    "PAPER_EPS",
    "REGISTRY",
    "CrossEntropyLoss",
    "HierarchicalCrossEntropyLoss",
    "check_loss_settings",
    "configurable_fields",
    "cross_entropy",
    "hce_paper",
    "hce_stable",
    "hierarchy_corrected_targets",
    "loss_hyperparameters",
    "loss_module",
    "loss_settings",
    "make_loss",
]

REGISTRY: dict[str, str] = {
    "ce": "hcebench.training.losses.ce",
    "hce": "hcebench.training.losses.hce",
    "soft_labels": "hcebench.training.losses.soft_labels",
    "hxe": "hcebench.training.losses.hxe",
    "hace": "hcebench.training.losses.hace",
}


def loss_module(name: str) -> ModuleType:
    """The module implementing loss ``name``; an unknown name raises ``ConfigError`` naming the choices."""
    if name not in REGISTRY:
        raise ConfigError(
            f"training.losses: unknown loss {name!r}; choose from {list(LOSSES)} (hcebench.axes.LOSSES, "
            "the names of hcebench.training.losses.REGISTRY)"
        )
    return importlib.import_module(REGISTRY[name])


def configurable_fields(name: str) -> dict[str, dataclasses.Field]:
    """The hyperparameters of loss ``name`` that its ``losses:`` entry may set (those not set by another key)."""
    fields = dataclasses.fields(loss_module(name).Hyperparameters)
    return {f.name: f for f in fields if "set_by" not in f.metadata}


def loss_hyperparameters(name: str, settings: dict[str, Any] | None = None, **set_by: Any) -> Any:
    """Loss ``name``'s ``Hyperparameters`` from its ``losses:`` entry ``settings`` (registry defaults for the rest).

    ``set_by`` gives the fields set by another config key, by field name (``form=training["hce_form"]``); an
    unknown or misplaced key raises ``ConfigError`` naming ``losses.<name>`` and the choices.
    """
    cls = loss_module(name).Hyperparameters
    settings = dict(settings or {})
    allowed = configurable_fields(name)
    for key in settings:
        if key in allowed:
            continue
        field = next((f for f in dataclasses.fields(cls) if f.name == key), None)
        if field is not None:
            raise ConfigError(f"losses.{name}.{key}: set it with {field.metadata['set_by']}, not here")
        raise ConfigError(
            f"losses.{name}: unknown hyperparameter {key!r}; {name} accepts "
            f"{sorted(allowed) if allowed else 'none'}"
        )
    return cls(**settings, **set_by)


def loss_settings(name: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every configurable hyperparameter of loss ``name``, the entry's values over the registry defaults: what a
    run records, so a changed default is a changed run."""
    hp = loss_hyperparameters(name, settings, **_set_by(name, {}))
    return {key: getattr(hp, key) for key in configurable_fields(name)}


def check_loss_settings(config: dict[str, Any]) -> None:
    """Check every ``losses:`` entry of a loaded config against its loss's ``Hyperparameters`` (names and values)."""
    for name, settings in (config.get("losses") or {}).items():
        if name not in REGISTRY:
            raise ConfigError(f"losses.{name}: unknown loss; choose from {list(LOSSES)}")
        loss_settings(name, settings)


def make_loss(
    name: str,
    reachability=None,
    class_weights: Tensor | np.ndarray | None = None,
    hce_form: str = "paper",
    settings: dict[str, Any] | None = None,
) -> nn.Module:
    """Build the loss a config names (``training.losses``) with its ``losses.<name>`` ``settings``.

    ``reachability``: ``R`` (array, tensor or ``LabelHierarchy``), ignored by ``ce``; ``class_weights``: ``(K,)``
    or None (the validation loss); ``hce_form``: ``training.hce_form``. A bad name or value raises ``ValueError``
    (``ConfigError``) naming the key.
    """
    module = loss_module(name)
    hp = loss_hyperparameters(name, settings, **_set_by(name, {"training.hce_form": hce_form}))
    return module.build(reachability, class_weights, hp)


def _set_by(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of loss ``name`` that another config key sets, from ``values`` (config key -> value; the field's
    default where the key is missing)."""
    fields = dataclasses.fields(loss_module(name).Hyperparameters)
    return {f.name: values.get(f.metadata["set_by"], f.default) for f in fields if "set_by" in f.metadata}
