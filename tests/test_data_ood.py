"""hcebench.data.ood: the OOD set — new studies, gene alignment, novel types at their nearest trained ancestor."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tiledbsoma
from hcebench.config import load_config
from hcebench.data import reads
from hcebench.data.census import open_census, read_var
from hcebench.data.ood import align_genes, build_ood_set, name_alignment_check, new_datasets
from hcebench.data.selection import select_from_census
from hcebench.errors import DataError
from hcebench.hierarchy.ontology import Ontology
from hcebench.layout import NOVEL_SPLIT, OOD_SPLIT
from hcebench.settings import OodSettings, SelectionSettings
from sim_fixtures import OOD_RELEASE, TRAIN_RELEASE, bundled_ontology


# -- novel OOD types: nearest trained ancestor ------------------------------------------------------------
def test_nearest_trained_ancestor_is_the_deepest_trained_is_a_ancestor():
    from hcebench.data.ood import nearest_trained_ancestors
    from hcebench.hierarchy.ontology import Ontology

    # root → A → B → D ; A → C ; X under both B and C ; Y under root only ; Z has a parent chain A → C → Z
    parents = {
        "root": (),
        "A": ("root",),
        "B": ("A",),
        "C": ("A",),
        "D": ("B",),
        "X": ("B", "C"),
        "Y": ("root",),
        "Z": ("C",),
    }
    onto = Ontology(names={t: f"cell {t}" for t in parents}, parents=parents)
    got = nearest_trained_ancestors(["D", "X", "Y", "Z", "unknown"], ["A", "B", "C"], onto)
    assert got["D"] == "B"  # B (2 ancestors) beats A (1)
    assert got["X"] == "B"  # B and C tie in depth: the lower term id wins
    assert got["Y"] is None  # only the untrained root above it: counted and dropped
    assert got["Z"] == "C"
    assert got["unknown"] is None  # not a term of this CL release


def test_align_genes_by_feature_id():
    store = pd.Series(["g1", "g2", "g3", "g4"])
    ood_var = pd.DataFrame({"soma_joinid": [0, 1, 2, 3], "feature_id": ["g4", "gX", "g1", "g2"]})
    joinids, columns, missing = align_genes(store, ood_var)
    assert dict(zip(joinids.tolist(), columns.tolist(), strict=True)) == {0: 3, 2: 0, 3: 1}
    assert missing == 0.25  # g3 is not measured by the newer release


def test_new_datasets_is_a_set_difference():
    old = pd.DataFrame({"dataset_id": ["a", "b"]})
    new = pd.DataFrame({"dataset_id": ["a", "b", "c", "d"], "collection_id": list("wxyz")})
    assert new_datasets(old, new)["dataset_id"].tolist() == ["c", "d"]


def test_name_alignment_check_reports_what_a_symbol_lookup_would_change():
    # A store matched by symbol: C has two ids. The newer release renamed B's id and dropped ENSG3b.
    store = pd.DataFrame(
        {"feature_id": ["ENSG1", "ENSG2", "ENSG3a", "ENSG3b"], "feature_name": ["A", "B", "C", "C"]}
    )
    ood_var = pd.DataFrame(
        {
            "soma_joinid": [0, 1, 2],
            "feature_id": ["ENSG3a", "ENSG2x", "ENSG1"],
            "feature_name": ["C", "B", "A"],
        }
    )
    joinids, columns, missing = align_genes(store["feature_id"], ood_var)
    assert dict(zip(joinids.tolist(), columns.tolist(), strict=True)) == {0: 2, 2: 0}
    assert missing == 0.5
    check = name_alignment_check(store, ood_var)
    assert check == {
        "by": "feature_id",
        "missing_by_id_found_by_name": ["ENSG2", "ENSG3b"],
        "store_genes_sharing_a_symbol": 2,
    }


# -- data checks: all-zero cells, labels outside the ontology ------------------------------------------------
@pytest.fixture(scope="module")
def ood_inputs(tiny_census):
    """The tiny census's releases, the training labels selected from the older one, and its var."""
    config = load_config(Path(__file__).parent / "data" / "tiny_config.yaml")
    train, ood = ({"uri": str(tiny_census / release)} for release in (TRAIN_RELEASE, OOD_RELEASE))
    labels = select_from_census(train, SelectionSettings.from_config(config), bundled_ontology()).labels
    with open_census(ood) as census:
        ood_var = read_var(census)
    return {"config": config, "train": train, "ood": ood, "labels": labels, "ood_var": ood_var}


