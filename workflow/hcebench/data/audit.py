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

Nothing is removed here; the audit documents the OOD set so that a reader can judge how "out of
distribution" it is.
"""

from __future__ import annotations

import pandas as pd

from hcebench.data.census import open_census, read_datasets, read_obs


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
