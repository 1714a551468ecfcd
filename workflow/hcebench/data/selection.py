"""scTab's cell selection, the tech_sample split and class weights.

The selection works on obs alone (no expression), so it is cheap at 22 M cells and decides the label set
before the expression store is built:

1. primary cells (``is_primary_data``) of the configured assays (a SOMA value filter, pushed to the reader);
2. cell types that descend from ``root_term`` ("native cell") and have more than ``min_ancestors`` is_a
   ancestors in the Cell Ontology — drops generic labels such as "cell" or "leukocyte";
3. cell types with at least ``min_cells_per_type`` cells in more than ``min_tech_samples_per_type``
   tech_samples, where a tech_sample is a (dataset_id, donor_id) pair.

Labels are ordered by name (``order_labels``, ``filters.label_order``): ``casefold`` ignores case (the suite's
order); ``sctab`` is case-sensitive, the order of scTab's pandas categorical of the census's cell_type names, and so
of the paper's checkpoints (the two orders differ: capitalised names such as "T cell" come first in scTab's).

The split is scTab's, by tech_sample (``split_tech_samples``); ``split.by: cell`` cuts each tech_sample's cells into
the splits instead (``split_cells``), for a training release with too few donors, and the report states its leakage
caveat (``CELL_SPLIT_CAVEAT``).

Before step 2, cells whose label the ontology release lacks or marks obsolete are counted: a warning in the log and
``report["labels_outside_ontology"]`` under ``filters.max_unknown_label_fraction``, an error naming the labels above
it (``hcebench.data.checks``). A ``filters.root_term`` the ontology lacks is an error before the census is read.

``filters.pinned_labels`` pins the label set instead (the paper configuration pins scTab's 164 types: scTab ran
step 2 on cl-simple v2023-05-22, a release the suite does not bundle, so the same filters on CL v2022-09-15 need
not give the same set). With a pin, the cells kept are the primary, assay-filtered cells of the pinned types; the
type filters still run, and the report lists every type they would add to or drop from the pinned set.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hcebench.data.census import census_release, open_census, read_obs
from hcebench.data.checks import check_labels_in_ontology
from hcebench.data.store.split import plain_strings
from hcebench.errors import ConfigError, DataError, OntologyError
from hcebench.hierarchy.ontology import Ontology
from hcebench.layout import STORE_SPLITS
from hcebench.settings import Filters, SelectionSettings

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


def obs_value_filter(filters: Filters, dataset_ids: list[str] | None = None) -> str:
    """SOMA value filter for the primary-data and assay conditions (and optionally a dataset list)."""
    clauses = []
    if filters.is_primary_data:
        clauses.append("is_primary_data == True")
    clauses.append(f"assay in {list(filters.assays)!r}")
    if dataset_ids is not None:
        clauses.append(f"dataset_id in {list(dataset_ids)!r}")
    return " and ".join(clauses)


def tech_sample(obs: pd.DataFrame) -> pd.Series:
    """scTab's tech_sample: one (dataset, donor) pair, the unit that never crosses splits, named
    ``<dataset_id>_<donor_id>``.

    Strings where ``obs`` holds strings; a categorical (categories in string order) where both columns are
    categorical, as ``read_obs(..., plain=False)`` reads them: then only the distinct pairs are joined, and a cell
    costs its category code (a few bytes), not a new ~90-byte string.
    """
    dataset, donor = obs["dataset_id"], obs["donor_id"]
    if not (isinstance(dataset.dtype, pd.CategoricalDtype) and isinstance(donor.dtype, pd.CategoricalDtype)):
        return dataset.astype(str) + "_" + donor.astype(str)
    dataset_codes, dataset_names = _codes_and_names(dataset)
    donor_codes, donor_names = _codes_and_names(donor)
    pairs, pair_of_cell = np.unique(dataset_codes * len(donor_names) + donor_codes, return_inverse=True)
    joined = dataset_names[pairs // len(donor_names)] + "_" + donor_names[pairs % len(donor_names)]
    # Distinct pairs may join to one name ("a_b" + "c", "a" + "b_c"), as the strings would: merged here too.
    names, name_of_pair = np.unique(joined, return_inverse=True)
    codes = name_of_pair[pair_of_cell.ravel()]
    return pd.Series(pd.Categorical.from_codes(codes, categories=names), index=obs.index)


def _codes_and_names(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A categorical's codes (int64) and the ``str`` of each code, a missing value as ``astype(str)`` writes it."""
    codes = values.cat.codes.to_numpy(np.int64)
    names = values.cat.categories.astype(str).to_numpy(dtype=object)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names = np.append(names, str(np.nan))
    return codes, names


