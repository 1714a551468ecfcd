"""Across seeds: the summary table and the HCE-vs-CE comparison per architecture.

``summary.tsv`` has one row per (architecture, loss) with the mean and standard deviation over seeds of
the hierarchy-corrected macro F1 on the ID test split (``id_``) and the OOD set (``ood_``). HCE rows also
carry the comparison with CE of the same architecture: absolute and relative gain of the means and a
paired t-test over seeds (seed s of HCE paired with seed s of CE; equal seeds share the data split and
initialisation stream, so pairing removes seed-to-seed variance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import paired_test

SPLIT_PREFIX = {"test": "id", "ood": "ood"}
PROVENANCE_COLUMNS = ["train_release", "ood_release", "cl_release", "reachability_hash"]


def headline(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """One value per (architecture, loss, seed, split): the whole-split ``metric``."""
    rows = metrics[(metrics["stratum_type"] == "all") & (metrics["metric"] == metric)]
    return rows[["architecture", "loss", "seed", "split", "value"]].reset_index(drop=True)


def summarise(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """The summary table described in the module docstring."""
    values = headline(metrics, metric)
    rows = []
    for (arch, loss), group in values.groupby(["architecture", "loss"], sort=True):
        row = {"architecture": arch, "loss": loss, "n_seeds": int(group["seed"].nunique())}
        for split, prefix in SPLIT_PREFIX.items():
            v = group.loc[group["split"] == split, "value"]
            row[f"{prefix}_{metric}_mean"] = v.mean() if len(v) else np.nan
            row[f"{prefix}_{metric}_sd"] = v.std(ddof=1) if len(v) > 1 else np.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    for split, prefix in SPLIT_PREFIX.items():
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
