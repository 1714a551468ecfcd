"""Across seeds: the summary table, the comparison of every loss with CE, and the coarse-annotation sweep.

``summary.tsv`` has one row per (architecture, loss) with its ``role`` (``hcebench.report.losses``: a trained
model, a reference method or a control) and the mean and standard deviation over seeds of the
hierarchy-corrected macro F1 on the ID test split (``id_``) and the OOD set (``ood_``). Every row of a loss other
than CE whose architecture also has CE rows (HCE, any other loss, and each ``<loss>_prop`` decoding, CE's own
included) carries the comparison with CE: absolute and relative gain of the means, the sd of the seed-paired
differences and a paired t-test over seeds (seed s paired with seed s of CE; equal seeds share the data split and
initialisation stream, so pairing removes seed-to-seed variance).

``loss_comparison`` is the same comparison as a table of its own, with Holm–Bonferroni across the family of
comparisons, and ``sweep_gains`` follows each loss's gain over CE across censuses simulated with different shares
of coarsely annotated studies.

A seed counts once: a metrics table holding the same (architecture, loss, seed, split) twice is refused, since a
duplicated seed would shrink the standard deviations and inflate the paired tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hcebench.axes import PAPER_LOSS
from hcebench.evaluation.stats import holm_bonferroni, paired_test
from hcebench.io import atomic_path
from hcebench.layout import HISTORY, ID_COLUMNS, OOD_SPLIT, SUMMARY_PREFIX, run_of
from hcebench.provenance import code_version
from hcebench.report.losses import (
    BASELINE_LOSS,
    DIRECT_COMPARISONS,
    ROLE_CONTROL,
    architecture_order,
    loss_order,
    row_role,
)

PROVENANCE_COLUMNS = ["train_release", "ood_release", "cl_release", "reachability_hash", "code_version"]
#: What identifies one value of the long metrics table.
VALUE_KEYS = [*ID_COLUMNS, "stratum_type", "stratum", "metric"]
#: Columns of ``loss_comparison``.
COMPARISON_COLUMNS = [
    "split",
    "architecture",
    "loss",
    "role",
    "baseline",
    "n_seeds",
    "mean",
    "sd",
    "baseline_mean",
    "n_pairs",
    "delta",
    "sd_delta",
    "rel_gain_pct",
    "t",
    "p",
    "p_holm",
]


def require_unique(rows: pd.DataFrame, what: str = "metrics table") -> None:
    """Raise ``ValueError`` naming the runs ``rows`` holds more than once (``VALUE_KEYS``, those present)."""
    keys = [c for c in VALUE_KEYS if c in rows.columns]
    dup = rows.duplicated(keys, keep=False)
    if dup.any():
        shown = rows.loc[dup, keys].drop_duplicates()
        listing = "; ".join(
            ", ".join(f"{k}={v}" for k, v in r.items()) for r in shown.head(5).to_dict("records")
        )
        raise ValueError(
            f"the {what} holds {len(shown)} value(s) more than once, e.g. {listing}: a seed must count once. "
            "A run was aggregated twice; remove the duplicate metrics file (or rows) and aggregate again."
        )


def headline(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """One value per (architecture, loss, seed, split): the whole-split ``metric``; duplicates are refused."""
    rows = metrics[(metrics["stratum_type"] == "all") & (metrics["metric"] == metric)]
    require_unique(rows)
    return rows[[*ID_COLUMNS, "value"]].reset_index(drop=True)


def seed_values(values: pd.DataFrame, architecture: str, loss: str, split: str) -> pd.Series:
    """A ``headline`` frame's values of one (architecture, loss, split), indexed by seed."""
    at = (values["architecture"] == architecture) & (values["loss"] == loss) & (values["split"] == split)
    return values.loc[at].set_index("seed")["value"].sort_index()


def paired_gain(baseline: pd.Series, other: pd.Series) -> dict[str, float]:
    """``other − baseline`` over the seeds both hold (series indexed by seed): ``stats.paired_test``'s fields,
    ``baseline_mean`` on those seeds and ``rel_gain_pct`` (100 × mean difference / ``baseline_mean``)."""
    seeds = baseline.index.intersection(other.index).sort_values()
    test = paired_test(baseline.loc[seeds].to_numpy(), other.loc[seeds].to_numpy())
    base = float(baseline.loc[seeds].mean()) if len(seeds) else np.nan
    rel = 100.0 * test["mean_diff"] / base if len(seeds) and base else np.nan
    return {**test, "baseline_mean": base, "rel_gain_pct": rel}