def _raw_counts(uri: str) -> sp.csr_matrix:
    with tiledbsoma.open(f"{uri}/census_data/homo_sapiens/ms/RNA/X/raw") as x:
        t = x.read().tables().concat()
        shape = x.shape
    return sp.csr_matrix(
        (t["soma_data"].to_numpy(), (t["soma_dim_0"].to_numpy(), t["soma_dim_1"].to_numpy())), shape=shape
    )


def test_the_ood_set_counts_all_zero_cells_of_both_splits(ood_inputs, tmp_path):
    config = copy.deepcopy(ood_inputs["config"])
    x = _raw_counts(ood_inputs["ood"]["uri"])
    detected = np.asarray((x > 0).mean(axis=0)).ravel()
    gene = int(np.argmin(np.abs(detected - 0.5)))  # a store of this one gene: about half the cells all-zero
    var = ood_inputs["ood_var"].set_index("soma_joinid")
    store_genes = var.loc[[gene], ["feature_id", "feature_name"]].reset_index(drop=True)
    config["filters"]["max_zero_cell_fraction"] = 1.0
    inputs = (ood_inputs["train"], ood_inputs["ood"], ood_inputs["labels"], store_genes)
    args = (*inputs, OodSettings.from_config(config))
    meta = build_ood_set(*args, tmp_path / "ood", ontology=bundled_ontology())

    written = pd.concat(
        pd.read_parquet(tmp_path / "ood" / s / "obs.parquet") for s in (OOD_SPLIT, NOVEL_SPLIT)
    )
    zero = np.asarray(x[written["soma_joinid"].to_numpy()][:, gene].todense()).ravel() == 0
    checked = meta["data_checks"]
    assert checked["cells"] == len(written) == meta["n_cells"][OOD_SPLIT] + meta["n_cells"][NOVEL_SPLIT]
    assert checked["zero_cells"] == int(zero.sum()) > 0
    assert checked["zero_cells_by_dataset"] == written.loc[zero].groupby("dataset_id").size().to_dict()
    assert (
        meta["labels_outside_ontology"]["n_cells"] == 0
    )  # the simulator draws its labels from the bundled CL

    config["filters"]["max_zero_cell_fraction"] = checked["zero_cell_fraction"] / 2
    args = (*inputs, OodSettings.from_config(config))
    with pytest.raises(
        DataError,
        match=rf"^census {OOD_RELEASE} X/raw: all-zero cells .* more than filters.max_zero_cell_fraction",
    ):
        build_ood_set(*args, tmp_path / "ood2", ontology=bundled_ontology())
    assert not (tmp_path / "ood2").exists()


