"""Scoring runs: one predictions file to its long metrics table, and all runs to the summary.

Every metrics row carries what identifies it (architecture, loss, seed, split) and what it depends on
(census releases, CL release, reachability hash), so tables from different runs never mix silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from hcebench.evaluation.contract import read_predictions
from hcebench.evaluation.metrics import metrics_table
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import atomic_path, read_json
from hcebench.layout import ID_COLUMNS


def score_predictions(
    predictions: str | os.PathLike,
    hierarchy_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    architecture: str,
    loss: str,
    seed: int,
    split: str,
    output: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Long metrics of one predictions file, with identity and provenance columns; written if ``output``."""
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    table = metrics_table(read_predictions(predictions), hierarchy)
    data_meta = read_json(Path(data_dir) / "meta.json")
    ident = {"architecture": architecture, "loss": loss, "seed": seed, "split": split}
    provenance = {
        "train_release": data_meta.get("train_release", data_meta.get("census_release")),
        "ood_release": data_meta.get("ood_release", ""),
        "cl_release": hierarchy.release,
        "reachability_hash": hierarchy.content_hash,
    }
    table = table.assign(**ident, **provenance)
    table = table[ID_COLUMNS + ["stratum_type", "stratum", "metric", "value", *provenance]]
    if output is not None:
        with atomic_path(output) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    return table
