"""scTab's cell selection, the tech_sample split and class weights.

The selection works on obs alone (no expression), so it is cheap at 22 M cells and decides the label set
before the expression store is built:

1. primary cells (``is_primary_data``) of the configured assays (a SOMA value filter, pushed to the reader);
2. cell types that descend from ``root_term`` ("native cell") and have more than ``min_ancestors`` is_a
   ancestors in the Cell Ontology — drops generic labels such as "cell" or "leukocyte";
3. cell types with at least ``min_cells_per_type`` cells in more than ``min_tech_samples_per_type``
   tech_samples, where a tech_sample is a (dataset_id, donor_id) pair.

Labels are ordered by name, as scTab orders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hcebench.data.census import census_release, open_census, read_obs
from hcebench.hierarchy.ontology import Ontology
from hcebench.layout import STORE_SPLITS

#: obs columns the suite reads from the Census: identifiers, label, and the strata scored separately.
OBS_COLUMNS = [
    "soma_joinid",
    "dataset_id",
    "donor_id",
    "assay",
    "cell_type",
    "cell_type_ontology_term_id",
    "tissue",
    "tissue_general",
    "disease",
    "is_primary_data",
]


def obs_value_filter(filters: dict, dataset_ids: list[str] | None = None) -> str:
    """SOMA value filter for the primary-data and assay conditions (and optionally a dataset list)."""
    clauses = []
    if filters["is_primary_data"]:
        clauses.append("is_primary_data == True")
    clauses.append(f"assay in {list(filters['assays'])!r}")
    if dataset_ids is not None:
        clauses.append(f"dataset_id in {list(dataset_ids)!r}")
    return " and ".join(clauses)


def tech_sample(obs: pd.DataFrame) -> pd.Series:
    """scTab's tech_sample: one (dataset, donor) pair, the unit that never crosses splits."""
    return obs["dataset_id"].astype(str) + "_" + obs["donor_id"].astype(str)


@dataclass
class Selection:
    cells: pd.DataFrame  # OBS_COLUMNS + tech_sample + label (term id) + label_name
    labels: list[str]  # term ids, ordered by name
    report: dict = field(default_factory=dict)


def select_cells(obs: pd.DataFrame, ontology: Ontology, filters: dict) -> Selection:
    """Apply scTab's type filters to obs already restricted to primary cells of the kept assays."""
    obs = obs.copy()
    obs["tech_sample"] = tech_sample(obs)
    report: dict = {"cells_after_primary_assay": int(len(obs))}
    terms = obs["cell_type_ontology_term_id"].astype(str)

    unknown = sorted(t for t in terms.unique() if t not in ontology.names)
    dropped_by_ontology: dict[str, str] = {}
    for t in terms.unique():
        if t in unknown:
            dropped_by_ontology[t] = f"not in Cell Ontology {ontology.release}"
        elif t in ontology.obsolete:
            dropped_by_ontology[t] = f"obsolete in Cell Ontology {ontology.release}"
        elif not ontology.is_subtype(t, filters["root_term"]):
            dropped_by_ontology[t] = f"not a descendant of {filters['root_term']}"
        elif len(ontology.ancestors(t)) <= filters["min_ancestors"]:
            dropped_by_ontology[t] = (
                f"{len(ontology.ancestors(t))} is_a ancestors <= {filters['min_ancestors']}"
            )
    obs = obs[~terms.isin(dropped_by_ontology)]
    report["cells_after_ontology_filter"] = int(len(obs))

    per_type = obs.groupby("cell_type_ontology_term_id", observed=True).agg(
        n_cells=("soma_joinid", "size"), n_tech_samples=("tech_sample", "nunique")
    )
    keep = per_type[
        (per_type.n_cells >= filters["min_cells_per_type"])
        & (per_type.n_tech_samples > filters["min_tech_samples_per_type"])
    ]
    dropped_by_counts = {
        t: f"{int(r.n_cells)} cells in {int(r.n_tech_samples)} tech_samples"
        for t, r in per_type.drop(keep.index).iterrows()
    }
    obs = obs[obs["cell_type_ontology_term_id"].isin(keep.index)].copy()
    if obs.empty:
        raise ValueError(
            "no cell type passes filters.min_cells_per_type / filters.min_tech_samples_per_type "
            f"({filters['min_cells_per_type']} cells in > {filters['min_tech_samples_per_type']} tech_samples); "
            "lower them for a small census"
        )
    labels = sorted(keep.index, key=lambda t: (ontology.name(t).lower(), t))
    obs["label"] = obs["cell_type_ontology_term_id"].astype(str)
    obs["label_name"] = obs["label"].map(ontology.names)
    report.update(
        cells_selected=int(len(obs)),
        n_labels=len(labels),
        n_tech_samples=int(obs["tech_sample"].nunique()),
        n_datasets=int(obs["dataset_id"].nunique()),
        dropped_types_ontology={
            t: f"{ontology.names.get(t, '?')}: {why}" for t, why in dropped_by_ontology.items()
        },
        dropped_types_counts={
            t: f"{ontology.names.get(t, '?')}: {why}" for t, why in dropped_by_counts.items()
        },
    )
    return Selection(cells=obs.reset_index(drop=True), labels=labels, report=report)