def test_ood_labels_outside_the_ontology_are_counted_and_past_the_limit_stop_before_any_count(
    ood_inputs, tmp_path, monkeypatch
):
    config = copy.deepcopy(ood_inputs["config"])
    store_genes = ood_inputs["ood_var"][["feature_id", "feature_name"]].iloc[:20].reset_index(drop=True)
    inputs = (ood_inputs["train"], ood_inputs["ood"], ood_inputs["labels"], store_genes)
    args = (*inputs, OodSettings.from_config(config))
    meta = build_ood_set(*args, tmp_path / "ood", ontology=bundled_ontology())
    # A CL release in which the newer release's unseen type is obsolete.
    key, n_cells = next(iter(meta["unseen_labels"].items()))
    term, name = key.split(" ", 1)
    cl = bundled_ontology()
    older = Ontology(
        names=cl.names,
        parents=cl.parents,
        obsolete={**cl.obsolete, term: ()},
        release="v-test",
        source="test",
    )
    config["filters"]["max_unknown_label_fraction"] = 1.0
    args = (*inputs, OodSettings.from_config(config))
    meta = build_ood_set(*args, tmp_path / "ood_older", ontology=older)
    assert meta["labels_outside_ontology"]["labels"] == {
        term: {
            "name": name,
            "n_cells": n_cells,
            "why": "obsolete in Cell Ontology v-test (replaced by: none given)",
        }
    }
    assert (
        meta["novel"]["n_cells_dropped"] >= n_cells
    )  # dropped from the novel split: no place in the hierarchy

    config["filters"]["max_unknown_label_fraction"] = 0.0
    args = (*inputs, OodSettings.from_config(config))

    def no_count_read(*args, **kwargs):
        raise AssertionError("counts were read before the label check")

    monkeypatch.setattr(reads, "iter_counts", no_count_read)
    with pytest.raises(DataError) as err:
        build_ood_set(*args, tmp_path / "ood_stopped", ontology=older)
    message = str(err.value)
    assert message.startswith(
        f"OOD datasets of census {OOD_RELEASE} (primary cells of the kept assays): cells whose label is absent from "
        "or obsolete in Cell Ontology v-test, dropped: "
    )
    assert (
        f"more than filters.max_unknown_label_fraction: 0; labels: {term} '{name}' ({n_cells:,} cells;"
        in message
    )
    assert not (tmp_path / "ood_stopped").exists()


def test_hce_normalisation_sums_every_gene_of_the_list_the_release_has(monkeypatch):
    """normalisation.ood_genes: gene_list against hce-classification's OOD preprocessing (restated in
    tests/sctab_reference.py): totals over the release's genes whose symbol the list holds, then the store's
    columns."""
    from hcebench.data.ood import hce_normalisation_genes
    from sctab_reference import hce_ood_rows

    ood_var = pd.DataFrame(
        {
            "soma_joinid": np.arange(7),
            "feature_id": [f"ENSG{i}" for i in range(7)],
            "feature_name": ["A", "B", "C", "D", "E", "OFFLIST", "F"],
        }
    )
    store = pd.DataFrame(
        {"feature_id": ["ENSG3", "ENSG0", "ENSG9", "ENSG2"], "feature_name": ["D", "A", "Z", "C"]}
    )
    list_names = ["A", "B", "C", "D", "E", "F", "Z"]  # Z: a store gene the release lacks (stays zero)
    rng = np.random.default_rng(0)
    raw = rng.poisson(3.0, (6, 7)).astype(np.float32) + 1
    joinids, columns, missing = align_genes(store["feature_id"], ood_var)
    joinids, columns, in_sum, report = hce_normalisation_genes(joinids, columns, ood_var, list_names)
    assert report == {
        "ood_genes": "gene_list",
        "n_genes_summed": 6,
        "n_summed_not_in_store": 3,
        "n_store_genes_not_summed": 0,
    }

    def fake_counts(census, obs, var, chunk, organism="homo_sapiens"):
        yield np.asarray(obs), sp.csr_matrix(raw[np.asarray(obs)][:, np.asarray(var)])

    monkeypatch.setattr(reads, "iter_counts", fake_counts)
    read = reads.CensusRead(joinids, columns, len(store), 1e4, 100, "homo_sapiens", in_sum=in_sum)
    rows = next(reads.read_normalised(None, np.arange(6), read)).toarray()
    expected = hce_ood_rows(raw, ood_var, list_names, ["D", "A", "C"])
    np.testing.assert_allclose(rows[:, [0, 1, 3]], expected, rtol=1e-6)
    assert (rows[:, 2] == 0).all()
    # The store's own rule sums the three store genes the release has: other values.
    plain = reads.CensusRead(
        *align_genes(store["feature_id"], ood_var)[:2], len(store), 1e4, 100, "homo_sapiens"
    )
    assert not np.allclose(
        next(reads.read_normalised(None, np.arange(6), plain)).toarray()[:, [0, 1, 3]], expected
    )