def summarise(metrics: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """The summary table described in the module docstring."""
    values = headline(metrics, metric)
    rows = []
    for (arch, loss), group in values.groupby(["architecture", "loss"], sort=True):
        row = {
            "architecture": arch,
            "loss": loss,
            "role": row_role(arch, loss),
            "n_seeds": int(group["seed"].nunique()),
        }
        for split, prefix in SUMMARY_PREFIX.items():
            v = group.loc[group["split"] == split, "value"]
            row[f"{prefix}_{metric}_mean"] = v.mean() if len(v) else np.nan
            row[f"{prefix}_{metric}_sd"] = v.std(ddof=1) if len(v) > 1 else np.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    for split, prefix in SUMMARY_PREFIX.items():
        for col in ("gain_abs", "gain_rel_pct", "gain_sd", "paired_t", "paired_p", "n_pairs"):
            summary[f"{prefix}_{col}"] = np.nan
        for i, r in summary.iterrows():
            if r["loss"] == BASELINE_LOSS or r["role"] == ROLE_CONTROL:
                continue
            ce = seed_values(values, r["architecture"], BASELINE_LOSS, split)
            other = seed_values(values, r["architecture"], r["loss"], split)
            if ce.index.intersection(other.index).empty:
                continue
            test = paired_gain(ce, other)
            gain = other.mean() - ce.mean()
            summary.loc[i, f"{prefix}_gain_abs"] = gain
            summary.loc[i, f"{prefix}_gain_rel_pct"] = 100.0 * gain / ce.mean() if ce.mean() else np.nan
            summary.loc[i, f"{prefix}_gain_sd"] = test["sd_diff"]
            summary.loc[i, f"{prefix}_paired_t"] = test["t"]
            summary.loc[i, f"{prefix}_paired_p"] = test["p"]
            summary.loc[i, f"{prefix}_n_pairs"] = test["n"]
    for col in PROVENANCE_COLUMNS:
        if col in metrics:
            summary[col] = ";".join(sorted(metrics[col].astype(str).unique()))
    return summary


def loss_comparison(
    metrics: pd.DataFrame, metric: str = "macro_f1", splits: Sequence[str] = (OOD_SPLIT, "test")
) -> pd.DataFrame:
    """Every loss against CE of the same architecture, per split: ``COMPARISON_COLUMNS``.

    One row per (split, architecture, loss) with the loss's ``n_seeds``, ``mean`` and ``sd`` over its seeds. Rows of
    a model or reference loss other than CE, in an architecture with CE, carry ``baseline = "ce"`` and the
    seed-paired comparison (``paired_gain``): ``n_pairs``, ``baseline_mean`` (on the paired seeds), ``delta`` (mean
    paired difference), ``sd_delta``, ``rel_gain_pct``, ``t`` and ``p``. Each ``DIRECT_COMPARISONS`` pair present in
    an architecture adds a row of its own (``loss = "hce"``, ``baseline = "ce_prop"``: HCE against CE decoded by
    propagation). Controls are listed with their mean and sd only. ``p_holm`` is Holm–Bonferroni across every
    tested row of the split: the loss × architecture family and the direct comparisons together.
    """
    values = headline(metrics, metric)
    out = []
    for split in splits:
        s = values[values["split"] == split]
        rows = []
        for arch in architecture_order(s["architecture"]):
            a = s[s["architecture"] == arch]
            losses = loss_order(a["loss"])
            comparisons = [(loss, BASELINE_LOSS if loss != BASELINE_LOSS else "") for loss in losses]
            comparisons += [(loss, base) for base, loss in DIRECT_COMPARISONS if {base, loss} <= set(losses)]
            for loss, baseline in comparisons:
                v = seed_values(s, arch, loss, split)
                role = row_role(arch, loss)
                row = {
                    "split": split,
                    "architecture": arch,
                    "loss": loss,
                    "role": role,
                    "baseline": "",
                    "n_seeds": len(v),
                    "mean": v.mean(),
                    "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
                }
                base = seed_values(s, arch, baseline, split) if baseline and role != ROLE_CONTROL else None
                if base is not None and len(base):
                    test = paired_gain(base, v)
                    row.update(
                        baseline=baseline,
                        baseline_mean=test["baseline_mean"],
                        n_pairs=test["n"],
                        delta=test["mean_diff"],
                        sd_delta=test["sd_diff"],
                        rel_gain_pct=test["rel_gain_pct"],
                        t=test["t"],
                        p=test["p"],
                    )
                rows.append(row)
        table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
        if len(table):
            table["p_holm"] = holm_bonferroni(table["p"].to_numpy(dtype=float))
        out.append(table)
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=COMPARISON_COLUMNS)
    return table.astype({"n_seeds": int, "n_pairs": "Int64"}) if len(table) else table


