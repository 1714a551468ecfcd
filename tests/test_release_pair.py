"""Any release pair: a simulated pair whose newer release follows Census schema 2.4.0 (shared feature names,
" || " diseases, a revised dataset, a duplicated primary cell) through the OOD build and the audit; the dataset
diff on both schemas; the CL release diff on hand-made and on the real releases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hcebench.config import load_config, schema_defaults
from hcebench.data.audit import STATE_PEAK_LINE, audit_duplicates, duplicates_where
from hcebench.data.census import open_census, read_datasets, read_obs, read_var
from hcebench.data.ood import build_ood_set
from hcebench.data.releases import MULTI_VALUE, assay_diff, dataset_diff, zero_fill_report
from hcebench.data.selection import check_root_term, select_from_census
from hcebench.errors import ConfigError
from hcebench.evaluation.metrics import metrics_table
from hcebench.hierarchy.cl_diff import (
    ReleaseTerms,
    cl_release_diff,
    read_cellxgene_json,
    release_from_obo,
    resolve_labels,
)
from hcebench.hierarchy.ontology import Ontology, load_ontology
from hcebench.settings import Filters, OodSettings, SelectionSettings
from sim_fixtures import OOD_RELEASE, TRAIN_RELEASE, build_tiny_census, bundled_ontology

KNOBS = dict(
    n_revised_datasets=1, n_shared_feature_names=4, n_multi_disease_datasets=2, n_duplicate_primary_cells=7
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The tiny census with every schema-2.4.0 knob on, its training labels, and the OOD set built from it."""
    root = build_tiny_census(tmp_path_factory.mktemp("pair") / "sim", **KNOBS)
    config = load_config(Path(__file__).parent / "data" / "tiny_config.yaml")
    train, ood = ({"uri": str(root / r)} for r in (TRAIN_RELEASE, OOD_RELEASE))
    selection = select_from_census(train, SelectionSettings.from_config(config), bundled_ontology())
    with open_census(train) as census:
        store_genes = read_var(census)[["feature_id", "feature_name"]]
    out = tmp_path_factory.mktemp("pair_ood") / "ood"
    meta = build_ood_set(
        train,
        ood,
        selection.labels,
        store_genes,
        OodSettings.from_config(config),
        out,
        ontology=bundled_ontology(),
    )
    return {
        "root": root,
        "train": train,
        "ood": ood,
        "config": config,
        "selection": selection,
        "meta": meta,
        "out": out,
    }


def test_the_newer_release_follows_schema_2_4_conventions(pair):
    with open_census(pair["train"]) as census:
        old = read_datasets(census)
    with open_census(pair["ood"]) as census:
        new = read_datasets(census)
        var = read_var(census)
        obs = read_obs(census, None, ["dataset_id", "disease", "disease_ontology_term_id", "is_primary_data"])
    both = old.merge(new, on="dataset_id", suffixes=("_old", "_new"))
    changed = both[both["dataset_version_id_old"] != both["dataset_version_id_new"]]
    assert len(changed) == KNOBS["n_revised_datasets"]
    assert (
        var["feature_id"].is_unique
        and var["feature_name"].duplicated().sum() == KNOBS["n_shared_feature_names"]
    )
    joined = obs[obs["disease"].str.contains(MULTI_VALUE, regex=False)]
    assert joined["dataset_id"].nunique() == KNOBS["n_multi_disease_datasets"]
    assert joined["disease_ontology_term_id"].str.count(r"\|\|").eq(1).all()
    manifest = json.loads((pair["root"] / "manifest.json").read_text())
    reupload = next(d for d in manifest["datasets"] if d["kind"] == "duplicate")
    assert reupload["primary_rows"] == KNOBS["n_duplicate_primary_cells"]
    assert {k: manifest["config"][k] for k in KNOBS} == KNOBS
    mixed = obs[obs["dataset_id"] == reupload["dataset_id"]]
    assert int(mixed["is_primary_data"].sum()) == KNOBS["n_duplicate_primary_cells"] < len(mixed)


def test_the_ood_build_reports_each_release_difference(pair):
    meta, report = pair["meta"], pair["meta"]["release_pair"]
    datasets = report["datasets"]
    assert datasets["revised_by"] == "dataset_version_id" and datasets["n_revised"] == 1
    assert datasets["n_removed"] == 0 and datasets["new"] == sorted(meta["new_dataset_ids"])
    # The revised dataset is listed, not added to the OOD set: its cells were trained on.
    assert datasets["revised"][0]["dataset_id"] not in meta["new_dataset_ids"]
    assert datasets["revised"][0]["train"] != datasets["revised"][0]["ood"]
    zero = report["gene_zero_fill"]
    assert (
        zero["n_zero_filled"] == len(zero["genes"]) == 12
    )  # tiny_config drops 12 genes in the newer release
    assert zero["fraction"] == pytest.approx(meta["missing_gene_fraction"])
    assert report["shared_feature_names"]["n_symbols"] == KNOBS["n_shared_feature_names"]
    multi = report["multi_valued_disease"]
    assert multi["n_cells"] > 0 and all(len(v["parts"]) == 2 for v in multi["values"].values())
    assays = report["assays"]
    assert (
        "Smart-seq2" in assays["added"] and not assays["removed"]
    )  # the newer release adds a Smart-seq2 study
    # Filters naming assays a release lacks (the simulator has no 10x 3' v1) run, and say so.
    assert (
        "10x 3' v1" in assays["filter_assays_absent"]["train"]
        and "10x 3' v1" in assays["filter_assays_absent"]["ood"]
    )


