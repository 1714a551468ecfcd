"""What differs between the training release and the OOD release, for any pair of Census releases.

A later Census LTS (2024-07-01, 2025-01-30, 2025-11-08; schema 2.4.0) differs from 2023-05-15 in ways a benchmark
must see rather than trip over. Each function here reports one of them; ``hcebench.data.ood`` writes the reports
into the OOD set's meta and the audit (``hcebench.data.audit``) repeats them:

- ``dataset_diff``: datasets new, removed and *revised*. ``dataset_id`` survives a revision while
  ``dataset_version_id`` changes, so a ``dataset_id`` difference (how the OOD datasets are chosen) misses revised
  datasets. They are listed, not added to the OOD set: their cells were trained on. Releases before 2023-12-15
  have no ``dataset_version_id``; then a revision shows only as a changed ``dataset_total_cell_count``, the rule
  the report names (``revised_by``).
- ``assay_diff``: assays a release adds or drops, and ``filters.assays`` a release lacks (a filter on an absent
  assay matches no cell; it does not fail).
- ``zero_fill_report``: genes are matched by ``feature_id`` (``feature_name`` is not unique from schema 2.4.0 on):
  store genes the OOD release lacks read as zero columns, counted and listed.
- ``shared_feature_names``: symbols the release gives to several feature_ids.
- ``multi_valued``: obs values that join several terms with ``" || "`` (schema 2.4.0's ``disease``). The
  evaluation scores such a value as a stratum of its own (``hcebench.evaluation.metrics``: strata partition the
  cells, so no cell is counted twice); the report counts them and lists their parts.
- ``duplicate_candidates`` and ``confirm_duplicates``: primary cells listed more than once (the same cell in two datasets, both marked
  primary; Census 2023-05-15 has 243,569). Candidates share their count statistics (``nnz``, ``raw_sum``,
  ``raw_variance_nnz``) across datasets and are confirmed by comparing their raw count rows. scTab kept them (its
  only cell filter is ``is_primary_data == True``), and so does the suite: they are listed, with how many cross
  the train/test split or reappear in the OOD set, not removed.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from hcebench.data.census import iter_counts, read_obs, read_summary_cell_counts, read_var
from hcebench.progress import Progress

log = logging.getLogger(__name__)

#: How schema 2.4.0 joins several terms in one obs value.
MULTI_VALUE = " || "
#: obs count statistics that a copied cell shares with its original (Census obs columns since 2023-05-15).
DUPLICATE_KEY = ("nnz", "raw_sum", "raw_variance_nnz")
#: Columns of the duplicate-cell table: one row per copy.
DUPLICATE_COLUMNS = ["group", "soma_joinid", "dataset_id"]


def dataset_diff(train_datasets: pd.DataFrame, ood_datasets: pd.DataFrame) -> dict:
    """New, removed and revised datasets between two releases' ``census_info/datasets`` (module docstring)."""
    old = train_datasets.set_index("dataset_id")
    new = ood_datasets.set_index("dataset_id")
    both = old.index.intersection(new.index)
    if "dataset_version_id" in old.columns and "dataset_version_id" in new.columns:
        rule = "dataset_version_id"
    else:
        rule = "dataset_total_cell_count"
    changed = old.loc[both, rule].astype(str) != new.loc[both, rule].astype(str)
    revised = [
        {
            "dataset_id": d,
            "dataset_title": str(new.at[d, "dataset_title"]),
            "train": str(old.at[d, rule]),
            "ood": str(new.at[d, rule]),
        }
        for d in both[changed.to_numpy()]
    ]
    return {
        "new": sorted(new.index.difference(old.index)),
        "removed": sorted(old.index.difference(new.index)),
        "revised": revised,
        "revised_by": rule,
        "n_new": int(len(new.index.difference(old.index))),
        "n_removed": int(len(old.index.difference(new.index))),
        "n_revised": len(revised),
    }


