"""A simulated census in the real CELLxGENE Census SOMA layout, in two releases.

``simulate_census`` writes ``out_dir/<train_release>/`` and ``out_dir/<ood_release>/``, each a tiledbsoma
Collection laid out like a Census release and opened with ``cellxgene_census.open_soma(uri=...)``:

    census_info/summary               label, value (census_schema_version, census_build_date, ...)
    census_info/datasets              collection_id, ..., dataset_id, ..., dataset_total_cell_count
    census_info/summary_cell_counts   organism, category, label, ontology_term_id, total/unique_cell_count
    census_data/homo_sapiens          Experiment: obs (Census obs columns), ms/RNA/{var, X/raw}

plus, beside the releases, ``ground_truth_<release>.parquet`` (each cell's true leaf type and recorded
label) and ``manifest.json``.

The mechanism the benchmark is about is built in, not tuned in:

* Labels come from a real Cell Ontology sub-DAG (``label_universe``). Every cell is of a *leaf* type of
  that sub-DAG; its expression is a baseline plus the gene program of every ancestor of the leaf within
  the universe (both parents where CL has two), so subtypes carry their ancestors' signal and siblings
  differ only by their own, weaker, programs.
* Every dataset has its own batch shift, donors, assay, tissue, disease, composition and annotation
  granularity: per lineage it records the leaf or stops at a coarser ancestor (a depth cap), and for
  multi-parent terms it follows its own naming convention. One biological type therefore appears under
  labels at several depths, which is the ambiguity hierarchical losses address.
* The newer release holds every dataset of the older one (same dataset ids and counts, new joinids and
  a different gene order with a few genes dropped and added) plus new datasets: new batches, a coarser
  granularity mix, types the older release lacks, Smart-seq2 studies and a non-primary re-upload of
  cells already present, which the paper's filters must remove.
* Later Census releases (schema 2.4.0) can be rehearsed: revised datasets (a new ``dataset_version_id``), symbols
  shared by several genes, diseases joined by ``" || "`` and primary cells listed twice (``SCHEMA_2_4_KNOBS``, each
  off by default, when the census is the one written without them).

Everything is drawn from numpy generators keyed by ``(seed, purpose, dataset, block)``, so the content
is a pure function of the configuration and does not depend on write batching.

The package, lowest module first (each imports only those above it):

    vocabulary   ontology ids of assays, tissues, diseases, ...; the default label universe and leaf table
    settings     SimulationConfig: every knob, and its validation
    universe     Universe / build_universe: the label sub-DAG of the Cell Ontology
    plan         DatasetPlan / plan_datasets: every dataset of both releases
    expression   Biology / make_biology, DatasetSampler: gene programs and cells drawn block by block
    writer       Census schemas, create_release, write_dataframe, ReleaseWriter: the SOMA writer
    __init__     simulate_census, which ties them together; the public names of all of them are re-exported
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hcebench.data.simulate.expression import BLOCK, Biology, DatasetSampler, make_biology
from hcebench.data.simulate.plan import DatasetPlan, coarse_train_studies, plan_datasets
from hcebench.data.simulate.settings import SimulationConfig
from hcebench.data.simulate.universe import Universe, build_universe
from hcebench.data.simulate.vocabulary import (
    ASSAYS,
    DEFAULT_UNIVERSE,
    DEV_STAGES,
    DISEASES,
    ETHNICITIES,
    INTERFERON_DISEASES,
    LEAF_TABLE,
    NATIVE_CELL,
    ORGANISM,
    SEXES,
    TISSUE_DISEASES,
    TISSUES,
)
from hcebench.data.simulate.writer import (
    COUNT_CATEGORIES,
    COUNTS_SCHEMA,
    DATASETS_SCHEMA,
    DATASETS_SCHEMA_NEWER,
    GROUND_TRUTH_SCHEMA,
    OBS_SCHEMA,
    SUMMARY_SCHEMA,
    VAR_SCHEMA,
    ReleaseWriter,
    create_release,
    sparse_counts,
    write_dataframe,
)
from hcebench.hierarchy.ontology import Ontology
from hcebench.io import atomic_path, write_json

__all__ = [
    "ASSAYS",
    "BLOCK",
    "Biology",
    "COUNTS_SCHEMA",
    "COUNT_CATEGORIES",
    "DATASETS_SCHEMA",
    "DATASETS_SCHEMA_NEWER",
    "DEFAULT_UNIVERSE",
    "DEV_STAGES",
    "DISEASES",
    "DatasetPlan",
    "DatasetSampler",
    "ETHNICITIES",
    "GROUND_TRUTH_SCHEMA",
    "INTERFERON_DISEASES",
    "LEAF_TABLE",
    "MULTI_VALUE",
    "NATIVE_CELL",
    "OBS_SCHEMA",
    "ORGANISM",
    "ReleaseWriter",
    "SCHEMA_2_4_KNOBS",
    "SEXES",
    "SUMMARY_SCHEMA",
    "SimulationConfig",
    "TISSUES",
    "TISSUE_DISEASES",
    "Universe",
    "VAR_SCHEMA",
    "build_universe",
    "coarse_train_studies",
    "create_release",
    "default_genes",
    "make_biology",
    "multi_disease",
    "plan_datasets",
    "simulate_census",
    "write_dataframe",
]

log = logging.getLogger(__name__)

#: SimulationConfig fields of Census schema 2.4.0's conventions; left out of the manifest while 0.
SCHEMA_2_4_KNOBS = (
    "n_revised_datasets",
    "n_shared_feature_names",
    "n_multi_disease_datasets",
    "n_duplicate_primary_cells",
)


def _obs_meta(
    plan: DatasetPlan, src: DatasetPlan, u: Universe, leaf_terms: np.ndarray, donor: np.ndarray
) -> pd.DataFrame:
    """Census obs columns (bar joinid and count statistics) for cells of ``plan`` drawn by ``src``.

    ``src`` is ``plan`` itself except for a re-upload, whose cells keep their source's assay, tissue
    and donors but carry the re-upload's dataset id, labels and ``is_primary_data``.
    """
    n = len(leaf_terms)
    labels = np.array([plan.label_of[t] for t in leaf_terms], dtype=object)
    disease = np.array([src.donors[i]["disease"] for i in donor], dtype=object)
    if plan.multi_disease:
        disease[np.asarray(donor) == 0] = multi_disease(src.donors[0]["disease"])
    names = np.array([u.names[t] for t in labels], dtype=object)
    dcol = {k: np.array([src.donors[i][k] for i in donor], dtype=object) for k in src.donors[0]}
    tissue_id, general, general_id = TISSUES[src.tissue]

    def const(v: str) -> np.ndarray:
        return np.full(n, v, dtype=object)

    return pd.DataFrame(
        {
            "dataset_id": const(plan.dataset_id),
            "assay": const(src.assay),
            "assay_ontology_term_id": const(ASSAYS[src.assay][0]),
            "cell_type": names,
            "cell_type_ontology_term_id": labels,
            "development_stage": dcol["development_stage"],
            "development_stage_ontology_term_id": np.array(
                [DEV_STAGES[s] for s in dcol["development_stage"]], dtype=object
            ),
            "disease": disease,
            "disease_ontology_term_id": np.array(
                [MULTI_VALUE.join(DISEASES[d] for d in s.split(MULTI_VALUE)) for s in disease], dtype=object
            ),
            "donor_id": dcol["donor_id"],
            "is_primary_data": np.full(n, plan.is_primary),
            "self_reported_ethnicity": dcol["self_reported_ethnicity"],
            "self_reported_ethnicity_ontology_term_id": np.array(
                [ETHNICITIES[s] for s in dcol["self_reported_ethnicity"]], dtype=object
            ),
            "sex": dcol["sex"],
            "sex_ontology_term_id": np.array([SEXES[s] for s in dcol["sex"]], dtype=object),
            "suspension_type": const(src.suspension_type),
            "tissue": const(src.tissue),
            "tissue_ontology_term_id": const(tissue_id),
            "tissue_general": const(general),
            "tissue_general_ontology_term_id": const(general_id),
        }
    )


#: How Census schema 2.4.0 joins several values of one obs field (disease): "A || B".
MULTI_VALUE = " || "


def multi_disease(disease: str) -> str:
    """Two diseases joined as schema 2.4.0 joins them: ``disease`` (if not normal) and the first other disease of
    ``DISEASES``, in alphabetical order."""
    others = sorted(d for d in DISEASES if d not in ("normal", disease))
    pair = [disease, others[0]] if disease != "normal" else others[:2]
    return MULTI_VALUE.join(sorted(pair))


def default_genes() -> pd.DataFrame:
    """The bundled reference gene list (Ensembl id index, ``gene_names`` column)."""
    return pd.read_parquet(
        str(resources.files("hcebench") / "resources" / "sctab_features_protein_coding.parquet")
    )


def _pick_genes(
    cfg: SimulationConfig, genes: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Union gene ids/names, and the older and newer releases' columns into that union (in var order)."""
    if "gene_names" not in genes.columns:
        raise ValueError(
            "genes must have a 'gene_names' column and an Ensembl-id index (the bundled parquet)"
        )
    if cfg.n_genes_dropped > cfg.n_genes:
        raise ValueError(f"n_genes_dropped ({cfg.n_genes_dropped}) exceeds n_genes ({cfg.n_genes})")
    need = cfg.n_genes + cfg.n_genes_added
    if need > len(genes):
        raise ValueError(f"n_genes + n_genes_added = {need} exceeds the {len(genes)} genes available")
    rng = np.random.default_rng([cfg.seed, 0])
    pick = rng.choice(len(genes), size=need, replace=False)
    ids = genes.index.to_numpy(dtype=object)[pick].astype(str)
    names = genes["gene_names"].to_numpy(dtype=object)[pick].astype(str)
    old_cols = np.arange(cfg.n_genes)
    dropped = rng.choice(cfg.n_genes, size=cfg.n_genes_dropped, replace=False)
    kept = np.setdiff1d(old_cols, dropped)
    new_cols = rng.permutation(np.concatenate([kept, np.arange(cfg.n_genes, need)]))
    return ids.astype(object), names.astype(object), old_cols, new_cols


