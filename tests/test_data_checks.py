"""hcebench.data.checks: bad counts named by dataset, all-zero cells and labels outside the ontology counted."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hcebench.data import checks as checks_module
from hcebench.data.checks import (
    CountChecks,
    any_bad_value,
    bad_values,
    check_fraction,
    check_labels_in_ontology,
    labels_outside_ontology,
)
from hcebench.errors import DataError
from hcebench.hierarchy.ontology import Ontology


def test_bad_values_are_classed_once_each():
    values = np.array([1.0, np.nan, np.inf, -np.inf, -1.0, 0.5, 2.0, -0.5], dtype=np.float32)
    masks = bad_values(values, integer=True)
    assert {k: np.flatnonzero(m).tolist() for k, m in masks.items()} == {
        "NaN": [1],
        "infinite": [2, 3],
        "negative": [4, 7],
        "non-integer": [5],
    }
    assert not bad_values(values, integer=False)["non-integer"].any()  # normalised values may be fractional


def test_the_fast_path_looks_at_every_block(monkeypatch):
    monkeypatch.setattr(checks_module, "BLOCK", 4)
    clean = np.arange(10, dtype=np.float32)
    assert not any_bad_value(clean, integer=True)
    for bad, integer in ((np.nan, False), (-1.0, False), (np.inf, False), (0.5, True)):
        values = clean.copy()
        values[9] = bad  # in the last, short block
        assert any_bad_value(values, integer=integer), bad
    assert not any_bad_value(clean + 0.5, integer=False)


def test_bad_counts_name_each_dataset_of_the_chunk_and_their_counts():
    x = sp.csr_matrix(
        np.array(
            [
                [1, 0, 2],
                [np.nan, 0.5, 0],
                [0, -3, 0],
                [np.inf, 0, 0],
            ],
            dtype=np.float32,
        )
    )
    checks = CountChecks("census 2023-05-15 X/raw", fix="Check the release.")
    with pytest.raises(DataError) as err:
        checks.check(x, ["ok", "dsA", "dsA", "dsB"])
    assert str(err.value) == (
        "census 2023-05-15 X/raw: 4 value(s) that are not non-negative integer counts in 2 dataset(s): "
        "dsA (1 NaN, 1 negative, 1 non-integer), dsB (1 infinite). Check the release."
    )
    assert sum(checks.cells.values()) == 0  # a failed chunk is not tallied

    normalised = CountChecks("scTab store part.parquet", integer=False)
    normalised.check(sp.csr_matrix(np.array([[0.25, 1.5]], dtype=np.float32)), ["d"])  # fractional: fine
    with pytest.raises(
        DataError, match=r"not finite, non-negative values in 1 dataset\(s\): d \(1 negative\)\.$"
    ):
        normalised.check(sp.csr_matrix(np.array([[-0.25, 1.5]], dtype=np.float32)), ["d"])


def test_a_long_list_of_datasets_is_cut_short():
    x = sp.csr_matrix(np.full((7, 1), 0.5, dtype=np.float32))
    with pytest.raises(
        DataError, match=r"in 7 dataset\(s\): d0 \(1 non-integer\), .*d4 \(1 non-integer\) and 2 more"
    ):
        CountChecks("x").check(x, [f"d{i}" for i in range(7)])


def test_zero_cells_are_tallied_merged_and_checked_against_the_limit(caplog):
    checks = CountChecks("census 2023-12-15 X/raw")
    checks.check(sp.csr_matrix(np.array([[0, 0], [1, 0], [0, 0]], dtype=np.float32)), ["a", "a", "b"])
    worker = CountChecks("census 2023-12-15 X/raw")
    worker.check(sp.csr_matrix(np.array([[0, 0], [0, 4]], dtype=np.float32)), ["b", "c"])
    checks.merge(worker.to_dict())
    assert dict(checks.cells) == {"a": 2, "b": 2, "c": 1}
    assert dict(checks.zero_cells) == {"a": 1, "b": 2}

    with caplog.at_level("WARNING", logger="hcebench.data.checks"):
        report = checks.zero_cell_report(0.6)
    assert report == {
        "cells": 5,
        "zero_cells": 3,
        "zero_cell_fraction": 0.6,
        "max_zero_cell_fraction": 0.6,
        "zero_cells_by_dataset": {"b": 2, "a": 1},
    }
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == (
        "census 2023-12-15 X/raw: all-zero cells (no count on any of the store's genes): 3 of 5 cells (60.00%, "
        "within filters.max_zero_cell_fraction: 0.6); datasets: b (2 of 2), a (1 of 2)"
    )
    with pytest.raises(DataError) as err:
        checks.zero_cell_report(0.5)
    assert str(err.value).startswith(
        "census 2023-12-15 X/raw: all-zero cells (no count on any of the store's genes): 3 of 5 cells (60.00%), "
        "more than filters.max_zero_cell_fraction: 0.5; datasets: b (2 of 2), a (1 of 2). Fix: check the gene list"
    )
    assert str(err.value).endswith("or raise filters.max_zero_cell_fraction to accept them")


def test_check_fraction_is_quiet_at_zero_and_the_limit_is_inclusive(caplog):
    with caplog.at_level("WARNING", logger="hcebench.data.checks"):
        assert check_fraction(0, 10, 0.0, key="k", what="w", detail="d", fix="f") == 0.0
        assert check_fraction(1, 10, 0.1, key="k", what="w", detail="d", fix="f") == 0.1
    assert len(caplog.records) == 1
    with pytest.raises(
        DataError, match=r"^w: 2 of 10 cells \(20.00%\), more than k: 0.1; d. Fix: f, or raise k"
    ):
        check_fraction(2, 10, 0.1, key="k", what="w", detail="d", fix="f")


def test_labels_outside_the_ontology_are_counted_with_their_reason():
    onto = Ontology(
        names={"A": "a cell", "B": "b cell", "OLD": "obsolete old cell"},
        parents={"A": (), "B": ("A",), "OLD": ()},
        obsolete={"OLD": ("B",)},
        release="v1",
    )
    terms = pd.Series(["A", "B", "OLD", "NEW", "NEW", "B"])
    assert labels_outside_ontology(terms, onto, {"NEW": "new cell"}) == {
        "NEW": {"name": "new cell", "n_cells": 2, "why": "not in Cell Ontology v1"},
        "OLD": {
            "name": "obsolete old cell",
            "n_cells": 1,
            "why": "obsolete in Cell Ontology v1 (replaced by: B)",
        },
    }
    report = check_labels_in_ontology(terms, onto, 0.5, what="OOD")
    assert (report["n_cells"], report["fraction"], report["max_fraction"]) == (3, 0.5, 0.5)
    with pytest.raises(
        DataError, match=r"NEW '\?' \(2 cells; not in Cell Ontology v1\), OLD 'obsolete old cell'"
    ):
        check_labels_in_ontology(terms, onto, 0.4, what="OOD")
