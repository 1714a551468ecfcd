"""Across seeds: the summary table and the HCE-vs-CE comparison per architecture.

``summary.tsv`` has one row per (architecture, loss) with the mean and standard deviation over seeds of
the hierarchy-corrected macro F1 on the ID test split (``id_``) and the OOD set (``ood_``). HCE rows also
carry the comparison with CE of the same architecture: absolute and relative gain of the means and a
paired t-test over seeds (seed s of HCE paired with seed s of CE; equal seeds share the data split and
initialisation stream, so pairing removes seed-to-seed variance).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hcebench.evaluation.stats import holm_bonferroni, paired_test
from hcebench.io import atomic_path
from hcebench.layout import HISTORY, ID_COLUMNS, SUMMARY_PREFIX, run_of
from hcebench.provenance import code_version

PROVENANCE_COLUMNS = ["train_release", "ood_release", "cl_release", "reachability_hash", "code_version"]


def headline(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """One value per (architecture, loss, seed, split): the whole-split ``metric``."""
    rows = metrics[(metrics["stratum_type"] == "all") & (metrics["metric"] == metric)]
    return rows[[*ID_COLUMNS, "value"]].reset_index(drop=True)


def summarise(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """The summary table described in the module docstring."""
    values = headline(metrics, metric)
    rows = []
    for (arch, loss), group in values.groupby(["architecture", "loss"], sort=True):
        row = {"architecture": arch, "loss": loss, "n_seeds": int(group["seed"].nunique())}
        for split, prefix in SUMMARY_PREFIX.items():
            v = group.loc[group["split"] == split, "value"]
            row[f"{prefix}_{metric}_mean"] = v.mean() if len(v) else np.nan
            row[f"{prefix}_{metric}_sd"] = v.std(ddof=1) if len(v) > 1 else np.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    for split, prefix in SUMMARY_PREFIX.items():
        for col in ("gain_abs", "gain_rel_pct", "paired_t", "paired_p", "n_pairs"):
            summary[f"{prefix}_{col}"] = np.nan
        for arch in summary["architecture"].unique():
            s = values[(values["architecture"] == arch) & (values["split"] == split)]
            ce = s[s["loss"] == "ce"].set_index("seed")["value"]
            hce = s[s["loss"] == "hce"].set_index("seed")["value"]
            seeds = ce.index.intersection(hce.index)
            if len(seeds) == 0:
                continue
            test = paired_test(ce.loc[seeds].to_numpy(), hce.loc[seeds].to_numpy())
            at = (summary["architecture"] == arch) & (summary["loss"] == "hce")
            gain = hce.mean() - ce.mean()
            summary.loc[at, f"{prefix}_gain_abs"] = gain
            summary.loc[at, f"{prefix}_gain_rel_pct"] = 100.0 * gain / ce.mean() if ce.mean() else np.nan
            summary.loc[at, f"{prefix}_paired_t"] = test["t"]
            summary.loc[at, f"{prefix}_paired_p"] = test["p"]
            summary.loc[at, f"{prefix}_n_pairs"] = test["n"]
    for col in PROVENANCE_COLUMNS:
        if col in metrics:
            summary[col] = ";".join(sorted(metrics[col].astype(str).unique()))
    return summary


def celltype_deltas(
    metrics: pd.DataFrame, architecture: str, split: str = "ood", metric: str = "f1"
) -> pd.DataFrame:
    """Fig. 2c's table: per cell type, HCE − CE of the per-type ``metric`` for ``architecture`` on ``split``.

    One row per cell type scored for both losses: ``term_id``, ``ce_mean``, ``hce_mean``, ``delta`` (mean of
    the seed-paired differences), ``sd_diff``, ``t``, ``p`` and ``n_pairs`` from ``stats.paired_test``, and
    ``p_holm``: Holm–Bonferroni across the cell types with a defined p-value. Sorted by ``delta``.
    """
    rows = metrics[
        (metrics["stratum_type"] == "cell_type")
        & (metrics["metric"] == metric)
        & (metrics["architecture"] == architecture)
        & (metrics["split"] == split)
    ]
    wide = rows.pivot_table(index=["stratum", "seed"], columns="loss", values="value").reset_index()
    out = []
    for term, g in wide.groupby("stratum", sort=True):
        if not {"ce", "hce"} <= set(g.columns):
            continue
        test = paired_test(g["ce"].to_numpy(), g["hce"].to_numpy())
        if test["n"] == 0:
            continue
        out.append(
            {
                "term_id": term,
                "ce_mean": g["ce"].mean(),
                "hce_mean": g["hce"].mean(),
                "delta": test["mean_diff"],
                "sd_diff": test["sd_diff"],
                "t": test["t"],
                "p": test["p"],
                "n_pairs": test["n"],
            }
        )
    table = pd.DataFrame(
        out, columns=["term_id", "ce_mean", "hce_mean", "delta", "sd_diff", "t", "p", "n_pairs"]
    )
    table["p_holm"] = holm_bonferroni(table["p"].to_numpy()) if len(table) else np.array([])
    return table.sort_values("delta", kind="stable").reset_index(drop=True)


def stratified_macro_f1(
    metrics: pd.DataFrame, split: str = "ood", strata=("dataset_id", "tissue", "assay", "disease")
) -> pd.DataFrame:
    """Macro F1 per stratum value, architecture and loss on ``split``: mean and sd over seeds, and the cells
    the stratum holds. Columns ``stratum_type, stratum, architecture, loss, mean, sd, n_seeds, n_cells``."""
    sub = metrics[(metrics["split"] == split) & metrics["stratum_type"].isin(strata)]
    f1 = sub[sub["metric"] == "macro_f1"]
    cells = (
        sub[sub["metric"] == "n_cells"].groupby(["stratum_type", "stratum"])["value"].max().rename("n_cells")
    )
    keys = ["stratum_type", "stratum", "architecture", "loss"]
    table = f1.groupby(keys)["value"].agg(mean="mean", sd="std", n_seeds="count").reset_index()
    return table.join(cells, on=["stratum_type", "stratum"])


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
        histories.append(pd.read_csv(f, sep="\t").assign(**run_of(str(f), HISTORY)))
    summary = summarise(metrics)
    for frame, path in (
        (metrics, metrics_out),
        (summary, summary_out),
        (pd.concat(histories), histories_out),
    ):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)
    return summary