def sweep_gains(
    points: Sequence[tuple[float, pd.DataFrame]], split: str = OOD_SPLIT, metric: str = "macro_f1"
) -> pd.DataFrame:
    """Each loss's gain over CE against the share of coarsely annotated training studies (the mechanism sweep).

    ``points`` are ``(coarse_study_share, table)`` pairs, one per simulated census; ``table`` is that run's long
    metrics table (the gain is the mean of the seed-paired differences, its sd theirs) or its ``summary.tsv``
    (``<prefix>_gain_abs`` and ``<prefix>_gain_sd``: the same numbers when both losses ran the same seeds). Returns
    ``share, architecture, loss, gain_mean, gain_sd, n_pairs``, one row per share and compared (model or
    reference) loss, sorted by share.
    """
    shares = [float(share) for share, _ in points]
    if len(set(shares)) != len(shares):
        raise ValueError(f"sweep points must have distinct shares, got {sorted(shares)}")
    columns = ["share", "architecture", "loss", "gain_mean", "gain_sd", "n_pairs"]
    rows = []
    for share, table in sorted(points, key=lambda point: float(point[0])):
        if "metric" in table.columns:
            comparison = loss_comparison(table, metric, splits=(split,))
            tested = comparison[comparison["baseline"] == BASELINE_LOSS]
            for r in tested.itertuples(index=False):
                rows.append([float(share), r.architecture, r.loss, r.delta, r.sd_delta, r.n_pairs])
            continue
        prefix = SUMMARY_PREFIX[split]
        needed = {"architecture", "loss", f"{prefix}_gain_abs", f"{prefix}_gain_sd", f"{prefix}_n_pairs"}
        if not needed <= set(table.columns):
            raise ValueError(
                f"sweep point at share {share}: neither a long metrics table (no 'metric' column) nor a "
                f"summary.tsv with {sorted(needed)}; pass metrics.tsv or summary.tsv of that run"
            )
        tested = table[table[f"{prefix}_gain_abs"].notna()]
        for r in tested.to_dict("records"):
            rows.append(
                [
                    float(share),
                    r["architecture"],
                    r["loss"],
                    r[f"{prefix}_gain_abs"],
                    r[f"{prefix}_gain_sd"],
                    r[f"{prefix}_n_pairs"],
                ]
            )
    gains = pd.DataFrame(rows, columns=columns)
    return gains.astype({"share": float, "gain_mean": float, "gain_sd": float, "n_pairs": "Int64"})


