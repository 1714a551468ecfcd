"""Scoring runs: one predictions file to its long metrics table, and all runs to the summary.

Every metrics row carries what identifies it (architecture, loss, seed, split) and what it depends on
(census releases, CL release, reachability hash), so tables from different runs never mix silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .aggregate import summarise
from .contract import read_predictions
from .io import atomic_path, read_json
from .metrics import metrics_table
from .ontology import LabelHierarchy
from .provenance import code_version

ID_COLUMNS = ["architecture", "loss", "seed", "split"]
RUN_PATH = re.compile(r"/models/(?P<architecture>[^/]+)/(?P<loss>[^/]+)/seed(?P<seed>\d+)/history\.tsv$")


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


def aggregate_runs(
    metrics_files: Sequence[str | os.PathLike],
    history_files: Sequence[str | os.PathLike],
    metrics_out: str | os.PathLike,
    summary_out: str | os.PathLike,
    histories_out: str | os.PathLike,
) -> pd.DataFrame:
    """Concatenate per-run metrics and histories; write them and the summary; return the summary.

    Every metrics and summary row gets the run's census releases and the ``code_version`` that aggregated it."""
    metrics = pd.concat([pd.read_csv(f, sep="\t") for f in metrics_files], ignore_index=True)
    # The OOD release is known only to OOD rows; give every row the run's releases.
    for col in ("train_release", "ood_release"):
        known = metrics[col].dropna().astype(str)
        known = known[known != ""].unique()
        if len(known) == 1:
            metrics[col] = known[0]
    metrics["code_version"] = code_version()
    histories = []
    for f in history_files:
        match = RUN_PATH.search(str(Path(f).as_posix()))
        if match is None:
            raise ValueError(f"{f} is not a models/<arch>/<loss>/seed<N>/history.tsv path")
        histories.append(pd.read_csv(f, sep="\t").assign(**match.groupdict()))
    summary = summarise(metrics)
    for frame, path in ((metrics, metrics_out), (summary, summary_out), (pd.concat(histories), histories_out)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)
    return summary
