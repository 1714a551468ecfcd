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

Everything is drawn from numpy generators keyed by ``(seed, purpose, dataset, block)``, so the content
is a pure function of the configuration and does not depend on write batching.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .io import atomic_path, write_json
from .ontology import Ontology, OntologyError

log = logging.getLogger(__name__)

NATIVE_CELL = "CL:0000003"
ORGANISM = "homo_sapiens"
#: Cells drawn per random stream: fixed so that the content is independent of how writes are batched.
BLOCK = 1024

# -- vocabularies (real ontology ids) --------------------------------------------------------------
#: assay -> (EFO id, median UMIs per cell genome-wide, log-sd of UMIs per cell, is one of the paper's 10x assays)
ASSAYS: dict[str, tuple[str, float, float, bool]] = {
    "10x 3' v1": ("EFO:0009901", 1800.0, 0.55, True),
    "10x 3' v2": ("EFO:0009899", 2800.0, 0.55, True),
    "10x 3' v3": ("EFO:0009922", 5500.0, 0.55, True),
    "10x 5' v1": ("EFO:0011025", 3200.0, 0.55, True),
    "10x 5' v2": ("EFO:0009900", 4500.0, 0.55, True),
    "10x 3' transcription profiling": ("EFO:0030003", 4000.0, 0.55, True),
    "10x 5' transcription profiling": ("EFO:0030004", 4000.0, 0.55, True),
    # Smart-seq2 counts reads, not UMIs: far larger totals and gene-length bias.
    "Smart-seq2": ("EFO:0008931", 400000.0, 0.7, False),
}
#: tissue -> (UBERON id, tissue_general, tissue_general UBERON id)
TISSUES: dict[str, tuple[str, str, str]] = {
    "blood": ("UBERON:0000178", "blood", "UBERON:0000178"),
    "lung": ("UBERON:0002048", "lung", "UBERON:0002048"),
    "upper lobe of left lung": ("UBERON:0008952", "lung", "UBERON:0002048"),
    "bone marrow": ("UBERON:0002371", "bone marrow", "UBERON:0002371"),
    "spleen": ("UBERON:0002106", "spleen", "UBERON:0002106"),
    "lymph node": ("UBERON:0000029", "lymph node", "UBERON:0000029"),
}
DISEASES: dict[str, str] = {
    "normal": "PATO:0000461",
    "COVID-19": "MONDO:0100096",
    "systemic lupus erythematosus": "MONDO:0007915",
    "lung adenocarcinoma": "MONDO:0005061",
    "chronic obstructive pulmonary disease": "MONDO:0005002",
}
#: tissue_general -> (disease, probability that a dataset of that tissue studies it)
TISSUE_DISEASES: dict[str, list[tuple[str, float]]] = {
    "blood": [("COVID-19", 0.2), ("systemic lupus erythematosus", 0.1)],
    "lung": [
        ("COVID-19", 0.15),
        ("lung adenocarcinoma", 0.1),
        ("chronic obstructive pulmonary disease", 0.1),
    ],
}
#: diseases that switch on the interferon-response state program
INTERFERON_DISEASES = ("COVID-19", "systemic lupus erythematosus")
SEXES = {"female": "PATO:0000383", "male": "PATO:0000384", "unknown": "unknown"}
ETHNICITIES = {
    "European": "HANCESTRO:0005",
    "Asian": "HANCESTRO:0008",
    "African": "HANCESTRO:0010",
    "Hispanic or Latin American": "HANCESTRO:0014",
    "unknown": "unknown",
}
DEV_STAGES = {"human adult stage": "HsapDv:0000087", "unknown": "unknown"}

#: The default label universe: 36 CL v2022-09-15 terms over immune, epithelial, endothelial and stromal
#: branches. Multi-parent terms: naive / memory CD4 and CD8 alpha-beta T cells (CD4|CD8 and naive|memory
#: T cell). "pneumocyte" (7 is_a ancestors) and "fibroblast" (6) are labels the paper's ">7 ancestors"
#: filter drops; "hematopoietic cell" and "epithelial cell" are roots that only shape expression.
DEFAULT_UNIVERSE: tuple[str, ...] = (
    "CL:0000988",  # hematopoietic cell
    "CL:0000738",  # leukocyte
    "CL:0000542",  # lymphocyte
    "CL:0000084",  # T cell
    "CL:0000624",  # CD4-positive, alpha-beta T cell
    "CL:0000625",  # CD8-positive, alpha-beta T cell
    "CL:0000898",  # naive T cell
    "CL:0000813",  # memory T cell
    "CL:0000895",  # naive thymus-derived CD4-positive, alpha-beta T cell
    "CL:0000897",  # CD4-positive, alpha-beta memory T cell
    "CL:0000900",  # naive thymus-derived CD8-positive, alpha-beta T cell
    "CL:0000909",  # CD8-positive, alpha-beta memory T cell
    "CL:0000798",  # gamma-delta T cell
    "CL:0000940",  # mucosal invariant T cell
    "CL:0000236",  # B cell
    "CL:0000788",  # naive B cell
    "CL:0000787",  # memory B cell
    "CL:0000786",  # plasma cell
    "CL:0000623",  # natural killer cell
    "CL:0000766",  # myeloid leukocyte
    "CL:0000576",  # monocyte
    "CL:0000860",  # classical monocyte
    "CL:0000875",  # non-classical monocyte
    "CL:0000235",  # macrophage
    "CL:0000451",  # dendritic cell
    "CL:0000784",  # plasmacytoid dendritic cell
    "CL:0000990",  # conventional dendritic cell
    "CL:0000097",  # mast cell
    "CL:0000066",  # epithelial cell
    "CL:0000322",  # pneumocyte
    "CL:0002063",  # type II pneumocyte
    "CL:0002062",  # type I pneumocyte
    "CL:0000115",  # endothelial cell
    "CL:0002144",  # capillary endothelial cell
    "CL:0002138",  # endothelial cell of lymphatic vessel
    "CL:0000057",  # fibroblast
)