def test_the_audit_lists_duplicate_primary_cells_and_keeps_them(pair, caplog):
    selection = pair["selection"]
    caplog.set_level("INFO", logger="hcebench.data.audit")
    table, totals = audit_duplicates(
        pair["train"],
        pair["ood"],
        selection.cells,
        pair["meta"]["new_dataset_ids"],
        Filters(**pair["config"]["filters"]),
    )
    assert totals["train"]["n_cells_listed_more_than_once"] == 0
    ood = totals["ood"]
    assert ood["checked"] and ood["n_cells_listed_more_than_once"] == KNOBS["n_duplicate_primary_cells"]
    assert ood["ood_cells_copying_older_cells"] == KNOBS["n_duplicate_primary_cells"]
    rows = table[table["release"] == "ood"]
    assert (rows.groupby("group")["where"].agg(set) == {"ood", "older"}).all()
    # Kept, as scTab kept them: the copies in the OOD datasets reach the OOD set (bar any whose label neither split
    # can score, dropped as any such cell is).
    ood_obs = pd.concat(pd.read_parquet(p) for p in pair["out"].glob("*/obs.parquet"))
    copies = set(rows.loc[rows["where"] == "ood", "soma_joinid"])
    assert copies & set(ood_obs["soma_joinid"])
    # Between the candidates (state) and their count rows (reads), the log holds the peak memory of the state.
    state = [STATE_PEAK_LINE.search(r.getMessage()) for r in caplog.records]
    assert [int(m["mb"].replace(",", "")) > 50 for m in state if m] == [True]


def test_duplicates_across_splits_and_into_the_ood_set_by_hand():
    table = pd.DataFrame(
        {
            "group": [0, 0, 1, 1, 2, 2],
            "soma_joinid": [1, 7, 2, 8, 3, 9],
            "dataset_id": list("abab") + ["a", "c"],
        }
    )
    where, totals = duplicates_where(
        table, "train", {1: "train", 7: "test", 2: "val", 8: "val", 3: "train"}, set()
    )
    assert where.tolist() == ["train", "test", "val", "val", "train", ""]
    assert totals == {"groups_across_splits": 1}  # group 0; group 2's second copy was not selected
    where, totals = duplicates_where(table, "ood", {}, {"b"})
    assert where.tolist() == ["older", "ood", "older", "ood", "older", "older"]
    assert totals == {"ood_cells_copying_older_cells": 2}


def test_dataset_diff_on_both_schemas():
    old = pd.DataFrame(
        {"dataset_id": ["a", "b", "c"], "dataset_title": list("ABC"), "dataset_total_cell_count": [5, 6, 7]}
    )
    new = pd.DataFrame(
        {"dataset_id": ["b", "c", "d"], "dataset_title": list("BCD"), "dataset_total_cell_count": [6, 9, 1]}
    )
    # Without dataset_version_id (Census 2023-05-15) a revision shows only as a changed cell count.
    diff = dataset_diff(old, new)
    assert (diff["new"], diff["removed"], diff["revised_by"]) == (["d"], ["a"], "dataset_total_cell_count")
    assert [r["dataset_id"] for r in diff["revised"]] == ["c"]
    # With it on both sides, a new version with the same cell count is a revision, a recount alone is not.
    old["dataset_version_id"], new["dataset_version_id"] = ["a1", "b1", "c1"], ["b2", "c1", "d1"]
    diff = dataset_diff(old, new)
    assert diff["revised_by"] == "dataset_version_id" and [r["dataset_id"] for r in diff["revised"]] == ["b"]


def test_assays_added_and_removed_and_zero_fill_by_hand():
    diff = assay_diff({"10x 3' v2", "Smart-seq2"}, {"10x 3' v2", "10x 3' v3"}, ["10x 3' v2", "10x 3' v3"])
    assert diff == {
        "added": ["10x 3' v3"],
        "removed": ["Smart-seq2"],
        "filter_assays_absent": {"train": ["10x 3' v3"], "ood": []},
    }
    store = pd.DataFrame({"feature_id": ["E1", "E2", "E3"], "feature_name": ["A", "B", "B"]})
    ood_var = pd.DataFrame({"feature_id": ["E1", "E3x"], "feature_name": ["A", "B"]})
    report = zero_fill_report(store, ood_var)
    assert report["genes"] == ["E2 B", "E3 B"] and report["fraction"] == pytest.approx(2 / 3)


