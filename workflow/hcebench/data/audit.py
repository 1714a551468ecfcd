"""Leakage audit of the OOD set: what the "unseen" studies share with the training data.

New dataset ids do not guarantee new biology. The audit reports, per OOD dataset and in total:

- ``shared_collection``: the dataset belongs to a collection (study) that also has training datasets — same
  lab, protocol and often the same donors;
- ``shared_donors``: donor ids that also occur in training datasets of the same collection (donor ids are
  only meaningful within a study, so matches across collections are not counted);
- ``title_matches_training``: the dataset's title equals a training dataset's title (a possible re-upload;
  a heuristic: generic titles such as the simulated census's "blood (10x 3' v3, normal)" match by chance);
- ``non_primary_cells``: cells flagged ``is_primary_data == False`` — duplicates of cells published elsewhere,
  which the primary-data filter drops from the OOD set.

- duplicate primary cells (``audit_duplicates``): cells listed more than once in a release, both copies primary
  (``hcebench.data.releases.duplicate_candidates`` and ``confirm_duplicates``), with those whose copies fall in different splits of the
  training selection and the OOD cells that copy a cell of an older dataset. Kept, as scTab kept them.

Nothing is removed here; the audit documents the OOD set so that a reader can judge how "out of
distribution" it is.

It also compares two rules for giving an OOD cell a training label (``label_rule_disagreement``): the suite's,
by Cell Ontology term id, and the paper's (microsoft/hce-classification, model_evaluation/utils.py), by label
name (``cell_type in <training label names>``). A term renamed between the releases is matched by id only; a
name now carried by another term, by name only. The cells on which the two disagree are counted per label.
"""

from __future__ import annotations

import logging
import re

import pandas as pd

from hcebench.data.census import open_census, read_datasets, read_obs
from hcebench.data.releases import confirm_duplicates, duplicate_candidates
from hcebench.data.selection import obs_value_filter
from hcebench.memory import own_peak_mb
from hcebench.settings import Filters

log = logging.getLogger(__name__)

#: What ``audit_duplicates`` logs between finding both releases' duplicate candidates and reading their count rows:
#: the peak memory of the audit's state (the selection's columns, the OOD cells' obs, the candidates), which grows
#: with the cells, apart from those reads, which TileDB's budget bounds (benchmarks/scale_rehearsal.py reads it).
STATE_PEAK_TEXT = "peak memory before reading the duplicate candidates' count rows"
STATE_PEAK_LINE = re.compile(re.escape(STATE_PEAK_TEXT) + r": (?P<mb>[\d,]+) MB")


def audit_ood(
    train_source: dict, ood_source: dict, train_cells: pd.DataFrame, organism: str = "homo_sapiens"
) -> tuple[pd.DataFrame, dict]:
    """Per-OOD-dataset audit table and totals. ``train_cells`` are the selected training cells (dataset_id, donor_id)."""
    with open_census(train_source) as census:
        train_datasets = read_datasets(census)
    with open_census(ood_source) as census:
        ood_datasets = read_datasets(census)
        new = ood_datasets[~ood_datasets["dataset_id"].isin(train_datasets["dataset_id"])]
        obs = read_obs(
            census,
            f"dataset_id in {new['dataset_id'].tolist()!r}",
            ["dataset_id", "donor_id", "is_primary_data"],
            organism=organism,
        )
    used = train_datasets[train_datasets["dataset_id"].isin(train_cells["dataset_id"])]
    train_collections = set(used["collection_id"])
    train_titles = set(used["dataset_title"])
    collection_of = dict(zip(train_datasets["dataset_id"], train_datasets["collection_id"], strict=True))
    donors = train_cells[["dataset_id", "donor_id"]].drop_duplicates()
    donors = donors.assign(collection_id=donors["dataset_id"].map(collection_of))
    train_donors = set(zip(donors["collection_id"], donors["donor_id"].astype(str), strict=True))

    rows = []
    for _, ds in new.iterrows():
        cells = obs[obs["dataset_id"] == ds["dataset_id"]]
        ds_donors = set(cells["donor_id"].astype(str))
        shared = sorted(d for d in ds_donors if (ds["collection_id"], d) in train_donors)
        rows.append(
            {
                "dataset_id": ds["dataset_id"],
                "collection_id": ds["collection_id"],
                "dataset_title": ds["dataset_title"],
                "n_cells": int(len(cells)),
                "non_primary_cells": int((~cells["is_primary_data"].astype(bool)).sum()),
                "shared_collection": ds["collection_id"] in train_collections,
                "n_donors": len(ds_donors),
                "shared_donors": ";".join(shared),
                "n_shared_donors": len(shared),
                "title_matches_training": ds["dataset_title"] in train_titles,
            }
        )
    table = pd.DataFrame(rows)
    totals = {
        "n_ood_datasets": int(len(table)),
        "datasets_in_training_collections": int(table["shared_collection"].sum()) if len(table) else 0,
        "datasets_with_shared_donors": int((table["n_shared_donors"] > 0).sum()) if len(table) else 0,
        "datasets_titled_like_training": int(table["title_matches_training"].sum()) if len(table) else 0,
        "non_primary_cells": int(table["non_primary_cells"].sum()) if len(table) else 0,
        "cells": int(table["n_cells"].sum()) if len(table) else 0,
    }
    return table, totals


