"""A sweep: one workflow run per value of one config key, everything else fixed (``sweep:`` in a config).

``config/mechanism.yaml`` sweeps ``census.simulate.coarse_study_share`` over 0, ¼, ½ and ¾: at 0 every training
cell carries a leaf label and HCE is CE, so a gain that vanishes there and grows with the share is the mechanism's.
Each value is its own run, ``results/<run>_<value>/``, from a config this module derives: ``rules/sweep.smk`` loads
the workflow's rules once per value as a Snakemake module with that config (rule names prefixed by
``point_name``), so every job of every point is in one DAG, every point is cached on its own and adding a value
runs only that point.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hcebench.config import load_config
from hcebench.errors import ConfigError


def point_run(config: dict[str, Any], value: object) -> str:
    """The run name of one sweep point: ``<run>_<value>`` (``mechanism_0.25``)."""
    return f"{config['run']}_{value}"


def point_config(config: dict[str, Any], value: object) -> dict[str, Any]:
    """The config of one sweep point: ``config`` without ``sweep``, with ``sweep.key`` set to ``value`` and its own run."""
    sweep = config.get("sweep") or {}
    key = sweep.get("key")
    if not key:
        raise ConfigError(
            "sweep.key is missing: name the config key the sweep varies, e.g. census.simulate.seed"
        )
    point = copy.deepcopy({k: v for k, v in config.items() if k != "sweep"})
    *parents, leaf = key.split(".")
    node = point
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            raise ConfigError(
                f"sweep.key {key!r}: {'.'.join(parents[: i + 1])} is not a block of this config; "
                "name a key that exists (its parent blocks must be written out in the config)"
            )
        node = node[part]
    node[leaf] = value
    point["run"] = point_run(config, value)
    return point


def point_name(config: dict[str, Any], value: object) -> str:
    """The prefix of one point's rule names in the sweep's DAG: its run name with each character a rule name cannot
    hold as ``_`` (``mechanism_0_25``, so its training rule is ``mechanism_0_25_train``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", point_run(config, value))


def sweep_points(config: dict[str, Any]) -> list[tuple[object, dict[str, Any]]]:
    """``(value, config)`` of every point, in ``sweep.values``' order, each config validated with its defaults
    filled in (what the point's rules read). Everything is checked before any job is planned: two values whose
    runs or rule names would be the same, and each point's config (a misspelt last part of ``sweep.key``, a value
    the key does not accept), the error naming the value."""
    values = config["sweep"]["values"]
    names: dict[str, object] = {}
    for value in values:
        name = point_name(config, value)
        if name in names:
            raise ConfigError(
                f"sweep.values {names[name]!r} and {value!r} give their points the same run or rule names "
                f"({name}); give values that differ in more than punctuation"
            )
        names[name] = value
    points = []
    for value in values:
        try:
            points.append((value, load_config(point_config(config, value))))
        except ConfigError as err:
            raise ConfigError(f"sweep point {config['sweep']['key']} = {value!r}: {err}") from None
    return points
