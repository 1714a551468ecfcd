"""The out-of-distribution set: studies a newer census release adds, read like the training data.

OOD datasets are those in the newer release's ``census_info/datasets`` whose ``dataset_id`` the training
release lacks. Their cells pass the same primary-data and assay filters; cells whose label is in the
training label set form the ``ood`` split; the rest are counted per label in the set's meta (``unseen_labels``)
and, when a Cell Ontology is given, written as a second split, ``ood_novel``: each such cell is relabelled with
its *nearest trained ancestor*, the deepest training label that is an is_a ancestor of its own label (depth =
number of is_a ancestors in the full Cell Ontology; ties go to the lower term id), so the hierarchy-corrected
score of a prediction at that ancestor asks "did the model place the new type in the right branch?". Its own
label is kept in ``novel_label`` / ``novel_label_name``. Cells whose label has no trained ancestor, or is not a
term of the ontology release, cannot be scored; they are counted (``novel.n_cells_dropped``) and left out.
Genes are aligned by ``feature_id`` to the training store's order; genes the newer release does not
measure stay zero, and their fraction is recorded (``missing_gene_fraction``; counted and listed in
``release_pair.gene_zero_fill``, beside the rest of ``hcebench.data.releases``' comparison of the two releases:
datasets new, removed and revised, assays, shared symbols, multi-valued diseases). This holds also when the store's
genes were matched by symbol (``genes.match: feature_name``, as scTab did): the store's genes keep one
feature_id per column, and an id is one gene in both releases, whereas a symbol need not be (the HCE evaluation
code looked OOD genes up by symbol, so every column of a symbol with several ids read the same, first, gene).
The meta's ``gene_alignment`` records what a symbol lookup would do differently (``name_alignment_check``).
Each OOD cell is normalised over the store's genes (the training cells' rule), or with ``normalisation.ood_genes:
gene_list`` over every gene of the newer release whose symbol the gene list holds, as HCE's evaluation did
(``hce_normalisation_genes``; the meta's ``normalisation_genes`` counts them).

Data checks (``hcebench.data.checks``), as for the training store: raw counts must be non-negative integers (an
error names the dataset), and all-zero cells are counted per dataset (the meta's ``data_checks``), an error past
``filters.max_zero_cell_fraction``. With an ontology, cells whose label it lacks or marks obsolete are counted
before any count is read (the meta's ``labels_outside_ontology``), an error past
``filters.max_unknown_label_fraction``.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd

from hcebench.data.census import (
    census_release,
    open_census,
    raw_counts_are_integers,
    read_datasets,
    read_obs,
    read_var,
)
from hcebench.data.checks import CountChecks, check_labels_in_ontology
from hcebench.data.genes import read_gene_list
from hcebench.data.reads import CensusRead, census_count_checks
from hcebench.data.releases import (
    assay_diff,
    dataset_diff,
    multi_valued,
    release_assays,
    shared_feature_names,
    zero_fill_report,
)
from hcebench.data.selection import OBS_COLUMNS, label_indices, obs_value_filter, tech_sample
from hcebench.data.shuffle import write_split_from_census
from hcebench.data.store import StoreWriter
from hcebench.data.store.split import plain_strings
from hcebench.data.workers import resume_dir, write_split
from hcebench.io import atomic_path
from hcebench.layout import NOVEL_SPLIT, OOD_SPLIT
from hcebench.settings import OodSettings


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


def hce_normalisation_genes(
    var_joinids: np.ndarray, columns: np.ndarray, ood_var: pd.DataFrame, list_names
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The reads of ``align_genes`` extended to HCE's OOD normalisation (``normalisation.ood_genes: gene_list``).

    hce-classification's evaluation (model_evaluation/utils.py) fetches every var row of the newer release whose
    feature_name is in the gene list (``var_value_filter="feature_name in <list>"``), normalises each cell to 10⁴
    counts over those genes, then picks the model's columns. Here the cell's total is taken over the same var rows
    (``in_sum``); the store's genes are read as before, and list genes the store lacks are read for the total only
    (column -1). Returns (var soma_joinids, store column or -1, in_sum, counts for the OOD meta).
    """
    names = set(map(str, list_names))
    summed = ood_var.loc[ood_var["feature_name"].astype(str).isin(names), "soma_joinid"].to_numpy(np.int64)
    extra = np.setdiff1d(summed, var_joinids)
    joinids = np.concatenate([np.asarray(var_joinids, np.int64), extra])
    cols = np.concatenate([np.asarray(columns, np.int64), np.full(len(extra), -1, np.int64)])
    in_sum = np.isin(joinids, summed)
    report = {
        "ood_genes": "gene_list",
        "n_genes_summed": int(len(summed)),
        "n_summed_not_in_store": int(len(extra)),
        "n_store_genes_not_summed": int((~in_sum[: len(var_joinids)]).sum()),
    }
    return joinids, cols, in_sum, report