_IMMUNE_TISSUES = ("blood", "lung", "bone marrow", "spleen", "lymph node")
#: leaf -> (relative abundance, tissue_generals where it occurs). Leaves absent here get 0.02 everywhere.
LEAF_TABLE: dict[str, tuple[float, tuple[str, ...]]] = {
    "CL:0000895": (0.12, ("blood", "bone marrow", "spleen", "lymph node")),
    "CL:0000897": (0.10, _IMMUNE_TISSUES),
    "CL:0000900": (0.05, ("blood", "bone marrow", "spleen", "lymph node")),
    "CL:0000909": (0.07, _IMMUNE_TISSUES),
    "CL:0000798": (0.015, ("blood", "lung", "spleen")),
    "CL:0000940": (0.004, ("blood", "lung")),  # rare: the cell-count filter should drop it
    "CL:0000788": (0.06, _IMMUNE_TISSUES),
    "CL:0000787": (0.04, _IMMUNE_TISSUES),
    "CL:0000786": (0.01, _IMMUNE_TISSUES),
    "CL:0000623": (0.06, _IMMUNE_TISSUES),
    "CL:0000860": (0.15, ("blood", "lung", "bone marrow", "spleen")),
    "CL:0000875": (0.03, ("blood", "lung", "bone marrow", "spleen")),
    "CL:0000235": (0.12, ("lung", "bone marrow", "spleen", "lymph node")),
    "CL:0000784": (0.008, _IMMUNE_TISSUES),
    "CL:0000990": (0.015, _IMMUNE_TISSUES),
    "CL:0000097": (0.03, ("lung",)),
    "CL:0002063": (0.15, ("lung",)),
    "CL:0002062": (0.05, ("lung",)),
    "CL:0002144": (0.08, ("lung", "spleen")),
    "CL:0002138": (0.015, ("lung", "lymph node")),
    "CL:0000057": (0.06, ("lung", "spleen", "lymph node", "bone marrow")),
}