def simulate_census(
    out_dir: str | Path,
    cfg: SimulationConfig,
    ontology: Ontology,
    genes: pd.DataFrame | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Write both releases, their ground truth and ``manifest.json`` into ``out_dir``; return the manifest.

    ``genes`` is the reference list to draw genes from (Ensembl-id index, ``gene_names`` column); None
    means the bundled scTab protein-coding list. ``out_dir`` is replaced atomically: it appears only
    once everything is written. Cells are generated and written dataset by dataset in batches of at most
    ``cfg.write_batch_nnz`` nonzeros, so memory does not grow with the number of cells. ``workers`` processes draw
    the cells (``drawn``); the census is the same for any number of them.
    """
    t_start = time.perf_counter()
    cfg.validate()
    if genes is None:
        genes = default_genes()
    u = build_universe(ontology, cfg.label_universe)
    unknown = [t for t in cfg.ood_only_types if t not in u.leaves]
    if unknown:
        raise ValueError(f"ood_only_types {unknown} are not leaves of the label universe")
    gene_ids, gene_names, old_cols, new_cols = _pick_genes(cfg, genes)
    bio = make_biology(cfg, u, gene_ids, gene_names)
    plans = plan_datasets(cfg, u)
    train = [p for p in plans if p.first_release == "train"]
    # Census releases order cells by dataset; sorting by id gives each release its own joinids.
    order = {
        "train": sorted(train, key=lambda p: p.dataset_id),
        "ood": sorted(plans, key=lambda p: p.dataset_id),
    }
    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        writers = {
            "train": ReleaseWriter(
                tmp / cfg.train_release,
                cfg.train_release,
                old_cols,
                sum(p.n_cells for p in train),
                cfg,
                version_ids=cfg.n_revised_datasets > 0,
            ),
            "ood": ReleaseWriter(
                tmp / cfg.ood_release,
                cfg.ood_release,
                new_cols,
                sum(p.n_cells for p in plans),
                cfg,
                newer_schema=cfg.newer_schema,
                version_ids=cfg.n_revised_datasets > 0,
                shared_feature_names=cfg.n_shared_feature_names,
            ),
        }
        # Generate each dataset once and hand it to every release that contains it. Both releases order
        # datasets by id, so the older release's order is a subsequence of the newer one's.
        samplers = {p.index: DatasetSampler(cfg, u, bio, p) for p in plans if p.kind != "duplicate"}
        var_cols = {"train": old_cols, "ood": new_cols}
        tasks = draw_tasks(order["ood"], samplers)
        done_rows: dict[int, int] = {}
        t_gen = 0.0
        for (plan, task), cells in zip(tasks, drawn(tasks, samplers, var_cols, workers), strict=True):
            t0 = time.perf_counter()
            src = samplers[task.source]
            leaf_terms = np.array([src.leaves[i] for i in cells["leaf"]], dtype=object)
            meta = _obs_meta(plan, src.plan, u, leaf_terms, cells["donor"])
            done = done_rows.get(plan.index, 0)  # rows of the dataset written so far
            if plan.primary_rows > done:  # duplicate primary cells: the re-upload's first rows
                primary = meta["is_primary_data"].to_numpy().copy()
                primary[: plan.primary_rows - done] = True
                meta["is_primary_data"] = primary
            done_rows[plan.index] = done + len(meta)
            names = np.array([u.names[t] for t in leaf_terms], dtype=object)
            truth = np.stack([leaf_terms, names], axis=1)
            t_gen += time.perf_counter() - t0 + cells["seconds"]
            for k in task.releases:
                writers[k].add(meta, cells["coo"][k], truth)
        releases = {}
        for k, date in (("train", cfg.train_release), ("ood", cfg.ood_release)):
            releases[date] = writers[k].finish(order[k], bio, date)
        manifest = _manifest(cfg, u, ontology, plans, releases)
        write_json(tmp / "manifest.json", manifest)
        seconds = time.perf_counter() - t_start
        log.info(
            "simulated census: %s cells in %.1f s (%.1f s drawing, over %d process(es); %.1f s writing)",
            {r: v["n_cells"] for r, v in releases.items()},
            seconds,
            t_gen,
            workers,
            sum(w.seconds_writing for w in writers.values()),
        )
    return manifest


@dataclass(frozen=True)
class DrawTask:
    """Cells to draw: block ``block`` of dataset ``source``'s sampler, or its rows ``rows`` (a re-upload's copies),
    for the releases named (``"train"``, ``"ood"``)."""

    source: int
    block: int | None
    rows: np.ndarray | None
    releases: tuple[str, ...]


def draw_tasks(
    plans: list[DatasetPlan], samplers: dict[int, DatasetSampler]
) -> list[tuple[DatasetPlan, DrawTask]]:
    """Every block of cells of ``plans`` in write order, each with the plan whose rows they become."""
    tasks = []
    for plan in plans:
        releases = ("train", "ood") if plan.first_release == "train" else ("ood",)
        if plan.kind == "duplicate":
            tasks += [(plan, DrawTask(src, None, rows, releases)) for src, rows in plan.sources]
        else:
            blocks = range(samplers[plan.index].n_blocks)
            tasks += [(plan, DrawTask(plan.index, b, None, releases)) for b in blocks]
    return tasks


#: What a drawing process needs besides its task: the samplers and each release's genes (``drawn`` sets it before
#: the processes are forked, so they inherit it instead of receiving it with every task).
_DRAW_STATE: dict[str, Any] = {}


def draw(task: DrawTask) -> dict[str, Any]:
    """The cells of ``task``: leaf and donor indices, their counts as each release's COO (``sparse_counts``) and the
    seconds it took."""
    t0 = time.perf_counter()
    sampler = _DRAW_STATE["samplers"][task.source]
    cells = sampler.block(task.block) if task.rows is None else sampler.rows(task.rows)
    counts = cells.pop("counts")
    cells["coo"] = {k: sparse_counts(counts, _DRAW_STATE["var_cols"][k]) for k in task.releases}
    cells["seconds"] = time.perf_counter() - t0
    return cells


def drawn(
    tasks: list[tuple[DatasetPlan, DrawTask]],
    samplers: dict[int, DatasetSampler],
    var_cols: dict[str, np.ndarray],
    workers: int,
) -> Iterator[dict[str, Any]]:
    """``draw`` of every task, in order, by ``workers`` forked processes (or this one, for 1).

    At most two tasks per worker are in flight, so memory is bounded by the blocks, not the census. Every task's
    cells are a pure function of its own generator keys, so the result does not depend on ``workers``.
    """
    _DRAW_STATE.update(samplers=samplers, var_cols=var_cols)
    try:
        if workers <= 1:
            for _, task in tasks:
                yield draw(task)
            return
        # Forked, not spawned: a Snakemake script has no main guard, and the samplers are inherited, not pickled.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            queued = iter(task for _, task in tasks)
            pending = deque(pool.apply_async(draw, (task,)) for task in itertools.islice(queued, 2 * workers))
            while pending:
                cells = pending.popleft().get()
                task = next(queued, None)
                if task is not None:
                    pending.append(pool.apply_async(draw, (task,)))
                yield cells
    finally:
        _DRAW_STATE.clear()


def _manifest(
    cfg: SimulationConfig, u: Universe, ontology: Ontology, plans: list[DatasetPlan], releases: dict[str, Any]
) -> dict[str, Any]:
    config = asdict(cfg)
    sweep = cfg.coarse_study_share is not None
    if not sweep:
        # Unset, the knob changes nothing; leaving it out keeps the manifests of earlier censuses byte for byte.
        del config["coarse_study_share"]
    for knob in SCHEMA_2_4_KNOBS:  # the same for the schema-2.4.0 knobs at 0
        if not config[knob]:
            del config[knob]
    return {
        "generator": "hcebench.data.simulate",
        "seed": cfg.seed,
        "config": config,
        "train_release": cfg.train_release,
        "ood_release": cfg.ood_release,
        "releases": releases,
        "n_cells": {r: v["n_cells"] for r, v in releases.items()},
        "n_datasets": {r: v["n_datasets"] for r, v in releases.items()},
        "n_genes": {r: v["n_genes"] for r, v in releases.items()},
        "cl_release": ontology.release,
        "label_universe": [
            {
                "term_id": t,
                "name": u.names[t],
                "parents": u.parents[t],
                "level": u.level[t],
                "is_leaf": t in u.leaves,
                "n_cl_is_a_ancestors": u.n_cl_ancestors[t],
            }
            for t in u.terms
        ],
        "datasets": [
            {
                "dataset_id": p.dataset_id,
                "first_release": cfg.train_release if p.first_release == "train" else cfg.ood_release,
                "kind": p.kind,
                "assay": p.assay,
                "tissue": p.tissue,
                "suspension_type": p.suspension_type,
                "is_primary_data": p.is_primary,
                **({"primary_rows": p.primary_rows} if p.primary_rows else {}),
                **({"revision": p.revision} if p.revision != 1 else {}),
                **({"multi_disease": True} if p.multi_disease else {}),
                "n_cells": p.n_cells,
                "n_donors": len(p.donors),
                "granularity_caps": {u.names[k]: v for k, v in sorted(p.caps.items())},
                **({"coarse_annotation": p.coarse} if sweep else {}),
                "labels": sorted({u.names[v] for k, v in p.label_of.items() if k in p.composition}),
            }
            for p in plans
        ],
    }