def name_alignment_check(store_genes: pd.DataFrame, ood_var: pd.DataFrame) -> dict:
    """What aligning by symbol instead of feature_id would change: store genes whose id the newer release lacks
    but whose symbol it has (a symbol lookup would fill them), and store genes that share their symbol with
    another store gene (a symbol lookup cannot tell them apart)."""
    ids = set(ood_var["feature_id"].astype(str))
    names = set(ood_var["feature_name"].astype(str))
    store_ids = store_genes["feature_id"].astype(str)
    store_names = store_genes["feature_name"].astype(str)
    found_by_name = ~store_ids.isin(ids) & store_names.isin(names)
    return {
        "by": "feature_id",
        "missing_by_id_found_by_name": sorted(store_ids[found_by_name]),
        "store_genes_sharing_a_symbol": int(store_names.duplicated(keep=False).sum()),
    }


def nearest_trained_ancestors(terms, labels, ontology) -> dict[str, str | None]:
    """For each term, the deepest of ``labels`` that is a strict is_a ancestor of it (module docstring), or
    ``None`` when no training label is, or the term is unknown to ``ontology`` (an ``hcebench.hierarchy.ontology.Ontology``)."""
    label_set = set(labels)
    out: dict[str, str | None] = {}
    for term in terms:
        if term not in ontology.names:
            out[term] = None
            continue
        candidates = sorted(ontology.ancestors(term) & label_set)
        out[term] = max(
            candidates, key=lambda t: (len(ontology.ancestors(t)), [-ord(c) for c in t]), default=None
        )
    return out


def build_ood_set(
    train_source: dict,
    ood_source: dict,
    labels: list[str],
    store_genes: pd.DataFrame,
    settings: OodSettings,
    directory: str | os.PathLike,
    ontology=None,
    threads: int = 1,
) -> dict:
    """Write the OOD set into ``directory`` atomically and return its metadata: the ``ood`` split (cells with a
    training label) and, when ``ontology`` (an ``hcebench.hierarchy.ontology.Ontology``) is given, the ``ood_novel`` split
    (cells of other labels, relabelled with their nearest trained ancestor; module docstring). ``threads``: the
    reading processes when ``census.build_workers`` is null (the job's threads)."""
    census_cfg, filters = settings.census, settings.filters
    organism = census_cfg.organism
    resume = resume_dir(
        directory
    )  # the ood split's finished segments, kept for a rerun until the set is whole
    with open_census(train_source) as census:
        train_datasets = read_datasets(census)
        train_release = census_release(train_source, census)
        train_assays = release_assays(census)
    with (
        open_census(ood_source, chunk_size=census_cfg.chunk_size) as census,
        atomic_path(directory, is_dir=True) as tmp,
    ):
        store = StoreWriter(tmp)
        ood_release = census_release(ood_source, census)
        ood_datasets = read_datasets(census)
        added = new_datasets(train_datasets, ood_datasets)
        if added.empty:
            raise ValueError(
                f"census release {ood_source} adds no dataset to {train_source}: "
                "census.ood_release must be newer than census.train_release"
            )
        # Categoricals: a few bytes per cell for the ~2.6 M OOD cells of the paper, not ~13 Python strings each.
        obs = read_obs(
            census,
            obs_value_filter(filters, added["dataset_id"].tolist()),
            OBS_COLUMNS,
            organism=organism,
            plain=False,
        )
        obs["tech_sample"] = tech_sample(obs)
        obs["label"] = obs["cell_type_ontology_term_id"].astype("category")
        outside_ontology = None
        if ontology is not None:  # before any count is read: a wrong ontology.source fails in seconds
            pairs = obs.drop_duplicates("label")
            outside_ontology = check_labels_in_ontology(
                obs["label"],
                ontology,
                filters.max_unknown_label_fraction,
                what=f"OOD datasets of census {ood_release} (primary cells of the kept assays)",
                names=dict(zip(pairs["label"], pairs["cell_type"].astype(str), strict=True)),
            )
        checks = census_count_checks(ood_release, raw_counts_are_integers(census))
        seen = obs["label"].isin(labels)
        # The cells of untrained labels as strings (a minority; their labels are renamed per cell below).
        novel = plain_strings(obs.loc[~seen].drop(columns=["is_primary_data"]))
        unseen = novel.groupby(["label", "cell_type"], observed=True).size()
        obs = obs.loc[seen].drop(columns=["is_primary_data"])
        obs["label_name"] = obs["cell_type"].astype("category")
        obs["label_index"] = label_indices(obs["label"], labels, f"OOD cells of census {ood_release}")
        ood_var = read_var(census, organism=organism)
        var_joinids, columns, missing = align_genes(store_genes["feature_id"], ood_var)
        in_sum, normalisation = None, None
        if settings.ood_genes == "gene_list":  # HCE's totals: every OOD gene whose symbol the list holds
            list_names = read_gene_list(settings.genes.source, ood_var)["feature_name"]
            var_joinids, columns, in_sum, normalisation = hce_normalisation_genes(
                var_joinids, columns, ood_var, list_names
            )
        read = CensusRead(
            var_joinids=var_joinids,
            columns=columns,
            n_genes=len(store_genes),
            target_sum=settings.target_sum,
            chunk_size=census_cfg.chunk_size,
            organism=organism,
            in_sum=in_sum,
        )
        store.write_genes(store_genes)
        n = write_split(
            ood_source,
            census,
            obs,
            read,
            store.split_dir(OOD_SPLIT),
            workers=census_cfg.build_workers or threads,
            checks=checks,
            resume_dir=resume / OOD_SPLIT,
        )
        release_pair = {
            "datasets": dataset_diff(train_datasets, ood_datasets),
            "assays": assay_diff(train_assays, release_assays(census), list(filters.assays)),
            "gene_zero_fill": zero_fill_report(store_genes, ood_var),
            "shared_feature_names": shared_feature_names(ood_var),
            "multi_valued_disease": multi_valued(pd.concat([obs["disease"], novel["disease"]])),
        }
        novel_meta = None
        if ontology is not None:
            novel_meta = _write_novel(census, novel, labels, ontology, read, store, checks)
        meta = {
            "train_release": train_release,
            "ood_release": ood_release,
            "n_new_datasets": int(len(added)),
            "new_dataset_ids": added["dataset_id"].tolist(),
            "n_datasets_with_cells": int(obs["dataset_id"].nunique()),
            "n_cells": {
                OOD_SPLIT: int(n),
                **({NOVEL_SPLIT: novel_meta["n_cells_scored"]} if novel_meta else {}),
            },
            "n_labels_present": int(obs["label"].nunique()),
            "n_cells_unseen_label": int(unseen.sum()),
            "unseen_labels": {f"{t} {name}": int(c) for (t, name), c in unseen.items()},
            "missing_gene_fraction": missing,
            "gene_alignment": name_alignment_check(store_genes, ood_var),
            "n_genes": int(len(store_genes)),
            # Raw counts of both splits checked as read (hcebench.data.checks); labels the ontology lacks.
            "data_checks": checks.zero_cell_report(filters.max_zero_cell_fraction),
            "labels_outside_ontology": outside_ontology,
            # What differs between the two releases (hcebench.data.releases): datasets new, removed and revised;
            # assays; store genes zero-filled; symbols several ids share; multi-valued diseases of the OOD cells.
            "release_pair": release_pair,
        }
        if novel_meta is not None:
            meta["novel"] = novel_meta
        if normalisation is not None:
            meta["normalisation_genes"] = normalisation
        store.write_meta(meta)
    shutil.rmtree(resume, ignore_errors=True)  # the set is whole: the kept work is done with
    return meta