@dataclass
class SimulationConfig:
    """Every knob of the simulated census; the defaults give the demo (~44k cells in the older release)."""

    seed: int = 0  # all randomness derives from it: same seed and config, same census content
    train_release: str = "2023-05-15"  # older release: training data (the paper's Census release)
    ood_release: str = "2023-12-15"  # newer release: its extra datasets are the out-of-distribution set
    census_schema_version: str = "1.0.0"  # recorded in census_info/summary, as in Census 2023-05-15
    label_universe: tuple[str, ...] = DEFAULT_UNIVERSE  # CL terms; cells are of its leaves
    ood_only_types: tuple[str, ...] = ("CL:0000097",)  # leaves the older release never contains (mast cell)
    # genes
    n_genes: int = 2000  # genes in the older release, drawn from the reference protein-coding list
    n_genes_dropped: int = 25  # older-release genes the newer release lacks (zero-filled on alignment)
    n_genes_added: int = 25  # genes only the newer release has (ignored on alignment)
    # datasets and cells
    n_train_datasets: int = 32  # datasets in the older release (tech_samples ~ 4x this)
    n_ood_datasets: int = 8  # new primary 10x datasets in the newer release
    n_ood_smartseq_datasets: int = 2  # new Smart-seq2 datasets: the assay filter must drop them
    n_ood_duplicate_datasets: int = 1  # non-primary re-uploads of older cells: is_primary_data drops them
    cells_per_dataset: tuple[int, int] | None = None  # [min, max]: dataset sizes uniform in this range
    cells_per_dataset_median: int = 1200  # otherwise sizes are lognormal around this median
    cells_per_dataset_sigma: float = 0.6  # log-sd of dataset size: a few large studies, many small ones
    min_cells_per_dataset: int = 150  # no dataset smaller than this
    smartseq_cells_fraction: float = 0.25  # Smart-seq2 studies are plate-based, hence smaller
    duplicate_source_datasets: int = 3  # older datasets a re-upload copies cells from
    duplicate_cell_fraction: float = 0.4  # share of each source dataset's cells copied
    donors_per_dataset: tuple[int, int] = (2, 6)  # inclusive range of donors per dataset
    type_presence: float = 0.8  # chance that a type possible in a tissue occurs in a given dataset
    composition_sd: float = 0.8  # log-sd of per-dataset type proportions around the tissue's abundances
    # annotation granularity: weights of stopping k = 0, 1, 2, 3 levels above the finest level per lineage
    granularity_train: tuple[float, ...] = (0.6, 0.25, 0.1, 0.05)  # most older studies annotate finely
    granularity_ood: tuple[float, ...] = (0.3, 0.3, 0.25, 0.15)  # newer studies: a coarser mix
    alternate_parent: float = 0.25  # chance a dataset coarsens a multi-parent term to its other parent
    # expression
    baseline_sd: float = 2.0  # log-sd of baseline gene expression: heavy-tailed, a few genes dominate
    program_genes: int = 60  # genes in a root type's program
    program_genes_decay: float = 0.7  # each level down the DAG, programs cover this fraction as many genes
    min_program_genes: int = 8  # no program smaller than this
    program_lfc: float = 2.0  # mean log-fold change of a root program's genes
    program_lfc_decay: float = 0.8  # each level down, programs are this much weaker: siblings are close
    program_down_fraction: float = 0.2  # share of program genes that go down rather than up
    identity_sd: float = 0.35  # per-cell log-sd of each program's activity: cells vary within a type
    state_programs: int = 3  # shared programs (interferon response, cycling, stress) across all types
    state_lfc: float = 1.2  # mean log-fold change of state-program genes
    batch_sd: float = 0.35  # per-dataset per-gene log shift: the batch effect
    donor_sd: float = 0.15  # per-donor per-gene log shift
    assay_sd: float = 0.25  # per-assay per-gene log shift (chemistry), shared by all datasets of the assay
    nucleus_sd: float = 0.5  # per-gene log shift of single-nucleus data
    nucleus_fraction: float = 0.15  # chance a solid-tissue 10x dataset is single-nucleus
    ambient_max: float = 0.08  # per-dataset ambient RNA fraction, uniform on [0, this]
    inverse_dispersion: float = 4.0  # negative-binomial shape: biological overdispersion of counts
    # share of a cell's UMIs that fall on the simulated genes: they stand for the informative, variable
    # part of the transcriptome (a 2,000-gene panel); use ~0.95 with the full protein-coding list
    panel_umi_fraction: float = 0.3
    # schema: the newer release carries X/normalized and census_info/datasets.dataset_version_id, as Census
    # 2023-12-15 does; the older carries neither, as 2023-05-15. Readers must cope with both.
    newer_schema: bool = True
    # writing
    write_batch_nnz: int = (
        5_000_000  # nonzeros buffered per release before a write: bounds memory (~16 B each)
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field for settings that cannot describe a census."""

        def bad(name: str, why: str) -> None:
            raise ValueError(
                f"SimulationConfig.{name} = {getattr(self, name)!r}: {why} (census.simulate.{name})"
            )

        if self.train_release == self.ood_release:
            bad("ood_release", "must differ from train_release")
        for name in (
            "n_genes",
            "n_train_datasets",
            "cells_per_dataset_median",
            "min_cells_per_dataset",
            "write_batch_nnz",
        ):
            if getattr(self, name) < 1:
                bad(name, "must be at least 1")
        for name in (
            "n_genes_dropped",
            "n_genes_added",
            "n_ood_datasets",
            "n_ood_smartseq_datasets",
            "n_ood_duplicate_datasets",
            "state_programs",
        ):
            if getattr(self, name) < 0:
                bad(name, "must not be negative")
        if self.n_genes_dropped >= self.n_genes:
            bad("n_genes_dropped", "must be smaller than n_genes")
        if self.cells_per_dataset is not None:
            lo, hi = self.cells_per_dataset
            if not 1 <= lo <= hi:
                bad("cells_per_dataset", "must be [min, max] with 1 <= min <= max")
        lo, hi = self.donors_per_dataset
        if not 1 <= lo <= hi:
            bad("donors_per_dataset", "must be [min, max] with 1 <= min <= max")
        for name in ("granularity_train", "granularity_ood"):
            w = getattr(self, name)
            if not w or min(w) < 0 or sum(w) <= 0:
                bad(
                    name,
                    "must be non-negative weights for stopping 0, 1, 2, ... levels above the leaf, not all zero",
                )
        for name in (
            "type_presence",
            "alternate_parent",
            "nucleus_fraction",
            "duplicate_cell_fraction",
            "panel_umi_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, "must lie in [0, 1]")
        if self.inverse_dispersion <= 0:
            bad("inverse_dispersion", "must be positive")


# -- the label universe ----------------------------------------------------------------------------
@dataclass
class Universe:
    """The label sub-DAG: terms, their parents within it, levels, and the leaves cells are drawn from."""

    terms: list[str]
    names: dict[str, str]
    parents: dict[str, list[str]]  # direct is_a parents within the universe, primary first
    level: dict[str, int]  # longest is_a path from a root of the universe
    leaves: list[str]
    ancestors: dict[str, list[str]]  # reflexive ancestors within the universe, sorted by level
    n_cl_ancestors: dict[str, int]  # is_a ancestors in the whole of CL (the paper's depth filter)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}


def build_universe(ontology: Ontology, terms: tuple[str, ...] | list[str]) -> Universe:
    """Restrict CL to ``terms``: direct parents are the transitive reduction of is_a within the set."""
    terms = list(dict.fromkeys(terms))
    for t in terms:
        if t not in ontology.names:
            raise OntologyError(
                f"label_universe term {t} is not in Cell Ontology {ontology.release}; fix SimulationConfig.label_universe"
            )
        if t in ontology.obsolete:
            raise OntologyError(f"label_universe term {t} is obsolete in Cell Ontology {ontology.release}")
        if NATIVE_CELL not in ontology.ancestors(t):
            raise OntologyError(
                f"label_universe term {t} ({ontology.names[t]}) is not a descendant of {NATIVE_CELL} "
                "'native cell'; the paper's label set only admits native cells"
            )
    tset = set(terms)
    anc = {t: sorted(ontology.ancestors(t) & tset) for t in terms}
    parents: dict[str, list[str]] = {}
    for t in terms:
        direct = [p for p in anc[t] if not any(p in ontology.ancestors(q) for q in anc[t] if q != p)]
        # Primary parent: the one deepest in CL (the lineage, e.g. CD4 over naive T cell), ties by id.
        parents[t] = sorted(direct, key=lambda p: (-len(ontology.ancestors(p)), p))
    level: dict[str, int] = {}

    def lvl(t: str) -> int:
        if t not in level:
            level[t] = 0 if not parents[t] else 1 + max(lvl(p) for p in parents[t])
        return level[t]

    for t in terms:
        lvl(t)
    has_child = {p for t in terms for p in parents[t]}
    leaves = [t for t in terms if t not in has_child]
    ancestors = {t: sorted(set(anc[t]) | {t}, key=lambda a: (level[a], a)) for t in terms}
    return Universe(
        terms=terms,
        names={t: ontology.names[t] for t in terms},
        parents=parents,
        level=level,
        leaves=leaves,
        ancestors=ancestors,
        n_cl_ancestors={t: len(ontology.ancestors(t)) for t in terms},
    )


# -- the plan: every dataset and what it contains --------------------------------------------------
@dataclass
class DatasetPlan:
    index: int  # position in the global list: keys the dataset's random streams
    dataset_id: str
    collection_id: str
    collection_name: str
    collection_doi: str
    title: str
    first_release: str  # "train" (in both releases) or "ood" (newer release only)
    kind: str  # "10x", "smartseq" or "duplicate"
    assay: str
    tissue: str
    suspension_type: str
    n_cells: int
    donors: list[dict[str, str]]
    donor_weights: np.ndarray
    composition: dict[str, float]  # leaf -> proportion
    label_of: dict[str, str]  # leaf -> recorded label
    caps: dict[str, int]  # lineage -> deepest level it annotates
    sources: list[tuple[int, np.ndarray]] = field(default_factory=list)  # duplicate: (dataset, rows)
    is_primary: bool = True


def _uuid(rng: np.random.Generator) -> str:
    h = rng.integers(0, 16, size=32)
    s = "".join("0123456789abcdef"[i] for i in h)
    return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{'89ab'[h[16] % 4]}{s[17:20]}-{s[20:32]}"


def _choice(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _lineage(u: Universe, leaf: str) -> str:
    """The level-1 ancestor on the primary path (the leaf itself for roots): the unit of granularity."""
    chain = _chain(u, leaf, {})
    return chain[-2] if len(chain) >= 2 else chain[-1]


def _chain(u: Universe, leaf: str, convention: dict[str, str]) -> list[str]:
    """Leaf up to a root following each dataset's choice among multiple parents (primary by default)."""
    out = [leaf]
    while u.parents[out[-1]]:
        t = out[-1]
        out.append(convention.get(t, u.parents[t][0]))
    return out


def _granularity(
    rng: np.random.Generator, u: Universe, weights: tuple[float, ...], alternate: float
) -> tuple[dict[str, str], dict[str, int]]:
    """A dataset's annotation: per lineage a depth cap, per multi-parent term a naming convention."""
    convention = {t: ps[1] for t, ps in u.parents.items() if len(ps) > 1 and rng.random() < alternate}
    lineages = sorted({_lineage(u, leaf) for leaf in u.leaves})
    w = np.asarray(weights, dtype=float)
    caps: dict[str, int] = {}
    for lin in lineages:
        finest = max(u.level[leaf] for leaf in u.leaves if _lineage(u, leaf) == lin)
        k = int(rng.choice(len(w), p=w / w.sum()))
        # Never coarser than the lineage itself: nobody labels an endothelial cell "epithelial cell".
        caps[lin] = max(finest - k, u.level[lin])
    label_of = {}
    for leaf in u.leaves:
        cap = caps[_lineage(u, leaf)]
        label_of[leaf] = next(t for t in _chain(u, leaf, convention) if u.level[t] <= cap)
    return label_of, caps


def _donors(
    rng: np.random.Generator, cfg: SimulationConfig, disease: str, style: int
) -> list[dict[str, str]]:
    n = int(rng.integers(cfg.donors_per_dataset[0], cfg.donors_per_dataset[1] + 1))
    out = []
    for i in range(n):
        # Donor ids are only unique within a dataset, as in the Census: tech_sample needs dataset_id too.
        donor_id = [f"P{i + 1}", f"donor_{i + 1}", f"D{i + 1:02d}"][style]
        d = disease if disease != "normal" and rng.random() < 0.75 else "normal"
        out.append(
            {
                "donor_id": donor_id,
                "disease": d,
                "sex": _choice(rng, {"female": 0.48, "male": 0.48, "unknown": 0.04}),
                "self_reported_ethnicity": _choice(
                    rng,
                    {
                        "European": 0.5,
                        "Asian": 0.2,
                        "African": 0.1,
                        "Hispanic or Latin American": 0.1,
                        "unknown": 0.1,
                    },
                ),
                "development_stage": _choice(rng, {"human adult stage": 0.85, "unknown": 0.15}),
            }
        )
    return out


def _composition(
    rng: np.random.Generator, cfg: SimulationConfig, u: Universe, tissue_general: str, allow_ood_only: bool
) -> dict[str, float]:
    possible = []
    for leaf in u.leaves:
        abundance, tissues = LEAF_TABLE.get(leaf, (0.02, tuple(TISSUES)))
        if tissue_general in tissues and (allow_ood_only or leaf not in cfg.ood_only_types):
            possible.append((leaf, abundance))
    if not possible:
        raise ValueError(f"no leaf of the label universe occurs in tissue {tissue_general!r}")
    present = [(t, a) for t, a in possible if rng.random() < cfg.type_presence]
    if len(present) < min(3, len(possible)):
        present = possible
    w = np.array([a for _, a in present]) * np.exp(rng.normal(0, cfg.composition_sd, len(present)))
    w /= w.sum()
    return {t: float(x) for (t, _), x in zip(present, w, strict=True)}


def _dataset_size(rng: np.random.Generator, cfg: SimulationConfig, scale: float = 1.0) -> int:
    if cfg.cells_per_dataset is not None:
        lo, hi = cfg.cells_per_dataset
        return int(max(1, round(int(rng.integers(lo, hi + 1)) * scale)))
    n = cfg.cells_per_dataset_median * scale * np.exp(rng.normal(0, cfg.cells_per_dataset_sigma))
    return int(max(round(n), max(1, round(cfg.min_cells_per_dataset * scale))))


def plan_datasets(cfg: SimulationConfig, u: Universe) -> list[DatasetPlan]:
    """Every dataset of both releases: older ones first, then the newer release's additions."""
    rng = np.random.default_rng([cfg.seed, 1])
    plans: list[DatasetPlan] = []
    collection: dict[str, Any] = {}
    train_assays = {"10x 3' v2": 0.35, "10x 3' v3": 0.4, "10x 5' v1": 0.1, "10x 5' v2": 0.15}
    ood_assays = {
        "10x 3' v3": 0.45,
        "10x 5' v2": 0.25,
        "10x 3' v2": 0.15,
        "10x 3' transcription profiling": 0.15,
    }
    tissue_w = {
        "blood": 0.35,
        "lung": 0.15,
        "upper lobe of left lung": 0.1,
        "bone marrow": 0.1,
        "spleen": 0.15,
        "lymph node": 0.15,
    }

    def new_collection(tissue_general: str) -> None:
        collection.update(
            id=_uuid(rng),
            n=len(plans),
            name=f"Simulated {tissue_general} atlas {len({p.collection_id for p in plans}) + 1}",
            doi=f"10.5555/hcebench.sim.{len({p.collection_id for p in plans}) + 1}",
            left=int(rng.integers(1, 4)),
        )

    def add(
        kind: str, first: str, assay: str, tissue: str, n_cells: int, weights: tuple[float, ...]
    ) -> DatasetPlan:
        general = TISSUES[tissue][1]
        if not collection or collection["left"] == 0:
            new_collection(general)
        collection["left"] -= 1
        disease = "normal"
        for d, p in TISSUE_DISEASES.get(general, []):
            if rng.random() < p:
                disease = d
                break
        suspension = "cell"
        if kind == "10x" and general not in ("blood",) and rng.random() < cfg.nucleus_fraction:
            suspension = "nucleus"
        donors = _donors(rng, cfg, disease, int(rng.integers(0, 3)))
        label_of, caps = _granularity(rng, u, weights, cfg.alternate_parent)
        plan = DatasetPlan(
            index=len(plans),
            dataset_id=_uuid(rng),
            collection_id=collection["id"],
            collection_name=collection["name"],
            collection_doi=collection["doi"],
            title=f"{tissue} ({assay}, {disease})",
            first_release=first,
            kind=kind,
            assay=assay,
            tissue=tissue,
            suspension_type=suspension,
            n_cells=n_cells,
            donors=donors,
            donor_weights=rng.dirichlet(np.full(len(donors), 3.0)),
            composition=_composition(rng, cfg, u, general, allow_ood_only=first == "ood"),
            label_of=label_of,
            caps=caps,
        )
        plans.append(plan)
        return plan

    for _ in range(cfg.n_train_datasets):
        add(
            "10x",
            "train",
            _choice(rng, train_assays),
            _choice(rng, tissue_w),
            _dataset_size(rng, cfg),
            cfg.granularity_train,
        )
    n_train = len(plans)
    for _ in range(cfg.n_ood_datasets):
        add(
            "10x",
            "ood",
            _choice(rng, ood_assays),
            _choice(rng, tissue_w),
            _dataset_size(rng, cfg),
            cfg.granularity_ood,
        )
    for _ in range(cfg.n_ood_smartseq_datasets):
        size = _dataset_size(rng, cfg, cfg.smartseq_cells_fraction)
        add("smartseq", "ood", "Smart-seq2", _choice(rng, tissue_w), size, cfg.granularity_ood)
    for _ in range(cfg.n_ood_duplicate_datasets):
        if n_train == 0:
            break
        k = min(cfg.duplicate_source_datasets, n_train)
        src = sorted(rng.choice(n_train, size=k, replace=False).tolist())
        sources = []
        for s in src:
            n = plans[s].n_cells
            rows = np.sort(
                rng.choice(n, size=max(1, int(round(n * cfg.duplicate_cell_fraction))), replace=False)
            )
            sources.append((s, rows))
        first = plans[src[0]]
        plan = add(
            "duplicate",
            "ood",
            first.assay,
            first.tissue,
            sum(len(r) for _, r in sources),
            cfg.granularity_ood,
        )
        # Copied cells keep their own assay, tissue and donors; only the dataset and its labels are new.
        plan.sources = sources
        plan.is_primary = False
        plan.donors = [d for s in src for d in plans[s].donors]
        plan.composition = {t: 0.0 for s in src for t in plans[s].composition}
        plan.title = f"Integrated atlas (re-upload of {k} studies)"
    return plans


# -- expression ------------------------------------------------------------------------------------
@dataclass
class Biology:
    """Gene-level parameters shared by every dataset, on the union gene index of both releases."""

    gene_ids: np.ndarray
    gene_names: np.ndarray
    feature_length: np.ndarray
    baseline: np.ndarray  # (G,) log expression
    programs: np.ndarray  # (n_terms, G) log-fold changes, row per universe term
    states: np.ndarray  # (n_states, G)
    assay_shift: dict[str, np.ndarray]
    nucleus_shift: np.ndarray
    lib_factor: dict[str, float]  # leaf -> library-size factor (cell size differs by type)


def make_biology(cfg: SimulationConfig, u: Universe, gene_ids: np.ndarray, gene_names: np.ndarray) -> Biology:
    rng = np.random.default_rng([cfg.seed, 2])
    g = len(gene_ids)
    baseline = rng.normal(0.0, cfg.baseline_sd, g)
    programs = np.zeros((len(u.terms), g))
    # Markers are genes a cell of the type detectably expresses: draw programs from the genes whose
    # baseline is above the median, so that a program's signal is not lost in all-zero genes.
    expressed = np.flatnonzero(baseline >= np.median(baseline))
    for i, t in enumerate(u.terms):
        lv = u.level[t]
        n = max(cfg.min_program_genes, int(round(cfg.program_genes * cfg.program_genes_decay**lv)))
        genes = rng.choice(expressed, size=min(n, len(expressed)), replace=False)
        lfc = cfg.program_lfc * cfg.program_lfc_decay**lv * np.exp(rng.normal(0, 0.35, len(genes)))
        sign = np.where(rng.random(len(genes)) < cfg.program_down_fraction, -1.0, 1.0)
        programs[i, genes] = lfc * sign
    states = np.zeros((cfg.state_programs, g))
    for i in range(cfg.state_programs):
        genes = rng.choice(g, size=min(40, g), replace=False)
        states[i, genes] = cfg.state_lfc * np.exp(rng.normal(0, 0.3, len(genes)))
    assay_shift = {a: rng.normal(0, cfg.assay_sd * (2.5 if not ASSAYS[a][3] else 1.0), g) for a in ASSAYS}
    nucleus_shift = rng.normal(0, cfg.nucleus_sd, g)
    feature_length = np.round(np.exp(rng.normal(np.log(2500), 0.8, g))).astype(np.int64) + 100
    lib_factor = {leaf: float(np.exp(rng.normal(0, 0.25))) for leaf in u.leaves}
    return Biology(
        gene_ids,
        gene_names,
        feature_length,
        baseline,
        programs.astype(np.float32),
        states.astype(np.float32),
        assay_shift,
        nucleus_shift,
        lib_factor,
    )


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


class DatasetSampler:
    """Draws a dataset's cells block by block; block ``b`` is always the same cells."""

    def __init__(self, cfg: SimulationConfig, u: Universe, bio: Biology, plan: DatasetPlan):
        self.cfg, self.u, self.bio, self.plan = cfg, u, bio, plan
        rng = np.random.default_rng([cfg.seed, 3, plan.index])
        g = len(bio.gene_ids)
        self.leaves = list(plan.composition)
        self.leaf_p = np.array([plan.composition[t] for t in self.leaves])
        tindex = u.index
        # Cell-by-term membership template: a leaf activates the program of every ancestor in the universe.
        self.member = np.zeros((len(self.leaves), len(u.terms)), dtype=np.float32)
        for i, leaf in enumerate(self.leaves):
            self.member[i, [tindex[a] for a in u.ancestors[leaf]]] = 1.0
        shift = bio.baseline + bio.assay_shift[plan.assay] + rng.normal(0, cfg.batch_sd, g)
        if plan.suspension_type == "nucleus":
            shift = shift + bio.nucleus_shift
        if plan.assay == "Smart-seq2":
            shift = shift + 0.5 * np.log(bio.feature_length / 2500.0)
        self.shift = shift.astype(np.float32)
        self.donor_shift = rng.normal(0, cfg.donor_sd, (len(plan.donors), g)).astype(np.float32)
        self.programs = bio.programs
        self.states = bio.states
        # Ambient RNA: the dataset's average expression profile, leaking into every droplet.
        profiles = _softmax_rows((self.shift[None, :] + self.member @ self.programs).astype(np.float64))
        self.ambient = (self.leaf_p @ profiles).astype(np.float32)
        self.ambient_fraction = float(rng.uniform(0, cfg.ambient_max)) if ASSAYS[plan.assay][3] else 0.0
        _, median, self.lib_sd, _ = ASSAYS[plan.assay]
        factor = 0.5 if plan.suspension_type == "nucleus" else 1.0
        self.lib_median = median * cfg.panel_umi_fraction * factor * float(np.exp(rng.normal(0, 0.3)))
        self.stress_level = float(rng.gamma(2.0, 0.25))
        self.ifn = np.array(
            [3.0 if d["disease"] in INTERFERON_DISEASES else 0.0 for d in plan.donors], dtype=np.float32
        )
        self.n_blocks = (plan.n_cells + BLOCK - 1) // BLOCK

    def block(self, b: int) -> dict[str, np.ndarray]:
        """Cells ``[b*BLOCK, ...)``: leaf index, donor index and counts on the union gene index."""
        cfg, bio = self.cfg, self.bio
        n = min(BLOCK, self.plan.n_cells - b * BLOCK)
        rng = np.random.default_rng([cfg.seed, 4, self.plan.index, b])
        leaf = rng.choice(len(self.leaves), size=n, p=self.leaf_p)
        donor = rng.choice(len(self.plan.donors), size=n, p=self.plan.donor_weights)
        activity = self.member[leaf] * np.exp(
            rng.normal(0, cfg.identity_sd, (n, self.member.shape[1]))
        ).astype(np.float32)
        state = np.empty((n, self.states.shape[0]), dtype=np.float32)
        if state.shape[1] > 0:  # interferon response: up in COVID-19 / lupus donors
            state[:, 0] = rng.gamma(0.5, 0.3, n) + self.ifn[donor] * rng.random(n)
        if state.shape[1] > 1:  # cycling: a small fraction of cells
            state[:, 1] = (rng.random(n) < 0.05) * rng.uniform(0.5, 1.5, n)
        if state.shape[1] > 2:  # dissociation stress: a dataset-level protocol effect
            state[:, 2] = rng.gamma(1.0, self.stress_level, n)
        if state.shape[1] > 3:
            state[:, 3:] = rng.gamma(0.5, 0.3, (n, state.shape[1] - 3))
        logits = (
            self.shift[None, :] + self.donor_shift[donor] + activity @ self.programs + state @ self.states
        )
        p = _softmax_rows(logits)
        if self.ambient_fraction > 0:
            p *= 1.0 - self.ambient_fraction
            p += self.ambient_fraction * self.ambient[None, :]
        lf = np.array([bio.lib_factor[t] for t in self.leaves])[leaf]
        lib = self.lib_median * lf * np.exp(rng.normal(0, self.lib_sd, n))
        mu = p * lib[:, None].astype(np.float32)
        theta = cfg.inverse_dispersion
        counts = rng.poisson(rng.standard_gamma(theta, size=mu.shape, dtype=np.float32) * (mu / theta))
        return {"leaf": leaf, "donor": donor, "counts": counts}

    def rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Specific cells (sorted row numbers) of this dataset, regenerated from their blocks."""
        parts = []
        for b in np.unique(rows // BLOCK):
            blk = self.block(int(b))
            sel = rows[(rows // BLOCK) == b] - b * BLOCK
            parts.append({k: v[sel] for k, v in blk.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in ("leaf", "donor", "counts")}


# -- writing ---------------------------------------------------------------------------------------
_DICT = pa.dictionary(pa.int32(), pa.large_string())
OBS_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("dataset_id", _DICT),
        ("assay", _DICT),
        ("assay_ontology_term_id", _DICT),
        ("cell_type", _DICT),
        ("cell_type_ontology_term_id", _DICT),
        ("development_stage", _DICT),
        ("development_stage_ontology_term_id", _DICT),
        ("disease", _DICT),
        ("disease_ontology_term_id", _DICT),
        ("donor_id", _DICT),
        ("is_primary_data", pa.bool_()),
        ("self_reported_ethnicity", _DICT),
        ("self_reported_ethnicity_ontology_term_id", _DICT),
        ("sex", _DICT),
        ("sex_ontology_term_id", _DICT),
        ("suspension_type", _DICT),
        ("tissue", _DICT),
        ("tissue_ontology_term_id", _DICT),
        ("tissue_general", _DICT),
        ("tissue_general_ontology_term_id", _DICT),
        ("raw_sum", pa.float64()),
        ("nnz", pa.int64()),
        ("raw_mean_nnz", pa.float64()),
        ("raw_variance_nnz", pa.float64()),
        ("n_measured_vars", pa.int64()),
    ]
)
VAR_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("feature_id", pa.large_string()),
        ("feature_name", pa.large_string()),
        ("feature_length", pa.int64()),
        ("nnz", pa.int64()),
        ("n_measured_obs", pa.int64()),
    ]
)
DATASETS_SCHEMA = pa.schema(
    [("soma_joinid", pa.int64())]
    + [
        (c, pa.large_string())
        for c in (
            "collection_id",
            "collection_name",
            "collection_doi",
            "dataset_id",
            "dataset_title",
            "dataset_h5ad_path",
        )
    ]
    + [("dataset_total_cell_count", pa.int64())]
)
#: Census 2023-12-15 adds the dataset's version id (the id of the uploaded h5ad revision).
DATASETS_SCHEMA_NEWER = DATASETS_SCHEMA.insert(5, pa.field("dataset_version_id", pa.large_string()))
SUMMARY_SCHEMA = pa.schema(
    [("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())]
)
COUNTS_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("organism", pa.large_string()),
        ("category", pa.large_string()),
        ("label", pa.large_string()),
        ("ontology_term_id", pa.large_string()),
        ("total_cell_count", pa.int64()),
        ("unique_cell_count", pa.int64()),
    ]
)
#: summary_cell_counts categories: (category, label column, ontology id column)
COUNT_CATEGORIES = [
    ("assay", "assay", "assay_ontology_term_id"),
    ("cell_type", "cell_type", "cell_type_ontology_term_id"),
    ("disease", "disease", "disease_ontology_term_id"),
    ("self_reported_ethnicity", "self_reported_ethnicity", "self_reported_ethnicity_ontology_term_id"),
    ("sex", "sex", "sex_ontology_term_id"),
    ("suspension_type", "suspension_type", None),
    ("tissue", "tissue", "tissue_ontology_term_id"),
    ("tissue_general", "tissue_general", "tissue_general_ontology_term_id"),
]
GROUND_TRUTH_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("dataset_id", pa.large_string()),
        ("true_cell_type_ontology_term_id", pa.large_string()),
        ("true_cell_type", pa.large_string()),
        ("cell_type_ontology_term_id", pa.large_string()),
        ("cell_type", pa.large_string()),
        ("is_primary_data", pa.bool_()),
    ]
)


def _X_CREATE(n_var: int) -> dict[str, Any]:
    # One tile spans every gene, so row-major order is TileDB's global order: batches arrive sorted and
    # are written without TileDB re-sorting them (7x faster), and a chunk of cells reads whole tiles.
    return {"tiledb": {"create": {"dims": {"soma_dim_1": {"tile": max(n_var, 1)}}}}}


#: Our batches are already in global order (ascending joinid, then gene): skip TileDB's sort.
_SORTED = {"tiledb": {"write": {"sort_coords": False}}}


def _create_release(path: Path, n_obs: int, n_var: int, newer_schema: bool = False) -> None:
    """Create the empty Census layout; children are linked by relative URI so the tree can move."""
    import tiledbsoma as soma

    with soma.Collection.create(str(path)) as root:
        with root.add_new_collection("census_info") as info:
            info.add_new_dataframe("summary", schema=SUMMARY_SCHEMA, domain=[(0, 63)]).close()
            datasets_schema = DATASETS_SCHEMA_NEWER if newer_schema else DATASETS_SCHEMA
            info.add_new_dataframe("datasets", schema=datasets_schema, domain=[(0, 100_000)]).close()
            info.add_new_dataframe(
                "summary_cell_counts", schema=COUNTS_SCHEMA, domain=[(0, 1_000_000)]
            ).close()
        with root.add_new_collection("census_data") as data:
            with data.add_new_collection(ORGANISM, soma.Experiment) as exp:
                exp.add_new_dataframe("obs", schema=OBS_SCHEMA, domain=[(0, max(n_obs - 1, 0))]).close()
                with exp.add_new_collection("ms") as ms:
                    with ms.add_new_collection("RNA", soma.Measurement) as rna:
                        rna.add_new_dataframe(
                            "var", schema=VAR_SCHEMA, domain=[(0, max(n_var - 1, 0))]
                        ).close()
                        with rna.add_new_collection("X") as x:
                            for layer in ("raw", "normalized") if newer_schema else ("raw",):
                                x.add_new_sparse_ndarray(
                                    layer,
                                    type=pa.float32(),
                                    shape=(max(n_obs, 1), max(n_var, 1)),
                                    platform_config=_X_CREATE(n_var),
                                ).close()


def _write_df(uri: Path, df: pd.DataFrame, schema: pa.Schema) -> None:
    import tiledbsoma as soma

    # Reopened rather than written through the creating handle: tiledbsoma 2.3 stores empty enumerations
    # for dictionary columns written through the handle add_new_dataframe returns.
    with soma.DataFrame.open(str(uri), "w") as out:
        out.write(pa.Table.from_pandas(df, schema=schema, preserve_index=False))


class _ReleaseWriter:
    """Buffers one release's obs rows and counts and writes them in batches of bounded size."""

    def __init__(
        self, path: Path, name: str, var_cols: np.ndarray, n_obs: int, cfg: SimulationConfig, newer_schema: bool = False
    ):
        self.path, self.name, self.var_cols, self.cfg = path, name, var_cols, cfg
        self.newer_schema = newer_schema
        self.n_var = len(var_cols)
        _create_release(path, n_obs, self.n_var, newer_schema)
        exp = path / "census_data" / ORGANISM
        self.obs_uri = str(exp / "obs")
        self.X_uri = str(exp / "ms" / "RNA" / "X" / "raw")
        self.normalized_uri = str(exp / "ms" / "RNA" / "X" / "normalized")
        self.gt = pq.ParquetWriter(str(path.parent / f"ground_truth_{name}.parquet"), GROUND_TRUTH_SCHEMA)
        self.next_joinid = 0
        self.var_nnz = np.zeros(self.n_var, dtype=np.int64)
        self.counts: Counter[tuple[str, str, str, bool]] = Counter()
        self.dataset_counts: dict[str, int] = {}
        self.donors: set[tuple[str, str]] = set()
        self._obs: list[pd.DataFrame] = []
        self._gt: list[pd.DataFrame] = []
        self._coo: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._normalized: list[np.ndarray] = []
        self._buffered_nnz = 0
        self.seconds_writing = 0.0

    def add(self, meta: pd.DataFrame, counts: np.ndarray, truth: np.ndarray) -> None:
        """Append cells: ``meta`` holds the obs columns bar joinid and count statistics."""
        n = len(meta)
        x = counts[:, self.var_cols]
        r, c = np.nonzero(x)
        v = x[r, c]
        joinids = np.arange(self.next_joinid, self.next_joinid + n, dtype=np.int64)
        self.next_joinid += n
        nnz = np.bincount(r, minlength=n)
        raw_sum = np.bincount(r, weights=v, minlength=n)
        sq = np.bincount(r, weights=v.astype(np.float64) ** 2, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_nnz = raw_sum / nnz
            var_nnz = sq / nnz - mean_nnz**2
        obs = meta.copy()
        obs.insert(0, "soma_joinid", joinids)
        obs["raw_sum"] = raw_sum
        obs["nnz"] = nnz.astype(np.int64)
        obs["raw_mean_nnz"] = mean_nnz
        obs["raw_variance_nnz"] = np.maximum(var_nnz, 0.0)
        obs["n_measured_vars"] = np.int64(self.n_var)
        self._obs.append(obs)
        self._coo.append((joinids[r], c.astype(np.int64), v.astype(np.float32)))
        if self.newer_schema:
            # The Census's X/normalized: each cell's counts divided by its total (10x assays: no length scaling).
            self._normalized.append((v / raw_sum[r]).astype(np.float32))
        self._buffered_nnz += len(v)
        self.var_nnz += np.bincount(c, minlength=self.n_var)
        for cat, lab, term in COUNT_CATEGORIES:
            keys = zip(obs[lab], obs[term] if term else obs[lab], obs["is_primary_data"], strict=True)
            for (label, tid, prim), k in Counter(keys).items():
                self.counts[(cat, label, tid if term else "na", bool(prim))] += k
        self.counts[("all", "na", "na", bool(obs["is_primary_data"].iloc[0]))] += n
        for ds, k in obs["dataset_id"].value_counts(sort=False).items():
            self.dataset_counts[ds] = self.dataset_counts.get(ds, 0) + int(k)
        self.donors.update(zip(obs["dataset_id"], obs["donor_id"], strict=True))
        gt = pd.DataFrame(
            {
                "soma_joinid": joinids,
                "dataset_id": obs["dataset_id"].to_numpy(),
                "true_cell_type_ontology_term_id": truth[:, 0],
                "true_cell_type": truth[:, 1],
                "cell_type_ontology_term_id": obs["cell_type_ontology_term_id"].to_numpy(),
                "cell_type": obs["cell_type"].to_numpy(),
                "is_primary_data": obs["is_primary_data"].to_numpy(),
            }
        )
        self._gt.append(gt)
        if self._buffered_nnz >= self.cfg.write_batch_nnz:
            self.flush()

    def flush(self) -> None:
        import tiledbsoma as soma

        if not self._obs:
            return
        t0 = time.perf_counter()
        obs = pa.Table.from_pandas(
            pd.concat(self._obs, ignore_index=True), schema=OBS_SCHEMA, preserve_index=False
        )
        # One handle per write: tiledbsoma 2.3 does not persist the enumeration values a second write
        # through the same handle adds, leaving dictionary indices that point past the stored values.
        with soma.DataFrame.open(self.obs_uri, "w") as out:
            out.write(obs, platform_config=_SORTED)
        d0, d1, v = (np.concatenate(a) for a in zip(*self._coo, strict=True))
        with soma.SparseNDArray.open(self.X_uri, "w") as out:
            out.write(
                pa.Table.from_pydict({"soma_dim_0": d0, "soma_dim_1": d1, "soma_data": v}),
                platform_config=_SORTED,
            )
        if self.newer_schema:
            with soma.SparseNDArray.open(self.normalized_uri, "w") as out:
                out.write(
                    pa.Table.from_pydict(
                        {"soma_dim_0": d0, "soma_dim_1": d1, "soma_data": np.concatenate(self._normalized)}
                    ),
                    platform_config=_SORTED,
                )
        gt = pd.concat(self._gt, ignore_index=True)
        self.gt.write_table(pa.Table.from_pandas(gt, schema=GROUND_TRUTH_SCHEMA, preserve_index=False))
        self._obs, self._gt, self._coo, self._normalized, self._buffered_nnz = [], [], [], [], 0
        self.seconds_writing += time.perf_counter() - t0

    def finish(self, plans: list[DatasetPlan], bio: Biology, release_date: str) -> dict[str, Any]:
        self.flush()
        self.gt.close()
        info = self.path / "census_info"
        n = self.next_joinid
        var = pd.DataFrame(
            {
                "soma_joinid": np.arange(self.n_var, dtype=np.int64),
                "feature_id": bio.gene_ids[self.var_cols],
                "feature_name": bio.gene_names[self.var_cols],
                "feature_length": bio.feature_length[self.var_cols],
                "nnz": self.var_nnz,
                "n_measured_obs": np.full(self.n_var, n, dtype=np.int64),
            }
        )
        _write_df(self.path / "census_data" / ORGANISM / "ms" / "RNA" / "var", var, VAR_SCHEMA)
        rows = [p for p in plans if p.dataset_id in self.dataset_counts]
        datasets = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(rows), dtype=np.int64),
                "collection_id": [p.collection_id for p in rows],
                "collection_name": [p.collection_name for p in rows],
                "collection_doi": [p.collection_doi for p in rows],
                "dataset_id": [p.dataset_id for p in rows],
                "dataset_title": [p.title for p in rows],
                "dataset_h5ad_path": [f"{p.dataset_id}.h5ad" for p in rows],
                "dataset_total_cell_count": [self.dataset_counts[p.dataset_id] for p in rows],
            }
        )
        if self.newer_schema:
            # A version id per dataset revision; derived from the dataset id so the census stays deterministic.
            versions = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"hcebench/{p.dataset_id}/v1")) for p in rows]
            datasets.insert(5, "dataset_version_id", versions)
        _write_df(info / "datasets", datasets, DATASETS_SCHEMA_NEWER if self.newer_schema else DATASETS_SCHEMA)
        merged: dict[tuple[str, str, str], list[int]] = {}
        for (cat, label, tid, prim), k in self.counts.items():
            tot = merged.setdefault((cat, label, tid), [0, 0])
            tot[0] += k
            tot[1] += k if prim else 0
        keys = sorted(merged)
        counts = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(keys), dtype=np.int64),
                "organism": "Homo sapiens",
                "category": [k[0] for k in keys],
                "label": [k[1] for k in keys],
                "ontology_term_id": [k[2] for k in keys],
                "total_cell_count": [merged[k][0] for k in keys],
                "unique_cell_count": [merged[k][1] for k in keys],
            }
        )
        _write_df(info / "summary_cell_counts", counts, COUNTS_SCHEMA)
        unique = merged.get(("all", "na", "na"), [0, 0])[1]
        summary_items = [
            ("census_schema_version", self.cfg.census_schema_version),
            ("census_build_date", release_date),
            ("dataset_schema_version", "3.0.0"),
            ("total_cell_count", str(n)),
            ("unique_cell_count", str(unique)),
            ("number_donors_homo_sapiens", str(len(self.donors))),
            ("number_donors_mus_musculus", "0"),
        ]
        summary = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(summary_items), dtype=np.int64),
                "label": [k for k, _ in summary_items],
                "value": [v for _, v in summary_items],
            }
        )
        _write_df(info / "summary", summary, SUMMARY_SCHEMA)
        return {
            "path": self.path.name,
            "census_build_date": release_date,
            "n_cells": int(n),
            "n_primary_cells": int(unique),
            "n_datasets": len(rows),
            "n_genes": int(self.n_var),
            "nnz": int(self.var_nnz.sum()),
            "ground_truth": f"ground_truth_{self.name}.parquet",
        }


