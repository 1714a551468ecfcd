"""The OOD leakage audit on the tiny simulated census, and on a hand-built case."""

import pandas as pd
from hcebench.config import schema_defaults
from hcebench.data.audit import (
    LABEL_RULE_COLUMNS,
    audit_label_rules,
    audit_ood,
    label_rule_disagreement,
    training_label_names,
)
from hcebench.data.census import open_census, read_obs
from hcebench.data.selection import obs_value_filter
from hcebench.settings import Filters
from sim_fixtures import bundled_ontology


def test_audit_on_the_simulated_census(tiny_census):
    train = {"uri": str(tiny_census / "2023-05-15")}
    ood = {"uri": str(tiny_census / "2023-12-15")}
    with open_census(train) as census:
        cells = read_obs(census, "is_primary_data == True", ["dataset_id", "donor_id"])
    table, totals = audit_ood(train, ood, cells)
    assert totals["n_ood_datasets"] == len(table) > 0
    # The simulator's re-upload is non-primary and copies training cells: the audit must see both.
    reupload = table[table["non_primary_cells"] > 0]
    assert len(reupload) >= 1 and (reupload["non_primary_cells"] == reupload["n_cells"]).all()
    assert totals["non_primary_cells"] == int(reupload["non_primary_cells"].sum())
    assert set(table.columns) >= {"shared_collection", "n_shared_donors", "title_matches_training"}
    # Auditing against no training cells finds no shared donors.
    _, none = audit_ood(train, ood, cells.iloc[0:0])
    assert none["datasets_with_shared_donors"] == 0 and none["datasets_in_training_collections"] == 0


# -- OOD labels by term id (the suite) vs by name (the paper's code) --------------------------------------------
def test_label_rule_disagreement_by_hand():
    names = {"CL:1": "T cell", "CL:2": "B cell", "CL:3": "monocyte"}
    rows = (
        [("CL:1", "T cell", "ds1")] * 3  # both rules: CL:1
        + [("CL:2", "B lymphocyte", "ds1"), ("CL:2", "B lymphocyte", "ds2")]  # renamed term: by id only
        + [("CL:9", "monocyte", "ds2")] * 4  # a training name on another term: by name only
        + [("CL:3", "B cell", "ds3")]  # by id CL:3, by name CL:2
        + [("CL:8", "NK cell", "ds1")] * 5  # neither
    )
    obs = pd.DataFrame(rows, columns=["cell_type_ontology_term_id", "cell_type", "dataset_id"])
    table, totals = label_rule_disagreement(obs, names)
    assert list(table.columns) == LABEL_RULE_COLUMNS
    assert table.to_dict("records") == [
        {
            "rule": "different_label",
            "ood_term_id": "CL:3",
            "ood_name": "B cell",
            "label_by_id": "CL:3",
            "label_by_name": "CL:2",
            "n_cells": 1,
            "n_datasets": 1,
        },
        {
            "rule": "id_not_name",
            "ood_term_id": "CL:2",
            "ood_name": "B lymphocyte",
            "label_by_id": "CL:2",
            "label_by_name": "",
            "n_cells": 2,
            "n_datasets": 2,
        },
        {
            "rule": "name_not_id",
            "ood_term_id": "CL:9",
            "ood_name": "monocyte",
            "label_by_id": "",
            "label_by_name": "CL:3",
            "n_cells": 4,
            "n_datasets": 1,
        },
    ]
    assert totals == {
        "cells": 15,
        "matched_by_id": 6,
        "matched_by_name": 8,
        "same_label": 3,
        "id_not_name": 2,
        "name_not_id": 4,
        "different_label": 1,
    }
    # No disagreement: an empty table with the same columns.
    agree, agree_totals = label_rule_disagreement(obs.iloc[:3], names)
    assert agree.empty and list(agree.columns) == LABEL_RULE_COLUMNS
    assert agree_totals["same_label"] == 3 and agree_totals["id_not_name"] == 0


def test_training_label_names_prefer_the_census_name():
    cl = bundled_ontology()
    b_cell, cd8 = "CL:0000236", "CL:0000625"
    cells = pd.DataFrame({"label": [b_cell, b_cell], "cell_type": ["B cell, as the census spells it"] * 2})
    assert training_label_names([b_cell, cd8], cells, cl) == {
        b_cell: "B cell, as the census spells it",
        cd8: cl.name(cd8),  # no cell carries it: the ontology's name
    }
    # A scTab store import keeps no names: all from the ontology.
    assert training_label_names([b_cell], cells[["label"]], cl) == {b_cell: "B cell"}


def test_label_rules_on_the_simulated_census(tiny_census):
    train = {"uri": str(tiny_census / "2023-05-15")}
    ood = {"uri": str(tiny_census / "2023-12-15")}
    filters = Filters.from_params(
        {
            **schema_defaults("filters"),
            "is_primary_data": True,
            "assays": ["10x 3' v2", "10x 3' v3", "10x 5' v2"],
        }
    )
    with open_census(train) as census:
        cells = read_obs(
            census,
            "is_primary_data == True",
            ["dataset_id", "donor_id", "cell_type_ontology_term_id", "cell_type"],
        )
    cells = cells.rename(columns={"cell_type_ontology_term_id": "label"})
    labels = sorted(cells["label"].unique())
    table, _ = audit_ood(train, ood, cells)
    names = training_label_names(labels, cells, bundled_ontology())
    rules, totals = audit_label_rules(ood, table["dataset_id"].tolist(), names, filters)
    with open_census(ood) as census:
        obs = read_obs(
            census,
            obs_value_filter(filters, table["dataset_id"].tolist()),
            ["cell_type_ontology_term_id"],
        )
    # The simulator names every term as the ontology does: the two rules agree on every OOD cell.
    assert totals["cells"] == len(obs) > 0
    assert totals["matched_by_id"] == totals["matched_by_name"] == totals["same_label"]
    assert totals["matched_by_id"] == int(obs["cell_type_ontology_term_id"].isin(labels).sum()) > 0
    assert rules.empty