def test_a_multi_valued_disease_is_a_stratum_of_its_own():
    onto = Ontology(names={"A": "a", "B": "b"}, parents={"A": (), "B": ("A",)})
    hierarchy = onto.closure(["A", "B"])
    labels = list(hierarchy.term_ids)
    pred = pd.DataFrame(
        {
            "true_label": [labels[0]] * 4,
            "pred_label": [labels[0], labels[0], labels[0], labels[1]],
            "disease": ["COVID-19", f"COVID-19{MULTI_VALUE}lung adenocarcinoma"] * 2,
        }
    )
    table = metrics_table(pred, hierarchy)
    cells = table[(table["stratum_type"] == "disease") & (table["metric"] == "n_cells")]
    # Each cell counted once: the strata partition the cells.
    assert dict(zip(cells["stratum"], cells["value"], strict=True)) == {
        "COVID-19": 2,
        f"COVID-19{MULTI_VALUE}lung adenocarcinoma": 2,
    }


def test_an_obsolete_root_term_names_its_replacement():
    onto = Ontology(
        names={"CL:0000000": "cell", "CL:0000003": "obsolete native cell", "CL:0000084": "T cell"},
        parents={"CL:0000000": (), "CL:0000003": (), "CL:0000084": ("CL:0000000",)},
        obsolete={"CL:0000003": ("CL:0000000",)},
        release="v2025-07-30",
    )
    with pytest.raises(ConfigError, match=r"CL:0000003.*obsolete.*replaced by: CL:0000000"):
        check_root_term(Filters(**{**schema_defaults("filters"), "root_term": "CL:0000003"}), onto)


# -- CL release diff ------------------------------------------------------------------------------------------------
def _release(names, ancestors, obsolete=None, release="x"):
    return ReleaseTerms(
        names, {t: frozenset(a) for t, a in ancestors.items()}, obsolete or {}, release=release
    )


def test_cl_diff_by_hand():
    # root > A > B ; root > C ; D under A. Newer: B renamed, C moves under A, D obsolete, E unknown.
    old = _release(
        {"R": "root", "A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
        {"R": [], "A": ["R"], "B": ["A", "R"], "C": ["R"], "D": ["A", "R"], "E": ["R"]},
    )
    new = _release(
        {"R": "root", "A": "a", "B": "b2", "C": "c", "D": "obsolete d"},
        {"R": [], "A": ["R"], "B": ["A", "R"], "C": ["A", "R"], "D": []},
        obsolete={"D": ("B",)},
    )
    table, totals = cl_release_diff(
        ["A", "B", "C", "D", "E"], old, new, ood_cells=pd.Series({"C": 5, "A": 2})
    )
    got = {(r.term_id, r.kind): r.n_ood_cells for r in table.itertuples()}
    assert got == {
        ("E", "missing"): 0,
        ("D", "obsoleted"): 0,
        ("B", "renamed"): 0,
        ("C", "reparented"): 5,
        ("A", "gained_subtypes"): 2,
    }
    assert totals["by_kind"]["lost_subtypes"] == 0  # an obsolete label's loss is reported as obsoleted only
    assert totals["ood_cells_with_a_changed_label"] == 7


def test_cl_diff_of_the_real_releases_over_sctab_labels():
    old_onto = load_ontology("bundled")
    old = release_from_obo(old_onto)
    new = read_cellxgene_json("bundled:v2025-07-30")
    assert old.part_of_edges == 0  # cl-basic v2022-09-15 has no part_of: its is_a closure is is_a + part_of
    assert new.obsolete["CL:0000003"] == ("CL:0000000",)  # "native cell", scTab's root term
    labels = resolve_labels(
        Path(__file__).parents[1] / "workflow/hcebench/resources/sctab_cell_types_2023-05-15.txt", old_onto
    )
    table, totals = cl_release_diff(labels, old, new)
    assert totals["n_labels"] == len(set(labels)) == 164
    kinds = dict(zip(zip(table["term_id"], table["kind"], strict=True), table["new_name"], strict=True))
    assert kinds[("CL:0002062", "renamed")] == "pulmonary alveolar type 1 cell"  # was "type I pneumocyte"
    assert ("CL:0000651", "obsoleted") in kinds  # mucous neck cell
    live = [t for t in labels if t not in new.obsolete]
    for t in live:  # every reported structural change is a real difference of the two closures
        before, after = old.ancestors[t] & set(live), new.ancestors[t] & set(live)
        assert ((t, "reparented") in kinds) == (before != after)
    assert np.isfinite(totals["labels_with_new_cl_subtypes"])


def test_the_knobs_unset_leave_the_census_as_before(tiny_census):
    # Off (the default), nothing of them reaches the census: not the manifest, not the datasets table.
    from hcebench.data.simulate import SCHEMA_2_4_KNOBS

    manifest = json.loads((tiny_census / "manifest.json").read_text())
    assert not set(SCHEMA_2_4_KNOBS) & set(manifest["config"])
    assert not any({"primary_rows", "revision", "multi_disease"} & set(d) for d in manifest["datasets"])
    with open_census({"uri": str(tiny_census / TRAIN_RELEASE)}) as census:
        assert "dataset_version_id" not in read_datasets(census).columns
        assert not read_obs(census, None, ["disease"])["disease"].str.contains(MULTI_VALUE, regex=False).any()