def _obs_meta(
    plan: DatasetPlan, src: DatasetPlan, u: Universe, leaf_terms: np.ndarray, donor: np.ndarray
) -> pd.DataFrame:
    """Census obs columns (bar joinid and count statistics) for cells of ``plan`` drawn by ``src``.

    ``src`` is ``plan`` itself except for a re-upload, whose cells keep their source's assay, tissue
    and donors but carry the re-upload's dataset id, labels and ``is_primary_data``.
    """
    n = len(leaf_terms)
    labels = np.array([plan.label_of[t] for t in leaf_terms], dtype=object)
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
            "disease": dcol["disease"],
            "disease_ontology_term_id": np.array([DISEASES[s] for s in dcol["disease"]], dtype=object),
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


def default_genes() -> pd.DataFrame:
    """The bundled reference gene list (Ensembl id index, ``gene_names`` column)."""
    from importlib import resources

    return pd.read_parquet(
        str(resources.files("hcebench") / "data" / "sctab_features_protein_coding.parquet")
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
    out_dir: str | Path, cfg: SimulationConfig, ontology: Ontology, genes: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Write both releases, their ground truth and ``manifest.json`` into ``out_dir``; return the manifest.

    ``genes`` is the reference list to draw genes from (Ensembl-id index, ``gene_names`` column); None
    means the bundled scTab protein-coding list. ``out_dir`` is replaced atomically: it appears only
    once everything is written. Cells are generated and written dataset by dataset in batches of at most
    ``cfg.write_batch_nnz`` nonzeros, so memory does not grow with the number of cells.
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
            "train": _ReleaseWriter(
                tmp / cfg.train_release, cfg.train_release, old_cols, sum(p.n_cells for p in train), cfg
            ),
            "ood": _ReleaseWriter(
                tmp / cfg.ood_release,
                cfg.ood_release,
                new_cols,
                sum(p.n_cells for p in plans),
                cfg,
                newer_schema=cfg.newer_schema,
            ),
        }
        # Generate each dataset once and hand it to every release that contains it. Both releases order
        # datasets by id, so the older release's order is a subsequence of the newer one's.
        samplers = {p.index: DatasetSampler(cfg, u, bio, p) for p in plans if p.kind != "duplicate"}
        t_gen = 0.0
        for plan in order["ood"]:
            targets = ["train", "ood"] if plan.first_release == "train" else ["ood"]
            for src, cells in _dataset_cells(plan, samplers, u):
                t0 = time.perf_counter()
                meta = _obs_meta(plan, src, u, cells["leaf_terms"], cells["donor"])
                names = np.array([u.names[t] for t in cells["leaf_terms"]], dtype=object)
                truth = np.stack([cells["leaf_terms"], names], axis=1)
                t_gen += time.perf_counter() - t0 + cells["seconds"]
                for k in targets:
                    writers[k].add(meta, cells["counts"], truth)
        releases = {}
        for k, date in (("train", cfg.train_release), ("ood", cfg.ood_release)):
            releases[date] = writers[k].finish(order[k], bio, date)
        manifest = _manifest(cfg, u, ontology, plans, releases)
        write_json(tmp / "manifest.json", manifest)
        seconds = time.perf_counter() - t_start
        log.info(
            "simulated census: %s cells in %.1f s (%.1f s drawing, %.1f s writing)",
            {r: v["n_cells"] for r, v in releases.items()},
            seconds,
            t_gen,
            sum(w.seconds_writing for w in writers.values()),
        )
    return manifest


