"""The out-of-distribution set: studies a newer census release adds, read like the training data.

OOD datasets are those in the newer release's ``census_info/datasets`` whose ``dataset_id`` the training
release lacks. Their cells pass the same primary-data and assay filters; cells whose label is in the
training label set are kept, the rest are counted per label in ``meta.json`` (``unseen_labels``).
Genes are aligned by ``feature_id`` to the training store's order; genes the newer release does not
measure stay zero, and their fraction is recorded (``missing_gene_fraction``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .census import census_release, open_census, read_datasets, read_obs, read_var
from .io import atomic_path, write_json
from .selection import OBS_COLUMNS, obs_value_filter, tech_sample
from .store import write_split_from_census


def new_datasets(train_datasets: pd.DataFrame, ood_datasets: pd.DataFrame) -> pd.DataFrame:
    """Datasets of the newer release whose dataset_id the training release does not have."""
    return ood_datasets[~ood_datasets["dataset_id"].isin(train_datasets["dataset_id"])].reset_index(drop=True)


def align_genes(store_genes: pd.Series, ood_var: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """Map the newer release's var onto the store's gene order.

    Returns (var soma_joinids to read, store column of each, fraction of store genes the release lacks).
    """
    position = pd.Series(np.arange(len(store_genes)), index=pd.Index(store_genes.astype(str)))
    present = ood_var[ood_var["feature_id"].isin(position.index)]
    columns = position.loc[present["feature_id"]].to_numpy(np.int64)
    missing = 1.0 - len(present) / len(store_genes)
    return present["soma_joinid"].to_numpy(np.int64), columns, float(missing)


def build_ood_set(
    train_source: dict,
    ood_source: dict,
    labels: list[str],
    store_genes: pd.DataFrame,
    config: dict,
    directory: str | os.PathLike,
) -> dict:
    """Write the OOD set (one split, ``ood``) into ``directory`` atomically; returns its metadata."""
    census_cfg, filters = config["census"], config["filters"]
    organism = census_cfg["organism"]
    with open_census(train_source) as census:
        train_datasets = read_datasets(census)
        train_release = census_release(train_source, census)
    with open_census(ood_source) as census, atomic_path(directory, is_dir=True) as tmp:
        added = new_datasets(train_datasets, read_datasets(census))
        if added.empty:
            raise ValueError(
                f"census release {ood_source} adds no dataset to {train_source}: "
                "census.ood_release must be newer than census.train_release"
            )
        obs = read_obs(census, obs_value_filter(filters, added["dataset_id"].tolist()), OBS_COLUMNS, organism=organism)
        obs["tech_sample"] = tech_sample(obs)
        obs["label"] = obs["cell_type_ontology_term_id"].astype(str)
        seen = obs["label"].isin(labels)
        unseen = obs.loc[~seen].groupby(["label", "cell_type"], observed=True).size()
        obs = obs.loc[seen].drop(columns=["is_primary_data"])
        obs["label_name"] = obs["cell_type"].astype(str)
        obs["label_index"] = obs["label"].map({t: i for i, t in enumerate(labels)}).astype(np.int64)
        var_joinids, columns, missing = align_genes(store_genes["feature_id"], read_var(census, organism=organism))
        store_genes.to_parquet(tmp / "var.parquet", index=False)
        n = write_split_from_census(
            census, obs, var_joinids, columns, len(store_genes), tmp / "ood",
            target_sum=config["normalisation"]["target_sum"], chunk_size=census_cfg["chunk_size"], organism=organism,
        )
        meta = {
            "train_release": train_release,
            "ood_release": census_release(ood_source, census),
            "n_new_datasets": int(len(added)),
            "new_dataset_ids": added["dataset_id"].tolist(),
            "n_datasets_with_cells": int(obs["dataset_id"].nunique()),
            "n_cells": {"ood": int(n)},
            "n_labels_present": int(obs["label"].nunique()),
            "n_cells_unseen_label": int(unseen.sum()),
            "unseen_labels": {f"{t} {name}": int(c) for (t, name), c in unseen.items()},
            "missing_gene_fraction": missing,
            "n_genes": int(len(store_genes)),
        }
        write_json(tmp / "meta.json", meta)
    return meta
