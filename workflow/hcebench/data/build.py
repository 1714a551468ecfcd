"""Building the training store from the census: the selected cells' train/val/test splits, genes and meta.

``build_training_store`` resolves the store's genes (``hcebench.data.genes``) and writes each split in scTab's
permuted cell order (``hcebench.data.selection.store_order``) with ``hcebench.data.workers.write_split``: the
census is read in soma_joinid-sorted chunks of ``census.chunk_size`` cells (``hcebench.data.reads``) and put in
the split's order through on-disk buckets (``hcebench.data.shuffle``), in one process or ``census.build_workers``.
A build survives a failure: each split's finished segments of reads are kept in ``<store>.partial/`` and a rerun
reads only what was not finished (``hcebench.data.workers.write_split_resumable``), giving the same bytes.
The store's files are ``hcebench.data.store``'s (``StoreWriter``). Every chunk of raw counts is checked as it is
read (``hcebench.data.checks.CountChecks``, named by the release: ``census_count_checks``); all-zero cells are
tallied per dataset, reported in the store's meta (``data_checks``) and an error past
``filters.max_zero_cell_fraction``.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd

from hcebench.data.census import census_release, open_census, raw_counts_are_integers, read_var
from hcebench.data.genes import gene_match_counts, read_gene_list, resolve_genes
from hcebench.data.reads import CensusRead, census_count_checks
from hcebench.data.selection import balanced_class_weights, label_indices, store_order
from hcebench.data.store import StoreWriter
from hcebench.data.workers import resume_dir, write_split
from hcebench.io import atomic_path
from hcebench.layout import STORE_SPLITS
from hcebench.settings import StoreSettings


def build_training_store(
    source: dict,
    cells: pd.DataFrame,
    labels: list[str],
    settings: StoreSettings,
    directory: str | os.PathLike,
    threads: int = 1,
) -> dict:
    """Write the training store (train/val/test splits of the selected cells) into ``directory`` atomically.

    Each split is written in scTab's order: its cells in soma_joinid order, permuted by one
    ``default_rng(settings.split_seed)`` for train, then val, then test (``store_order``), so consecutive
    rows, and hence each block a loader reads, are random cells of the split rather than runs of one dataset.
    With ``settings.row_multiple`` > 1 each split keeps the first ``(n // row_multiple) * row_multiple`` cells of
    that order (scTab's truncation); the class weights still count every training cell of the selection, as
    scTab's (computed before its truncation) do.
    ``threads`` is the number of reading processes when ``census.build_workers`` is null (the job's threads).
    """
    census_cfg, genes_cfg, seed = settings.census, settings.genes, settings.split_seed
    resume = resume_dir(directory)
    cells = cells.sort_values("soma_joinid", kind="stable").reset_index(drop=True)  # the release's order
    order = store_order(cells["split"], seed, settings.row_multiple)
    with (
        open_census(source, chunk_size=census_cfg.chunk_size) as census,
        atomic_path(directory, is_dir=True) as tmp,
    ):
        store = StoreWriter(tmp)
        release = census_release(source, census)
        checks = census_count_checks(release, raw_counts_are_integers(census))
        var = read_var(census, organism=census_cfg.organism)
        genes = resolve_genes(genes_cfg.source, var, match=genes_cfg.match, order=genes_cfg.order)
        joinid_of = var.set_index("feature_id")["soma_joinid"]
        read = CensusRead(
            var_joinids=joinid_of.loc[genes["feature_id"]].to_numpy(np.int64),
            columns=np.arange(len(genes)),
            n_genes=len(genes),
            target_sum=settings.target_sum,
            chunk_size=census_cfg.chunk_size,
            organism=census_cfg.organism,
        )
        store.write_genes(genes)
        counts = {}
        keep = [c for c in cells.columns if c != "is_primary_data"]
        for split in STORE_SPLITS:
            obs = cells.iloc[order[split]][keep].reset_index(drop=True)
            obs["label_index"] = label_indices(obs["label"], labels, f"the {split} cells of the selection")
            counts[split] = write_split(
                source,
                census,
                obs,
                read,
                store.split_dir(split),
                workers=census_cfg.build_workers or threads,
                checks=checks,
                resume_dir=resume / split,
            )
        data_checks = checks.zero_cell_report(settings.max_zero_cell_fraction)
        train_y = label_indices(cells.loc[cells["split"] == "train", "label"], labels, "the selection")
        weights = balanced_class_weights(train_y, len(labels))
        store.write_class_weights(weights)
        meta = {
            "census_release": release,
            "n_genes": int(len(genes)),
            "labels": list(labels),
            "n_cells": counts,
            "labels_without_training_cells": [labels[i] for i in np.flatnonzero(weights == 0)],
            "target_sum": settings.target_sum,
            # scTab's on-disk order: each split's cells permuted with default_rng(split_seed), train, val, test.
            "cell_order": "permuted",
            "split_seed": int(seed),
            # split.row_multiple > 1 only (so a store that keeps every cell has the meta it always had).
            **(
                {
                    "row_multiple": int(settings.row_multiple),
                    "cells_dropped_by_row_multiple": {
                        s: int((cells["split"] == s).sum()) - counts[s] for s in STORE_SPLITS
                    },
                }
                if settings.row_multiple > 1
                else {}
            ),
            "genes_source": genes_cfg.source,
            "genes_match": genes_cfg.match,
            "genes_order": genes_cfg.order,
            # Both rules' counts, always: the paper's 19,331 is scTab's feature_name match on Census 2023-05-15.
            "genes_matched": gene_match_counts(read_gene_list(genes_cfg.source, var), var),
            # Raw counts checked as read (hcebench.data.checks): all-zero cells per dataset, and the limit.
            "data_checks": data_checks,
        }
        store.write_meta(meta)
    shutil.rmtree(resume, ignore_errors=True)  # the store is whole: the kept work is done with
    return meta