def _dataset_cells(plan: DatasetPlan, samplers: dict[int, DatasetSampler], u: Universe):
    """Yield ``(source plan, cells)`` blocks; a re-upload yields copies of its source datasets' cells."""
    if plan.kind == "duplicate":
        for src, rows in plan.sources:
            t0 = time.perf_counter()
            s = samplers[src]
            cells = s.rows(rows)
            cells["seconds"] = time.perf_counter() - t0
            cells["leaf_terms"] = np.array([s.leaves[i] for i in cells["leaf"]], dtype=object)
            yield s.plan, cells
        return
    s = samplers[plan.index]
    for b in range(s.n_blocks):
        t0 = time.perf_counter()
        cells = s.block(b)
        cells["seconds"] = time.perf_counter() - t0
        cells["leaf_terms"] = np.array([s.leaves[i] for i in cells["leaf"]], dtype=object)
        yield plan, cells


def _manifest(
    cfg: SimulationConfig, u: Universe, ontology: Ontology, plans: list[DatasetPlan], releases: dict[str, Any]
) -> dict[str, Any]:
    config = asdict(cfg)
    return {
        "generator": "hcebench.simulate",
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
                "n_cells": p.n_cells,
                "n_donors": len(p.donors),
                "granularity_caps": {u.names[k]: v for k, v in sorted(p.caps.items())},
                "labels": sorted({u.names[v] for k, v in p.label_of.items() if k in p.composition}),
            }
            for p in plans
        ],
    }