def read_cells(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """The selection's cells table (``Selection.cells``, as ``select_cells`` writes it), only those of ``columns``
    it has when given, with its string columns as categoricals: ~30 bytes per cell at the census's columns, against
    ~800 as Python strings, for the ~22 M cells of the paper's selection. Values and row order are the file's."""
    schema = pq.read_schema(path)
    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if columns is not None:
        columns = [c for c in schema.names if c in columns]  # those the table has, in its order
        strings = [c for c in strings if c in columns]
    return pq.read_table(path, columns=columns, read_dictionary=strings).to_pandas()


#: Rows per row group of the cells table: pyarrow's default, so ``write_cells`` writes, a row group at a time, the
#: file ``DataFrame.to_parquet`` writes whole.
CELLS_ROW_GROUP = 1024 * 1024


def write_cells(cells: pd.DataFrame, path: str | os.PathLike, row_group: int = CELLS_ROW_GROUP) -> None:
    """Write the selection's cells table (``read_cells`` reads it) with its categorical columns as the strings they
    hold, decoded one row group at a time: the ~22 M cells of the paper's selection are never Python strings all
    at once. The file is byte for byte the one ``cells.to_parquet(path, index=False, row_group_size=row_group)``
    writes for the same table held as strings."""
    writer = None
    try:
        for start in range(0, max(len(cells), 1), row_group):
            part = plain_strings(cells.iloc[start : start + row_group])
            table = pa.Table.from_pandas(part, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()


def label_indices(labels_of_cells: pd.Series, labels: list[str], what: str) -> np.ndarray:
    """The position in ``labels`` of each cell's label (int64), for strings or categoricals alike; a label
    ``labels`` lacks is a ``DataError`` that names it and ``what`` (the cells' source)."""
    codes = pd.Categorical(labels_of_cells, categories=labels).codes.astype(np.int64)
    if (codes < 0).any():
        unknown = sorted(set(labels_of_cells[codes < 0].astype(str)))
        raise DataError(
            f"{what}: {int((codes < 0).sum()):,} cells carry labels outside the {len(labels)} labels "
            f"({unknown[:5]}{' ...' if len(unknown) > 5 else ''}); rebuild them from the same selection"
        )
    return codes


@dataclass
class Selection:
    cells: pd.DataFrame  # OBS_COLUMNS + tech_sample + label (term id) + label_name
    labels: list[str]  # term ids, ordered by name (order_labels)
    report: dict = field(default_factory=dict)


#: Label sets shipped with the package, for ``filters.pinned_labels: bundled:<name>``.
BUNDLED_LABEL_SETS = {"sctab_2023-05-15": "sctab_cell_types_2023-05-15.txt"}
_TERM_ID = re.compile(r"^[A-Za-z]+:[0-9]+$")


def read_pinned_labels(spec: str) -> list[str]:
    """The entries of a ``filters.pinned_labels`` list: one Cell Ontology name or term id per line; blank lines
    and lines starting with ``#`` are skipped. ``bundled:<name>`` names a list in ``BUNDLED_LABEL_SETS``."""
    if spec.startswith("bundled:"):
        name = spec[len("bundled:") :]
        if name not in BUNDLED_LABEL_SETS:
            raise ConfigError(
                f"filters.pinned_labels {spec!r}: no bundled label set {name!r}; shipped: "
                f"{['bundled:' + n for n in BUNDLED_LABEL_SETS]}, or give a path to a file of CL names or ids"
            )
        path = Path(str(resources.files("hcebench") / "resources" / BUNDLED_LABEL_SETS[name]))
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"filters.pinned_labels {spec!r} is not a file; give a text file with one CL name or id per "
                f"line, 'bundled:sctab_2023-05-15', or null for no pin"
            )
    entries = [line.strip() for line in path.read_text().splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise ConfigError(f"filters.pinned_labels {spec!r}: {path} lists no label")
    return entries


def resolve_pinned_labels(spec: str, ontology: Ontology) -> list[str]:
    """Term ids of the pinned label set (``filters.pinned_labels``), in the list's order.

    A name maps to the live (non-obsolete) term of exactly that name in ``ontology``; an id must be a live term.
    Every entry that does not resolve (unknown, obsolete, ambiguous, or listed twice) is named in one error.
    """
    entries = read_pinned_labels(spec)
    terms_named: dict[str, list[str]] = {}
    for term, name in ontology.names.items():
        terms_named.setdefault(name, []).append(term)
    ids: list[str] = []
    problems: list[str] = []
    for entry in entries:
        if _TERM_ID.match(entry):
            candidates = [entry] if entry in ontology.names else []
        else:
            candidates = terms_named.get(entry, []) + terms_named.get(f"obsolete {entry}", [])
        live = [t for t in candidates if t not in ontology.obsolete]
        if len(live) == 1:
            ids.append(live[0])
        elif len(live) > 1:
            problems.append(f"{entry!r} names several live terms {live}")
        elif candidates:
            replaced = sorted({r for t in candidates for r in ontology.obsolete[t]})
            problems.append(
                f"{entry!r} is obsolete ({', '.join(candidates)}; replaced by: {', '.join(replaced) or 'none given'})"
            )
        else:
            problems.append(f"{entry!r} is not a term {'id' if _TERM_ID.match(entry) else 'name'}")
    seen: set[str] = set()
    for term in ids:
        if term in seen:
            problems.append(f"{term} ({ontology.names[term]}) is listed twice")
        seen.add(term)
    if problems:
        raise OntologyError(
            f"filters.pinned_labels {spec!r}: {len(problems)} of {len(entries)} entries do not resolve to one "
            f"live term of Cell Ontology {ontology.release} ({ontology.source}): "
            + "; ".join(problems)
            + ". "
            "Fix the list (names exactly as the ontology spells them, or CL ids), or set ontology.source to the "
            "CL release the list was written against."
        )
    return ids


def filters_versus_pin(
    obs: pd.DataFrame, pinned: list[str], filtered: list[str], reasons: dict[str, str], ontology: Ontology
) -> dict:
    """What the type filters would change in a pinned label set: ``would_add`` (types the filters keep that the
    pin lacks) and ``would_drop`` (pinned types the filters drop, with the filter's reason), each with its name
    and its cells and tech_samples in ``obs`` (primary cells of the kept assays)."""
    per_type = obs.groupby(obs["cell_type_ontology_term_id"].astype(str)).agg(
        n_cells=("soma_joinid", "size"), n_tech_samples=("tech_sample", "nunique")
    )

    def entry(term: str) -> dict:
        n_cells, n_ts = (int(v) for v in per_type.loc[term]) if term in per_type.index else (0, 0)
        return {"name": ontology.names.get(term, "?"), "n_cells": n_cells, "n_tech_samples": n_ts}

    pinned_set, filtered_set = set(pinned), set(filtered)
    absent = "no cell after the primary-data and assay filters"
    return {
        "n_labels_filters_keep": len(filtered),
        "would_add": {t: entry(t) for t in sorted(filtered_set - pinned_set)},
        "would_drop": {
            t: {**entry(t), "reason": reasons.get(t, absent)} for t in pinned if t not in filtered_set
        },
    }


#: ``filters.label_order`` values: how ``order_labels`` sorts the label set.
LABEL_ORDERS = ("casefold", "sctab")


def present_terms(obs: pd.DataFrame) -> list[str]:
    """The distinct cell_type_ontology_term_id values of ``obs``."""
    return sorted(set(obs["cell_type_ontology_term_id"].astype(str)))


def order_labels(terms, names: dict[str, str], order: str) -> list[str]:
    """``terms`` in label order: by name then term id.

    ``casefold``: names compared ignoring case (``str.lower``). ``sctab``: names compared as Python compares
    strings (case-sensitive, by code point), which is the order pandas gives the categories of a categorical
    built from the names: scTab's cell_type codes, hence the paper's output units. ``names`` maps each term to its
    name (for ``sctab`` the census's cell_type, the strings scTab's categorical held).
    """
    if order == "casefold":
        return sorted(terms, key=lambda t: (names[t].lower(), t))
    if order == "sctab":
        return sorted(terms, key=lambda t: (names[t], t))
    raise ConfigError(f"filters.label_order must be one of {list(LABEL_ORDERS)}, not {order!r}")


def check_root_term(filters: Filters, ontology: Ontology) -> None:
    """``filters.root_term`` must be a live term of the ontology: otherwise every label fails step 2 and the run
    would stop later with a misleading "too few cells" message."""
    root = filters.root_term
    if root not in ontology.names:
        raise ConfigError(
            f"filters.root_term {root!r} is not a term of Cell Ontology {ontology.release} ({ontology.source}); "
            "set it to a term id of that release (CL:0000003 is 'native cell') or point ontology.source at the "
            "release that defines it"
        )
    if root in ontology.obsolete:
        replaced = ", ".join(sorted(ontology.obsolete[root])) or "none given"
        raise ConfigError(
            f"filters.root_term {root!r} ({ontology.names[root]}) is obsolete in Cell Ontology {ontology.release} "
            f"(replaced by: {replaced}); set filters.root_term to a live term"
        )


def select_cells(obs: pd.DataFrame, ontology: Ontology, filters: Filters) -> Selection:
    """Apply scTab's type filters to obs already restricted to primary cells of the kept assays.

    With ``filters.pinned_labels`` set, the label set is the pinned one (those of its types that ``obs``
    holds) and the filters only report: ``report["filters_vs_pinned"]`` lists what they would add or drop.
    Cells whose label the ontology lacks or marks obsolete are dropped and counted
    (``report["labels_outside_ontology"]``); past ``filters.max_unknown_label_fraction`` of the cells, a
    ``DataError`` names their labels.
    """
    check_root_term(filters, ontology)
    obs = obs.copy()
    obs["tech_sample"] = tech_sample(obs)
    report: dict = {"cells_after_primary_assay": int(len(obs))}
    terms = obs["cell_type_ontology_term_id"].astype(str)
    names = None  # the census's own names, for labels the ontology does not know
    if "cell_type" in obs:
        pairs = obs.drop_duplicates("cell_type_ontology_term_id")
        names = dict(
            zip(pairs["cell_type_ontology_term_id"].astype(str), pairs["cell_type"].astype(str), strict=True)
        )
    report["labels_outside_ontology"] = check_labels_in_ontology(
        terms,
        ontology,
        filters.max_unknown_label_fraction,
        what="selection (primary cells of the kept assays)",
        names=names,
    )

    unknown = sorted(t for t in terms.unique() if t not in ontology.names)
    dropped_by_ontology: dict[str, str] = {}
    for t in terms.unique():
        if t in unknown:
            dropped_by_ontology[t] = f"not in Cell Ontology {ontology.release}"
        elif t in ontology.obsolete:
            dropped_by_ontology[t] = f"obsolete in Cell Ontology {ontology.release}"
        elif not ontology.is_subtype(t, filters.root_term):
            dropped_by_ontology[t] = f"not a descendant of {filters.root_term}"
        elif len(ontology.ancestors(t)) <= filters.min_ancestors:
            dropped_by_ontology[t] = f"{len(ontology.ancestors(t))} is_a ancestors <= {filters.min_ancestors}"
    passing = ~terms.isin(list(dropped_by_ontology))
    passed = obs[passing]
    report["cells_after_ontology_filter"] = int(len(passed))

    # Grouped by the label's string (sorted as strings), whether obs holds strings or categoricals.
    per_type = passed.groupby(terms[passing]).agg(
        n_cells=("soma_joinid", "size"), n_tech_samples=("tech_sample", "nunique")
    )
    keep = per_type[
        (per_type.n_cells >= filters.min_cells_per_type)
        & (per_type.n_tech_samples > filters.min_tech_samples_per_type)
    ]
    dropped_by_counts = {
        t: f"{int(r.n_cells)} cells in {int(r.n_tech_samples)} tech_samples"
        for t, r in per_type.drop(keep.index).iterrows()
    }
    pin = filters.pinned_labels
    if pin:
        pinned = resolve_pinned_labels(pin, ontology)
        reasons = {**dropped_by_ontology, **dropped_by_counts}
        report["filters_vs_pinned"] = filters_versus_pin(obs, pinned, list(keep.index), reasons, ontology)
        obs = obs[terms.isin(pinned)].copy()
        if obs.empty:
            raise ConfigError(
                f"no primary cell of the kept assays has a label of filters.pinned_labels {pin!r}; "
                "check the list against the census release (census.train_release) and filters.assays"
            )
        present = set(obs["cell_type_ontology_term_id"].astype(str))
        report["pinned_labels"] = {
            "source": pin,
            "n_pinned": len(pinned),
            "n_present": len(present),
            "absent": {t: ontology.names[t] for t in pinned if t not in present},
        }
    else:
        obs = passed[passed["cell_type_ontology_term_id"].isin(keep.index)].copy()
        if obs.empty:
            raise ValueError(
                "no cell type passes filters.min_cells_per_type / filters.min_tech_samples_per_type "
                f"({filters.min_cells_per_type} cells in > {filters.min_tech_samples_per_type} tech_samples); "
                "lower them for a small census"
            )
    # casefold sorts the ontology's names (as the suite always has); sctab the census's, as scTab's categorical.
    kept = present_terms(obs)
    census_names = names if names is not None and filters.label_order == "sctab" else {}
    labels = order_labels(
        kept, {t: census_names.get(t) or ontology.name(t) for t in kept}, filters.label_order
    )
    label = obs["cell_type_ontology_term_id"]
    if isinstance(label.dtype, pd.CategoricalDtype):  # as read: a code per cell, not a string
        label = label.cat.remove_unused_categories().cat.rename_categories(str)
    else:
        label = label.astype(str)
    obs["label"] = label
    obs["label_name"] = label.map(ontology.names)
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
    """Assign each cell a split as scTab does (02_create_train_val_test_split.ipynb).

    ``tech_samples`` must be in the release's cell order (soma_joinid order, as ``read_obs`` returns obs): the
    unique tech_samples are taken in order of first appearance, shuffled in place by one
    ``np.random.default_rng(seed)``, and cut into ``n − n_val − n_test`` train, then ``n_val = ceil(f_val · n)``
    val, then ``n_test = ceil(f_test · n)`` test tech_samples (``fractions = [f_train, f_val, f_test]``; train
    takes the rest, so ``f_train`` only has to make the three sum to 1): 30 tech_samples at 0.7/0.15/0.15 give
    20 / 5 / 5. The same set in another row order can give another split.
    """
    samples = np.array(pd.unique(tech_samples).tolist())  # as the notebook: unique().tolist(), then np.array
    np.random.default_rng(seed).shuffle(samples)
    n = len(samples)
    n_val = math.ceil(fractions[1] * n)
    n_test = math.ceil(fractions[2] * n)
    n_train = n - n_val - n_test
    if n_train <= 0 or n_val == 0 or n_test == 0:
        raise ValueError(
            f"{n} tech_samples cannot be split {fractions} (ceil of the val and test shares, train the rest) "
            "with every split non-empty; the census is too small for split.fractions"
        )
    assignment = {ts: STORE_SPLITS[0] for ts in samples[:n_train]}
    assignment.update({ts: STORE_SPLITS[1] for ts in samples[n_train : n_train + n_val]})
    assignment.update({ts: STORE_SPLITS[2] for ts in samples[n_train + n_val :]})
    return tech_samples.map(assignment).astype(object)  # strings, also where tech_samples is a categorical


#: What ``split.by: cell`` costs, stated in selection/report.json.
CELL_SPLIT_CAVEAT = (
    "split.by is cell: every tech_sample's cells are cut into train, val and test, so the in-distribution test "
    "shares donors and batches with training (leakage): its scores are optimistic, and the model's choice of epoch "
    "(on val) too. The OOD scores are unaffected: the OOD datasets are not in the training release."
)


def split_cells(tech_samples: pd.Series, seed: int, fractions: list[float]) -> pd.Series:
    """Assign each cell a split within its tech_sample (``split.by: cell``), for a release with too few tech_samples.

    One ``np.random.default_rng(seed)`` permutes each tech_sample's cells in turn (tech_samples in order of first
    appearance); of a tech_sample's ``n`` cells, ``ceil(f_val · n)`` go to val and ``ceil(f_test · n)`` to test, the
    rest to train, as ``split_tech_samples`` cuts tech_samples. A tech_sample of fewer than 3 cells goes to train
    whole. Cells of one donor then sit in every split: read ``CELL_SPLIT_CAVEAT``.
    """
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(tech_samples)
    out = np.empty(len(tech_samples), dtype=object)
    for k in range(len(uniques)):
        rows = np.flatnonzero(codes == k)
        rows = rows[rng.permutation(len(rows))]
        n = len(rows)
        if n < 3:
            out[rows] = STORE_SPLITS[0]
            continue
        n_val = math.ceil(fractions[1] * n)
        n_test = math.ceil(fractions[2] * n)
        n_train = max(n - n_val - n_test, 1)
        out[rows[:n_train]] = STORE_SPLITS[0]
        out[rows[n_train : n_train + n_val]] = STORE_SPLITS[1]
        out[rows[n_train + n_val :]] = STORE_SPLITS[2]
    return pd.Series(out, index=tech_samples.index)


def store_order(split: pd.Series, seed: int, row_multiple: int = 1) -> dict[str, np.ndarray]:
    """scTab's on-disk cell order of each split: ``{split: positions into split's rows, in the order to write}``.

    ``split`` is the split of each cell, in the release's cell order. A fresh ``np.random.default_rng(seed)``
    permutes the cells of train, then val, then test (one ``permutation`` each, in that order, from the same
    generator), as scTab does before writing its store "to break up data sets": consecutive rows of a split are
    then random cells, not runs of one dataset and donor. With ``row_multiple`` > 1 each split keeps the first
    ``(n // row_multiple) * row_multiple`` positions of its permutation (``split.row_multiple``; scTab's 1,024-row
    parquet row groups, 03_write_store_merlin.ipynb): the dropped tail is a random handful of cells.
    """
    if row_multiple < 1:
        raise ConfigError(f"split.row_multiple must be at least 1, not {row_multiple}")
    rng = np.random.default_rng(seed)
    labels = split.to_numpy()
    order = {}
    for name in STORE_SPLITS:
        rows = np.flatnonzero(labels == name)
        permuted = rows[rng.permutation(len(rows))]
        order[name] = permuted[: (len(permuted) // row_multiple) * row_multiple]
        if len(rows) and not len(order[name]):
            raise ConfigError(
                f"split {name!r} has {len(rows)} cells, fewer than split.row_multiple {row_multiple}: it would be "
                "empty; lower split.row_multiple (1 keeps every cell)"
            )
    return order


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


def select_from_census(source: dict, settings: SelectionSettings, ontology: Ontology) -> Selection:
    """Read the training release's obs, apply the filters, and assign tech_sample splits."""
    filters = settings.filters
    check_root_term(filters, ontology)  # before the read: on a real census that takes minutes
    with open_census(source) as census:
        # String columns as categoricals: a code per cell, not a Python string (~750 bytes per cell in all).
        obs = read_obs(
            census, obs_value_filter(filters), OBS_COLUMNS, organism=settings.census.organism, plain=False
        )
        release = census_release(source, census)
    if obs.empty:
        raise ValueError(
            f"no cell of census {source} passes filters.is_primary_data / filters.assays "
            f"({obs_value_filter(filters)}); check the assay names against the census obs"
        )
    selection = select_cells(obs, ontology, filters)
    if len(selection.labels) < 2:
        raise ValueError(
            f"the filters leave {len(selection.labels)} cell type ({', '.join(selection.labels)}): a benchmark of "
            "one label scores every model 1.0; lower filters.min_cells_per_type / min_tech_samples_per_type or "
            "widen filters.assays"
        )
    # scTab takes tech_samples in order of first appearance in the release's cell order: soma_joinid order.
    if not selection.cells["soma_joinid"].is_monotonic_increasing:
        raise RuntimeError("selected cells are not in soma_joinid order; the split would not be scTab's")
    split = settings.split
    if split.by == "cell":
        selection.cells["split"] = split_cells(
            selection.cells["tech_sample"], split.seed, list(split.fractions)
        )
        selection.report["split_leakage_caveat"] = CELL_SPLIT_CAVEAT
    else:
        selection.cells["split"] = split_tech_samples(
            selection.cells["tech_sample"], split.seed, list(split.fractions)
        )
    selection.report["split_by"] = split.by
    counts = selection.cells.groupby("split").agg(
        cells=("soma_joinid", "size"), tech_samples=("tech_sample", "nunique")
    )
    selection.report.update(
        census_release=release,
        cl_release=ontology.release,
        splits={s: {k: int(v) for k, v in counts.loc[s].items()} for s in STORE_SPLITS if s in counts.index},
    )
    return selection