#: Columns of the label-rule table: one row per (OOD term id, OOD name) whose cells the two rules label
#: differently; ``label_by_id`` / ``label_by_name`` are the training label each rule gives ("" for none).
LABEL_RULE_COLUMNS = [
    "rule",
    "ood_term_id",
    "ood_name",
    "label_by_id",
    "label_by_name",
    "n_cells",
    "n_datasets",
]
#: The ways the rules can disagree (``label_rule_disagreement``).
LABEL_RULES = ("id_not_name", "name_not_id", "different_label")


def training_label_names(labels: list[str], cells: pd.DataFrame, ontology) -> dict[str, str]:
    """The name each training label (term id) carries in the training release: the cells' Census ``cell_type``
    where the selection kept it, else the name in ``ontology`` (an ``hcebench.hierarchy.ontology.Ontology``; a
    scTab store import keeps no names, and scTab's names are the ones the ontology gives its ids)."""
    names = {}
    if {"label", "cell_type"} <= set(cells.columns):
        pairs = cells[["label", "cell_type"]].drop_duplicates("label").astype(str)
        names = dict(zip(pairs["label"], pairs["cell_type"], strict=True))
    return {t: names.get(t) or ontology.name(t) for t in labels}


def label_rule_disagreement(obs: pd.DataFrame, label_names: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """Cells of ``obs`` (``cell_type_ontology_term_id``, ``cell_type``, ``dataset_id``) that the term-id rule
    and the name rule label differently, given the training labels' names ``label_names`` (term id -> name).

    ``id_not_name``: the term is a training label but its name here is no training label's name (a renamed
    term: the suite keeps the cell, the paper's code dropped it); ``name_not_id``: the name is a training
    label's name but the term is no training label (the paper's code kept the cell, the suite drops it);
    ``different_label``: both rules match, to different labels. Returns the per-label table
    (``LABEL_RULE_COLUMNS``) and totals (cells each rule matches, and per kind of disagreement).
    """
    term = obs["cell_type_ontology_term_id"].astype(str)
    name = obs["cell_type"].astype(str)
    label_of_name = {n: t for t, n in label_names.items()}
    by_id = term.where(term.isin(set(label_names)), "")
    by_name = name.map(label_of_name).fillna("").astype(str)
    rule = pd.Series("", index=obs.index)
    rule[(by_id != "") & (by_name == "")] = "id_not_name"
    rule[(by_id == "") & (by_name != "")] = "name_not_id"
    rule[(by_id != "") & (by_name != "") & (by_id != by_name)] = "different_label"
    cells = pd.DataFrame(
        {
            "rule": rule,
            "ood_term_id": term,
            "ood_name": name,
            "label_by_id": by_id,
            "label_by_name": by_name,
            "dataset_id": obs["dataset_id"].astype(str),
        }
    )[rule != ""]
    table = (
        cells.groupby(LABEL_RULE_COLUMNS[:5])
        .agg(n_cells=("dataset_id", "size"), n_datasets=("dataset_id", "nunique"))
        .reset_index()
        .sort_values(["rule", "n_cells"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )
    totals = {
        "cells": int(len(obs)),
        "matched_by_id": int((by_id != "").sum()),
        "matched_by_name": int((by_name != "").sum()),
        "same_label": int(((by_id != "") & (by_id == by_name)).sum()),
        **{r: int((rule == r).sum()) for r in LABEL_RULES},
    }
    return table[LABEL_RULE_COLUMNS], totals


def audit_label_rules(
    ood_source: dict,
    dataset_ids: list[str],
    label_names: dict[str, str],
    filters: Filters,
    organism: str = "homo_sapiens",
) -> tuple[pd.DataFrame, dict]:
    """``label_rule_disagreement`` on the OOD datasets' cells that pass the OOD set's filters
    (``filters``: their ``is_primary_data`` and ``assays``), read from ``ood_source``."""
    if not dataset_ids:
        return label_rule_disagreement(
            pd.DataFrame(columns=["cell_type_ontology_term_id", "cell_type", "dataset_id"]), label_names
        )
    with open_census(ood_source) as census:
        obs = read_obs(
            census,
            obs_value_filter(filters, dataset_ids),
            ["dataset_id", "cell_type", "cell_type_ontology_term_id"],
            organism=organism,
        )
    return label_rule_disagreement(obs, label_names)


#: Columns of the duplicate-cell table: one row per copy, in either release.
DUPLICATE_AUDIT_COLUMNS = ["release", "group", "soma_joinid", "dataset_id", "where"]


def audit_duplicates(
    train_source: dict,
    ood_source: dict,
    train_cells: pd.DataFrame,
    ood_dataset_ids: list[str],
    filters: Filters,
    organism: str = "homo_sapiens",
) -> tuple[pd.DataFrame, dict]:
    """Duplicate primary cells of the kept assays in both releases (module docstring).

    ``where`` is a copy's split in the training selection (``train_cells``: soma_joinid, split; "" when the selection
    dropped it) in the training release, and ``ood`` / ``older`` (a dataset of the OOD set or one the training
    release has) in the OOD release. Totals: per release, the duplicate counts, plus ``groups_across_splits``
    (training release: a cell whose copies lie in two splits, e.g. one trained on and one tested) and
    ``ood_cells_copying_older_cells`` (OOD release: OOD-set cells that are copies of an older dataset's cell)."""
    tables, totals = [], {}
    # soma_joinid -> split as a Series (16 bytes per selected cell, not a dict entry's ~100).
    split_of = (
        pd.Series(train_cells["split"].astype(str).to_numpy(), index=train_cells["soma_joinid"].to_numpy())
        if "split" in train_cells
        else pd.Series(dtype=object)
    )
    sources = {"train": train_source, "ood": ood_source}
    # Both releases' candidates first (the per-cell state), then their count rows (reads bounded by TileDB's
    # budget, not the cells): the peak before the reads is logged (STATE_PEAK_LINE), so a measurement can tell
    # the two apart.
    candidates = {}
    for name, source in sources.items():
        with open_census(source) as census:
            candidates[name] = duplicate_candidates(census, obs_value_filter(filters), organism=organism)
    log.info("%s: %s MB", STATE_PEAK_TEXT, f"{own_peak_mb():,}")
    for name, source in sources.items():
        with open_census(source) as census:
            table, tot = confirm_duplicates(census, candidates[name], organism=organism)
        where, extra = duplicates_where(table, name, split_of, set(ood_dataset_ids))
        tables.append(table.assign(release=name, where=where.to_numpy()))
        totals[name] = {**tot, **extra}
    return pd.concat(tables, ignore_index=True)[DUPLICATE_AUDIT_COLUMNS], totals


def duplicates_where(
    table: pd.DataFrame, release: str, split_of: pd.Series | dict, ood_dataset_ids: set[str]
) -> tuple[pd.Series, dict]:
    """Where each copy of ``table`` (``confirm_duplicates``) lies, and the counts ``audit_duplicates`` reports.

    Training release (``release == "train"``): the copy's split (``split_of``: soma_joinid -> split, a Series or a
    dict; "" when the selection dropped it) and ``groups_across_splits``. OOD release: ``ood`` or ``older`` and
    ``ood_cells_copying_older_cells``."""
    groups = table["group"].to_numpy()
    if release == "train":
        where = table["soma_joinid"].map(split_of).fillna("").astype(str)
        splits = pd.Series(where.to_numpy()).groupby(groups).agg(lambda s: len(set(s) - {""}))
        return where, {"groups_across_splits": int((splits > 1).sum())}
    where = table["dataset_id"].map(lambda d: "ood" if d in ood_dataset_ids else "older").astype(str)
    kinds = pd.Series(where.to_numpy()).groupby(groups).agg(lambda s: set(s) == {"ood", "older"})
    mixed = set(kinds.index[kinds.to_numpy(dtype=bool)])
    return where, {
        "ood_cells_copying_older_cells": int(((where == "ood") & table["group"].isin(mixed)).sum())
    }