def split_tech_samples(tech_samples: pd.Series, seed: int, fractions: list[float]) -> pd.Series:
    """Assign each cell a split by shuffling its unique tech_samples with ``seed`` and cutting by ``fractions``.

    Unique tech_samples are sorted before the shuffle so the split depends only on the set, not on row order.
    """
    unique = np.array(sorted(tech_samples.unique()))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = unique[order]
    n = len(shuffled)
    cut1 = int(round(fractions[0] * n))
    cut2 = int(round((fractions[0] + fractions[1]) * n))
    if cut1 == 0 or cut2 == cut1 or cut2 == n:
        raise ValueError(
            f"{n} tech_samples cannot be split {fractions} with every split non-empty; "
            "the census is too small for split.fractions"
        )
    assignment = {ts: STORE_SPLITS[0] for ts in shuffled[:cut1]}
    assignment.update({ts: STORE_SPLITS[1] for ts in shuffled[cut1:cut2]})
    assignment.update({ts: STORE_SPLITS[2] for ts in shuffled[cut2:]})
    return tech_samples.map(assignment)


def balanced_class_weights(label_index: np.ndarray, k: int) -> np.ndarray:
    """sklearn's "balanced" weights n / (k · count_c) over the training cells.

    A label with no training cell gets weight 0: it cannot contribute to the loss anyway, and an infinite
    weight would poison the weighted mean.
    """
    counts = np.bincount(label_index, minlength=k).astype(np.float64)
    weights = np.zeros(k, dtype=np.float64)
    present = counts > 0
    weights[present] = len(label_index) / (k * counts[present])
    return weights.astype(np.float32)


def select_from_census(source: dict, config: dict, ontology: Ontology) -> Selection:
    """Read the training release's obs, apply the filters, and assign tech_sample splits."""
    filters = config["filters"]
    with open_census(source) as census:
        obs = read_obs(census, obs_value_filter(filters), OBS_COLUMNS, organism=config["census"]["organism"])
        release = census_release(source, census)
    if obs.empty:
        raise ValueError(
            f"no cell of census {source} passes filters.is_primary_data / filters.assays "
            f"({obs_value_filter(filters)}); check the assay names against the census obs"
        )
    selection = select_cells(obs, ontology, filters)
    split_cfg = config["split"]
    selection.cells["split"] = split_tech_samples(
        selection.cells["tech_sample"], split_cfg["seed"], split_cfg["fractions"]
    )
    counts = selection.cells.groupby("split").agg(
        cells=("soma_joinid", "size"), tech_samples=("tech_sample", "nunique")
    )
    selection.report.update(
        census_release=release,
        cl_release=ontology.release,
        splits={s: {k: int(v) for k, v in counts.loc[s].items()} for s in STORE_SPLITS if s in counts.index},
    )
    return selection