def test_ood_set_with_hce_normalisation_matches_the_reference_through_two_workers(ood_inputs, tmp_path):
    from hcebench.data.store import SplitData
    from sctab_reference import hce_ood_rows

    config = copy.deepcopy(ood_inputs["config"])
    config["normalisation"]["ood_genes"] = "gene_list"
    assert config["census"]["build_workers"] == 2 and config["genes"]["source"] == "all"
    x = _raw_counts(ood_inputs["ood"]["uri"])
    var = ood_inputs["ood_var"].sort_values("soma_joinid").reset_index(drop=True)
    store_genes = var.iloc[::15][["feature_id", "feature_name"]].reset_index(drop=True)  # 20 of the 300 genes
    settings = OodSettings.from_config(config)
    meta = build_ood_set(
        ood_inputs["train"], ood_inputs["ood"], ood_inputs["labels"], store_genes, settings, tmp_path / "ood"
    )
    assert meta["normalisation_genes"]["n_genes_summed"] == len(var)  # genes.source all: every gene's symbol
    data = SplitData.open(tmp_path / "ood" / OOD_SPLIT, len(store_genes))
    raw = np.asarray(x[data.obs["soma_joinid"].to_numpy()].todense())
    raw_cells = raw.sum(axis=1) > 0
    expected = hce_ood_rows(raw, var, var["feature_name"], store_genes["feature_name"])
    np.testing.assert_allclose(data.x.toarray()[raw_cells], expected[raw_cells], rtol=1e-5)


def test_an_interrupted_ood_build_resumes_from_its_kept_segments_and_writes_the_same_bytes(
    ood_inputs, tmp_path, monkeypatch
):
    """The OOD set keeps its finished segments beside it (``ood.partial/``) like the store build: a build that
    fails part-way is rerun reading only the rest, and writes the bytes of an uninterrupted build."""
    from hcebench.data import workers

    config = copy.deepcopy(ood_inputs["config"])
    config["census"].update(chunk_size=50, build_workers=1)
    store_genes = ood_inputs["ood_var"][["feature_id", "feature_name"]].iloc[:40].reset_index(drop=True)
    args = (
        ood_inputs["train"],
        ood_inputs["ood"],
        ood_inputs["labels"],
        store_genes,
        OodSettings.from_config(config),
    )
    build_ood_set(*args, tmp_path / "whole", ontology=bundled_ontology())
    assert not (tmp_path / "whole.partial").exists()

    real, calls = workers.write_segment, []

    def failing(*a, **k):  # the third segment's read fails, as a lost connection would
        calls.append(a[2])
        if len(calls) == 3:
            raise OSError("connection reset")
        real(*a, **k)

    monkeypatch.setattr(workers, "write_segment", failing)
    out, partial = tmp_path / "resumed", tmp_path / "resumed.partial"
    with pytest.raises(OSError, match="connection reset"):
        build_ood_set(*args, out, ontology=bundled_ontology())
    kept = sorted(p.name for p in partial.glob(f"{OOD_SPLIT}/seg?????"))
    assert len(kept) == 2 and not out.exists()

    calls.clear()
    monkeypatch.setattr(workers, "write_segment", lambda *a, **k: (calls.append(a[2]), real(*a, **k)))
    build_ood_set(*args, out, ontology=bundled_ontology())
    assert calls and not set(calls) & {int(name[3:]) for name in kept}  # only the segments not kept are read
    files = sorted(p for p in (tmp_path / "whole").rglob("*") if p.is_file())
    assert files
    for path in files:
        twin = out / path.relative_to(tmp_path / "whole")
        assert twin.read_bytes() == path.read_bytes(), path.relative_to(tmp_path / "whole")
    assert not partial.exists()