def release_assays(census) -> set[str]:
    """The assays a release holds cells of, from ``census_info/summary_cell_counts`` (no obs read)."""
    counts = read_summary_cell_counts(census, "assay")
    return set(counts.loc[counts["total_cell_count"] > 0, "label"].astype(str))


def assay_diff(train_assays: set[str], ood_assays: set[str], assays: list[str]) -> dict:
    """Assays the OOD release adds or drops (``release_assays`` of each), and which of ``filters.assays`` each
    release lacks."""
    held = {"train": set(train_assays), "ood": set(ood_assays)}
    return {
        "added": sorted(held["ood"] - held["train"]),
        "removed": sorted(held["train"] - held["ood"]),
        "filter_assays_absent": {k: sorted(set(assays) - v) for k, v in held.items()},
    }


def zero_fill_report(store_genes: pd.DataFrame, ood_var: pd.DataFrame) -> dict:
    """Store genes (feature_id, feature_name) whose feature_id the OOD release's var lacks: zero columns of the
    OOD set. Counted and listed as ``"<feature_id> <feature_name>"``."""
    absent = store_genes[~store_genes["feature_id"].astype(str).isin(set(ood_var["feature_id"].astype(str)))]
    return {
        "matched_by": "feature_id",
        "n_store_genes": int(len(store_genes)),
        "n_zero_filled": int(len(absent)),
        "fraction": float(len(absent) / len(store_genes)) if len(store_genes) else 0.0,
        "genes": [f"{i} {n}" for i, n in zip(absent["feature_id"], absent["feature_name"], strict=True)],
    }


def shared_feature_names(var: pd.DataFrame) -> dict:
    """Symbols that several feature_ids of ``var`` carry (``{symbol: [feature_ids]}``) and how many rows they cover."""
    names = var["feature_name"].astype(str)
    shared = var[names.duplicated(keep=False)]
    groups = shared.groupby(shared["feature_name"].astype(str))["feature_id"].agg(
        lambda s: sorted(map(str, s))
    )
    return {"n_symbols": int(len(groups)), "n_genes": int(len(shared)), "symbols": groups.to_dict()}


def multi_valued(values: pd.Series) -> dict:
    """Values that join several terms with ``" || "``: their cells, and each joined value's parts and cells."""
    values = values.astype(str)
    joined = values[values.str.contains(MULTI_VALUE, regex=False)]
    counts = joined.value_counts()
    return {
        "n_cells": int(len(joined)),
        "values": {v: {"n_cells": int(c), "parts": v.split(MULTI_VALUE)} for v, c in counts.items()},
    }


def _row_digest(matrix) -> np.ndarray:
    """One 64-bit digest per CSR row (its column indices and values): equal rows, equal digests."""
    out = np.empty(matrix.shape[0], dtype=np.uint64)
    for i in range(matrix.shape[0]):
        lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
        h = hashlib.blake2b(matrix.indices[lo:hi].tobytes() + matrix.data[lo:hi].tobytes(), digest_size=8)
        out[i] = np.frombuffer(h.digest(), dtype=np.uint64)[0]
    return out


