"""A sweep: one workflow run per value of one config key, everything else fixed (``sweep:`` in a config).

``config/mechanism.yaml`` sweeps ``census.simulate.coarse_study_share`` over 0, ¼, ½ and ¾: at 0 every training
cell carries a leaf label and HCE is CE, so a gain that vanishes there and grows with the share is the mechanism's.
Each value runs the whole workflow as its own run, ``results/<run>_<value>/``, from a config this module derives,
so every point is cached on its own and adding a value runs only that point.
"""

from __future__ import annotations

import copy
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


def check_sweep(config: dict[str, Any]) -> None:
    """Validate every point's config before anything runs: a misspelt last part of ``sweep.key`` (or a value the
    key does not accept) stops the plan here, naming the value, not inside a point's nested run."""
    for value in config["sweep"]["values"]:
        try:
            load_config(point_config(config, value))
        except ConfigError as err:
            raise ConfigError(f"sweep point {config['sweep']['key']} = {value!r}: {err}") from None