def celltype_deltas(
    metrics: pd.DataFrame,
    architecture: str,
    split: str = "ood",
    metric: str = "f1",
    *,
    loss: str = PAPER_LOSS,
    baseline: str = BASELINE_LOSS,
) -> pd.DataFrame:
    """Fig. 2c's table: per cell type, ``loss`` − ``baseline`` (HCE − CE) of the per-type ``metric`` for
    ``architecture`` on ``split``.

    One row per cell type scored for both losses: ``term_id``, ``<baseline>_mean``, ``<loss>_mean``, ``delta``
    (mean of the seed-paired differences), ``sd_diff``, ``t``, ``p`` and ``n_pairs`` from ``stats.paired_test``, and
    ``p_holm``: Holm–Bonferroni across the cell types with a defined p-value. Sorted by ``delta``.
    """
    rows = metrics[
        (metrics["stratum_type"] == "cell_type")
        & (metrics["metric"] == metric)
        & (metrics["architecture"] == architecture)
        & (metrics["split"] == split)
        & metrics["loss"].isin([baseline, loss])
    ]
    require_unique(rows)
    columns = ["term_id", f"{baseline}_mean", f"{loss}_mean", "delta", "sd_diff", "t", "p", "n_pairs"]
    wide = rows.pivot_table(index=["stratum", "seed"], columns="loss", values="value").reset_index()
    out = []
    for term, g in wide.groupby("stratum", sort=True):
        if not {baseline, loss} <= set(g.columns):
            continue
        test = paired_test(g[baseline].to_numpy(), g[loss].to_numpy())
        if test["n"] == 0:
            continue
        out.append(
            [
                term,
                g[baseline].mean(),
                g[loss].mean(),
                test["mean_diff"],
                test["sd_diff"],
                test["t"],
                test["p"],
                test["n"],
            ]
        )
    table = pd.DataFrame(out, columns=columns)
    table["p_holm"] = holm_bonferroni(table["p"].to_numpy()) if len(table) else np.array([])
    return table.sort_values("delta", kind="stable").reset_index(drop=True)


def stratified_macro_f1(
    metrics: pd.DataFrame, split: str = "ood", strata=("dataset_id", "tissue", "assay", "disease")
) -> pd.DataFrame:
    """Macro F1 per stratum value, architecture and loss on ``split``: mean and sd over seeds, and the cells
    the stratum holds. Columns ``stratum_type, stratum, architecture, loss, mean, sd, n_seeds, n_cells``."""
    sub = metrics[(metrics["split"] == split) & metrics["stratum_type"].isin(strata)]
    require_unique(sub)
    f1 = sub[sub["metric"] == "macro_f1"]
    cells = (
        sub[sub["metric"] == "n_cells"].groupby(["stratum_type", "stratum"])["value"].max().rename("n_cells")
    )
    keys = ["stratum_type", "stratum", "architecture", "loss"]
    table = f1.groupby(keys)["value"].agg(mean="mean", sd="std", n_seeds="count").reset_index()
    return table.join(cells, on=["stratum_type", "stratum"])


def ood_subset_macro_f1(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The paper's subset score of ``split``: each run's hierarchy-corrected macro F1 over the labels present in the
    OOD set's truth, as rows of the long table (``stratum_type`` and ``stratum`` "all", metrics
    ``macro_f1_ood_subset`` and ``n_labels_ood_subset``).

    hce-classification's ``model_evaluation_sctab.py`` reports the test split's ``classification_report`` over 80
    fixed label indices (``SUBSET_INDICES``, the types present in the OOD set); here the subset comes from the data:
    the labels with OOD support in the table. A label's F1 is the per-type ``f1`` row, computed over all of the
    split's cells (as sklearn does with ``labels=``); a subset label absent from the split scores 0. Empty when
    the table holds no OOD per-type rows or no ``split`` rows.
    """
    per_type = metrics[metrics["stratum_type"] == "cell_type"]
    ood = per_type[
        (per_type["split"] == OOD_SPLIT) & (per_type["metric"] == "support") & (per_type["value"] > 0)
    ]
    subset = sorted(set(ood["stratum"].astype(str)))
    whole = metrics[(metrics["stratum_type"] == "all") & (metrics["split"] == split)]
    if not subset or whole.empty:
        return metrics.iloc[0:0]
    f1 = per_type[(per_type["split"] == split) & (per_type["metric"] == "f1")]
    f1 = f1[f1["stratum"].astype(str).isin(subset)]
    sums = f1.groupby(ID_COLUMNS)["value"].sum()
    runs = whole.drop_duplicates(ID_COLUMNS).set_index(ID_COLUMNS)
    rows = []
    for metric, values in (
        ("macro_f1_ood_subset", sums.reindex(runs.index, fill_value=0.0) / len(subset)),
        ("n_labels_ood_subset", pd.Series(float(len(subset)), index=runs.index)),
    ):
        rows.append(runs.assign(metric=metric, value=values).reset_index())
    return pd.concat(rows, ignore_index=True)[list(metrics.columns)]


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
    metrics = pd.concat([metrics, ood_subset_macro_f1(metrics)], ignore_index=True)
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