def duplicate_candidates(census, value_filter: str, organism: str = "homo_sapiens") -> pd.DataFrame | str:
    """The cells of ``value_filter`` that share ``DUPLICATE_KEY`` with a cell of another dataset (soma_joinid,
    dataset_id and the key's hash; a hash collision only adds a candidate), or why they cannot be found (the
    release's obs lacks the count statistics). Memory: the filtered obs with the key columns while it is read,
    ~36 bytes per cell (joinid, a categorical dataset_id, three statistics), then ~28 (joinid, a hash, a dataset
    code, a sort order); the candidates after that."""
    obs_columns = census["census_data"][organism].obs.schema.names
    if not set(DUPLICATE_KEY) <= set(obs_columns):
        return f"obs lacks {sorted(set(DUPLICATE_KEY) - set(obs_columns))}"
    obs = read_obs(census, value_filter, ["dataset_id", *DUPLICATE_KEY], organism=organism, plain=False)
    if obs.empty:  # one cell of no dataset: the sort below needs one row
        obs = pd.DataFrame({"soma_joinid": [-1], "dataset_id": [""], **{c: [0] for c in DUPLICATE_KEY}})
    # One 64-bit hash of the statistics and a dataset code per cell; sorted, the cells of one hash that span
    # several datasets are the candidates.
    keys = pd.util.hash_pandas_object(obs[list(DUPLICATE_KEY)], index=False).to_numpy()
    dataset = obs["dataset_id"].astype("category")
    codes, names = dataset.cat.codes.to_numpy(), np.asarray(dataset.cat.categories.astype(str), dtype=object)
    joinids = obs["soma_joinid"].to_numpy()
    del obs, dataset
    order = np.lexsort((codes, keys))
    k, c = keys[order], codes[order]
    first = np.r_[True, k[1:] != k[:-1]]  # the first cell of each hash
    group = np.cumsum(first) - 1
    datasets_in_group = np.bincount(group, weights=first | np.r_[True, c[1:] != c[:-1]])
    picked = np.sort(order[datasets_in_group[group] > 1])
    return pd.DataFrame(
        {"soma_joinid": joinids[picked], "dataset_id": names[codes[picked]], "key": keys[picked]}
    )


def confirm_duplicates(
    census, candidates: pd.DataFrame | str, organism: str = "homo_sapiens", chunk_size: int = 20_000
) -> tuple[pd.DataFrame, dict]:
    """The duplicate primary cells among the ``duplicate_candidates`` of ``census``: their raw count rows read
    ``chunk_size`` cells at a time over every gene (a point read of scattered cells: TileDB holds the tiles they
    fall in, up to its ``sm.mem.total_budget``), hashed, and compared. Returns one row per copy
    (``DUPLICATE_COLUMNS``; a ``group`` is one cell and its copies) and totals; where the candidates could not be
    found (``candidates`` says why), an empty table and ``checked: False``."""
    if isinstance(candidates, str):
        return pd.DataFrame(columns=DUPLICATE_COLUMNS), {"checked": False, "why": candidates}
    candidates = candidates.copy()
    digests = np.empty(len(candidates), dtype=np.uint64)
    if len(candidates):
        n_var = len(read_var(census, organism=organism))
        progress = Progress(len(candidates), "duplicate primary cells: compare count rows", log)
        done = 0
        for ids, X in iter_counts(
            census, candidates["soma_joinid"].to_numpy(), np.arange(n_var), chunk_size, organism=organism
        ):
            digests[done : done + len(ids)] = _row_digest(X)
            done += len(ids)
            progress.advance(len(ids))
        progress.finish()
    candidates["digest"] = digests
    span = candidates.groupby(["key", "digest"])["dataset_id"].transform("nunique")
    copies = candidates[span.to_numpy() > 1].copy()
    copies["group"] = copies.groupby(["key", "digest"], sort=False).ngroup()
    table = copies.sort_values(["group", "soma_joinid"])[DUPLICATE_COLUMNS].reset_index(drop=True)
    pairs = (
        table.groupby("group")["dataset_id"]
        .agg(lambda s: " & ".join(sorted(set(s))))
        .value_counts()
        .to_dict()
    )
    totals = {
        "checked": True,
        "rule": f"same {', '.join(DUPLICATE_KEY)} in another dataset, and the same raw count row",
        "n_candidates": int(len(candidates)),
        "n_cells_listed_more_than_once": int(table["group"].nunique()) if len(table) else 0,
        "n_rows": int(len(table)),
        "n_extra_copies": int(len(table) - table["group"].nunique()) if len(table) else 0,
        "datasets": {k: int(v) for k, v in pairs.items()},
        "handling": "kept, as scTab kept them (its only cell filter is is_primary_data == True)",
    }
    return table, totals