def _write_novel(
    census,
    novel: pd.DataFrame,
    labels,
    ontology,
    read: CensusRead,
    store: StoreWriter,
    checks: CountChecks,
) -> dict:
    """Write the ``ood_novel`` split into ``store``, read as ``read`` says; return its counts (scored, dropped, per
    novel label)."""
    ancestor = nearest_trained_ancestors(sorted(novel["label"].unique()), labels, ontology)
    novel = novel.assign(novel_label=novel["label"], novel_label_name=novel["cell_type"].astype(str))
    novel["label"] = novel["novel_label"].map(ancestor)
    scorable = novel["label"].notna()
    per_label = {
        f"{t} {name}": {"n_cells": int(c), "nearest_trained_ancestor": ancestor[t] or ""}
        for (t, name), c in novel.groupby(["novel_label", "novel_label_name"], observed=True).size().items()
    }
    kept = novel.loc[scorable].copy()
    kept["label"] = kept["label"].astype(str)
    kept["label_name"] = kept["label"].map(ontology.name)
    kept["label_index"] = kept["label"].map({t: i for i, t in enumerate(labels)}).astype(np.int64)
    if len(kept):
        n = write_split_from_census(census, kept, read, store.split_dir(NOVEL_SPLIT), checks=checks)
    else:
        # An empty split keeps the obs columns, so predicting and scoring it yield empty tables, not errors.
        n = store.split_writer(NOVEL_SPLIT, read.n_genes).close(empty_obs=kept)
    return {
        "n_cells": int(len(novel)),
        "n_cells_scored": int(n),
        "n_cells_dropped": int((~scorable).sum()),
        "coverage": float(n / len(novel)) if len(novel) else float("nan"),
        "labels": per_label,
    }
