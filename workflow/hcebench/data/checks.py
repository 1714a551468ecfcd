"""Checks on data where it enters the suite: counts read from a census or a scTab store, labels against the ontology.

A NaN, an infinite, a negative or (where raw counts are expected) a fractional value would pass silently through
normalisation into every model and metric; each is an error that names the datasets holding them and how many.
Two kinds of cells are legitimate in small numbers but a sign of a wrong source in large ones, so they are counted,
reported (the rule log and the step's report json) and an error only past a configured fraction:

- all-zero cells, with no count on any of the store's genes (``filters.max_zero_cell_fraction``); the store
  keeps them (normalisation scales a zero row by 1), but a model can learn nothing from them;
- cells whose label is absent from, or obsolete in, the Cell Ontology release (``filters.max_unknown_label_fraction``):
  they cannot be placed in the hierarchy and are dropped. Many of them mean ``ontology.source`` is not the release
  the census was annotated with.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.errors import DataError
from hcebench.hierarchy.ontology import Ontology

log = logging.getLogger(__name__)

#: The kinds of bad value, in the order a value is classed (a value counts under the first kind it matches).
BAD_VALUE_KINDS = ("NaN", "infinite", "negative", "non-integer")

#: Datasets (or labels) an error message lists before "and N more".
LISTED = 5


def bad_values(values: np.ndarray, *, integer: bool) -> dict[str, np.ndarray]:
    """Boolean masks over ``values``, one per kind of ``BAD_VALUE_KINDS``, disjoint (``-inf`` is infinite, not
    negative). ``integer=False`` (normalised values) leaves fractional values alone."""
    values = np.asarray(values)
    nan = np.isnan(values)
    infinite = np.isinf(values)
    negative = ~infinite & (values < 0)
    if integer:
        fractional = np.isfinite(values) & ~negative & (values != np.floor(values))
    else:
        fractional = np.zeros(values.shape, dtype=bool)
    return {"NaN": nan, "infinite": infinite, "negative": negative, "non-integer": fractional}


#: Values checked at a time on the fast path: bounds the temporaries to a few MB on chunks of ~10^8 values.
BLOCK = 1 << 22


def any_bad_value(values: np.ndarray, *, integer: bool) -> bool:
    """Whether any of ``values`` is of a kind in ``BAD_VALUE_KINDS``; checked block by block, so a clean chunk of
    a census read (the usual case) costs no allocation the size of the chunk."""
    values = np.asarray(values)
    for lo in range(0, len(values), BLOCK):
        v = values[lo : lo + BLOCK]
        if not np.isfinite(v).all() or (v < 0).any() or (integer and (v != np.floor(v)).any()):
            return True
    return False


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


class CountChecks:
    """The checks of one read of counts, and its tally: cells and all-zero cells per dataset.

    ``what`` names the data in messages (``"census 2023-05-15 X/raw (store split train)"``); ``integer`` says
    raw counts are expected, so a fractional value is an error; ``fix`` ends the bad-value error with what to do.
    ``check`` is called on each chunk as it is read; a worker process hands its tally back with ``to_dict`` and
    the parent adds it with ``merge``.
    """

    def __init__(self, what: str, *, integer: bool = True, fix: str = ""):
        self.what, self.integer, self.fix = what, integer, fix
        self.cells: Counter[str] = Counter()
        self.zero_cells: Counter[str] = Counter()

    def check(self, x: sp.csr_matrix, datasets: Sequence[str] | np.ndarray) -> None:
        """Check chunk ``x`` (cells × genes, as read) whose row ``i`` is a cell of dataset ``datasets[i]``.

        Raises ``DataError`` naming every dataset of the chunk with bad values and their count by kind; otherwise
        adds the chunk's cells and all-zero cells to the tally.
        """
        x = sp.csr_matrix(x)
        datasets = np.asarray(datasets, dtype=object)
        if len(datasets) != x.shape[0]:
            raise ValueError(f"{len(datasets)} dataset ids for {x.shape[0]} rows")
        if any_bad_value(x.data, integer=self.integer):
            masks = bad_values(x.data, integer=self.integer)
            bad = np.logical_or.reduce(list(masks.values()))
            row_of_value = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            table = pd.DataFrame(
                {
                    "dataset_id": datasets[row_of_value[bad]].astype(str),
                    "kind": np.select([m[bad] for m in masks.values()], list(masks), default=""),
                }
            )
            counts = table.groupby(["dataset_id", "kind"]).size()
            by_dataset = counts.groupby(level=0).sum().sort_values(ascending=False, kind="stable")
            described = []
            for dataset in by_dataset.index:
                kinds = counts.loc[dataset]
                parts = ", ".join(f"{int(kinds[k]):,} {k}" for k in BAD_VALUE_KINDS if k in kinds.index)
                described.append(f"{dataset} ({parts})")
            expected = "non-negative integer counts" if self.integer else "finite, non-negative values"
            raise DataError(
                f"{self.what}: {int(bad.sum()):,} value(s) that are not {expected} in {len(by_dataset)} "
                f"dataset(s): {_listed(described)}. {self.fix}".rstrip()
            )
        row_sums = np.asarray(x.sum(axis=1)).ravel()
        self.cells.update(Counter(datasets.astype(str).tolist()))
        self.zero_cells.update(Counter(datasets[row_sums == 0].astype(str).tolist()))

    def to_dict(self) -> dict:
        return {"cells": dict(self.cells), "zero_cells": dict(self.zero_cells)}

    def merge(self, tally: Mapping) -> None:
        """Add a tally of ``to_dict``'s form (a worker's)."""
        self.cells.update(tally.get("cells", {}))
        self.zero_cells.update(tally.get("zero_cells", {}))

    def zero_cell_report(self, limit: float, key: str = "filters.max_zero_cell_fraction") -> dict:
        """The all-zero cells of the tally, checked against ``limit`` (a fraction of all cells read).

        Returns ``{cells, zero_cells, zero_cell_fraction, max_zero_cell_fraction, zero_cells_by_dataset}`` and
        logs the count (a warning when there are any); raises ``DataError`` naming the datasets with most of them
        above ``limit``.
        """
        total, zero = sum(self.cells.values()), sum(self.zero_cells.values())
        if not zero:
            log.info("%s: no all-zero cell among %s cells read", self.what, f"{total:,}")
        by_dataset = dict(sorted(self.zero_cells.items(), key=lambda kv: (-kv[1], kv[0])))
        described = [f"{d} ({n:,} of {self.cells[d]:,})" for d, n in by_dataset.items() if n]
        check_fraction(
            zero,
            total,
            limit,
            key=key,
            what=f"{self.what}: all-zero cells (no count on any of the store's genes)",
            detail=f"datasets: {_listed(described)}",
            fix="check the gene list (genes.source, genes.match) against the release, or leave those datasets out",
        )
        return {
            "cells": int(total),
            "zero_cells": int(zero),
            "zero_cell_fraction": zero / total if total else 0.0,
            "max_zero_cell_fraction": float(limit),
            "zero_cells_by_dataset": {d: int(n) for d, n in by_dataset.items() if n},
        }


def check_fraction(n: int, total: int, limit: float, *, key: str, what: str, detail: str, fix: str) -> float:
    """``n`` of ``total`` cells are ``what``: a warning naming them (``detail``) when any, an error past ``limit``.

    The error says which config key (``key``) sets the limit and what to do (``fix``); both fit on one line.
    Returns the fraction.
    """
    fraction = n / total if total else 0.0
    if fraction > limit:
        raise DataError(
            f"{what}: {n:,} of {total:,} cells ({fraction:.2%}), more than {key}: {limit:g}; {detail}. "
            f"Fix: {fix}, or raise {key} to accept them"
        )
    if n:
        log.warning(
            "%s: %s of %s cells (%.2f%%, within %s: %g); %s",
            what,
            f"{n:,}",
            f"{total:,}",
            100 * fraction,
            key,
            limit,
            detail,
        )
    return fraction


def labels_outside_ontology(
    terms: pd.Series, ontology: Ontology, names: Mapping[str, str] | None = None
) -> dict[str, dict]:
    """The labels of ``terms`` (one term id per cell) that ``ontology`` lacks or marks obsolete:
    ``{term: {"name", "n_cells", "why"}}``, most cells first. ``names`` gives the census's name of a term the
    ontology does not know."""
    counts = terms.astype(str).value_counts(sort=False)
    out = {}
    for term, n in counts.items():
        if term not in ontology.names:
            why = f"not in Cell Ontology {ontology.release}"
        elif term in ontology.obsolete:
            replaced = ", ".join(sorted(ontology.obsolete[term])) or "none given"
            why = f"obsolete in Cell Ontology {ontology.release} (replaced by: {replaced})"
        else:
            continue
        name = ontology.names.get(term) or (names or {}).get(term, "?")
        out[term] = {"name": name, "n_cells": int(n), "why": why}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["n_cells"], kv[0])))


def check_labels_in_ontology(
    terms: pd.Series,
    ontology: Ontology,
    limit: float,
    *,
    what: str,
    names: Mapping[str, str] | None = None,
    key: str = "filters.max_unknown_label_fraction",
) -> dict:
    """Count the cells of ``terms`` whose label ``ontology`` lacks or marks obsolete, and check them against ``limit``.

    Returns the report entry ``{n_cells, fraction, max_fraction, labels}`` (``labels`` as
    ``labels_outside_ontology``); logs a warning when there are any; raises ``DataError`` naming the labels past
    ``limit``.
    """
    labels = labels_outside_ontology(terms, ontology, names)
    n = sum(v["n_cells"] for v in labels.values())
    if not n:
        log.info(
            "%s: every label of %s cells is a live term of Cell Ontology %s",
            what,
            f"{len(terms):,}",
            ontology.release,
        )
    described = [f"{t} {v['name']!r} ({v['n_cells']:,} cells; {v['why']})" for t, v in labels.items()]
    fraction = check_fraction(
        n,
        len(terms),
        limit,
        key=key,
        what=f"{what}: cells whose label is absent from or obsolete in Cell Ontology {ontology.release}, dropped",
        detail=f"labels: {_listed(described)}",
        fix="set ontology.source to the Cell Ontology release the census was annotated with",
    )
    return {"n_cells": int(n), "fraction": fraction, "max_fraction": float(limit), "labels": labels}
