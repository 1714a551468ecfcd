"""The plan: every dataset of both releases and what it contains, before any cell is drawn.

Owns ``DatasetPlan`` and ``plan_datasets``: collections, assays, tissues, diseases, donors, type composition,
annotation granularity (per-lineage depth caps and multi-parent naming conventions) and the non-primary
re-uploads that copy older datasets' cells. Drawn from the generator keyed by ``(seed, 1)``; which older
studies annotate coarsely under ``coarse_study_share`` comes from its own generator, ``(seed, 5)``, so a sweep
over the share changes the labels of the older studies and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcebench.data.simulate.settings import SimulationConfig
from hcebench.data.simulate.universe import Universe
from hcebench.data.simulate.vocabulary import LEAF_TABLE, TISSUE_DISEASES, TISSUES


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
    coarse: bool = True  # annotated with its release's granularity mix; False: every cell at its leaf
    sources: list[tuple[int, np.ndarray]] = field(default_factory=list)  # duplicate: (dataset, rows)
    is_primary: bool = True
    # Census schema 2.4.0 knobs (SimulationConfig), set after every draw so that they change nothing else:
    primary_rows: int = 0  # a re-upload's first rows that are marked primary (duplicate primary cells)
    revision: int = 1  # the newer release's revision of an older dataset (2: a new dataset_version_id)
    multi_disease: bool = False  # the first donor's disease is two diseases joined by " || "


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


def _finest_annotation(u: Universe) -> tuple[dict[str, str], dict[str, int]]:
    """A study that labels every cell with its leaf: ``label_of`` is the identity, each lineage capped at its
    finest level."""
    caps = {
        lin: max(u.level[leaf] for leaf in u.leaves if _lineage(u, leaf) == lin)
        for lin in sorted({_lineage(u, leaf) for leaf in u.leaves})
    }
    return {leaf: leaf for leaf in u.leaves}, caps


def coarse_train_studies(cfg: SimulationConfig, n_train: int) -> set[int]:
    """Indices (0 .. n_train − 1) of the older studies annotated with the ``granularity_train`` mix.

    All of them when ``coarse_study_share`` is None. Otherwise the first ``round(share · n_train)`` of a
    permutation drawn from the generator keyed by ``(seed, 5)``: the count is exact, and the coarse studies at a
    smaller share are a subset of those at a larger one, so a sweep over the share only adds coarse studies.
    """
    if cfg.coarse_study_share is None:
        return set(range(n_train))
    order = np.random.default_rng([cfg.seed, 5]).permutation(n_train)
    n_coarse = int(np.floor(cfg.coarse_study_share * n_train + 0.5))
    return {int(i) for i in order[:n_coarse]}


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

    coarse = coarse_train_studies(cfg, cfg.n_train_datasets)
    for i in range(cfg.n_train_datasets):
        plan = add(
            "10x",
            "train",
            _choice(rng, train_assays),
            _choice(rng, tissue_w),
            _dataset_size(rng, cfg),
            cfg.granularity_train,
        )
        if i not in coarse:
            # The mix was still drawn (same draws from rng), so every other field matches any other share.
            plan.label_of, plan.caps = _finest_annotation(u)
            plan.coarse = False
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
    _schema_2_4(cfg, plans)
    return plans


def _schema_2_4(cfg: SimulationConfig, plans: list[DatasetPlan]) -> None:
    """Mark the datasets the schema-2.4.0 knobs change: the first older datasets (revised), the first new 10x
    datasets (a multi-valued disease), the first re-upload (primary rows). No draw: every other field is unchanged."""
    for plan in [p for p in plans if p.first_release == "train"][: cfg.n_revised_datasets]:
        plan.revision = 2
    for plan in [p for p in plans if p.first_release == "ood" and p.kind == "10x"][
        : cfg.n_multi_disease_datasets
    ]:
        plan.multi_disease = True
    duplicates = [p for p in plans if p.kind == "duplicate"]
    if duplicates:
        duplicates[0].primary_rows = min(cfg.n_duplicate_primary_cells, duplicates[0].n_cells)
