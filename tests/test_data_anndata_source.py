"""census.source anndata (hcebench.data.anndata_source): .h5ad files of real-world shapes ingested into the Census
layout, the checks that refuse what is not counts, labels or genes, the label-map draft, the cell split, and the
vendored real example (data/real/)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hcebench.config import load_config
from hcebench.data import anndata_source as ingest
from hcebench.data.census import (
    iter_counts,
    open_census,
    raw_counts_are_integers,
    read_datasets,
    read_obs,
    read_var,
)
from hcebench.data.selection import CELL_SPLIT_CAVEAT, split_cells
from hcebench.errors import ConfigError, DataError
from hcebench.hierarchy.ontology import load_ontology
from hcebench.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
ONTOLOGY = load_ontology("bundled:v2022-09-15")
#: Ensembl ids and symbols of the bundled scTab table (CD3E, MS4A1, CD14, NKG7, LYZ, GNLY).
GENES = {
    "ENSG00000198851": "CD3E",
    "ENSG00000156738": "MS4A1",
    "ENSG00000170458": "CD14",
    "ENSG00000105374": "NKG7",
    "ENSG00000090382": "LYZ",
    "ENSG00000115523": "GNLY",
}


def settings(datasets, **overrides) -> IngestSettings:
    values = dict(
        train_release="r1",
        ood_release="r2",
        datasets=tuple(datasets),
        unmapped_labels="error",
        max_missing_gene_fraction=0.5,
        gene_source="all",
        assays=("10x 3' v3",),
    )
    values.update(overrides)
    return IngestSettings(**values)


def counts(n_cells: int, n_genes: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.poisson(3.0, size=(n_cells, n_genes)).astype(np.float32)
    x[:, 0] += 1  # no all-zero cell
    return x


def cellxgene_file(path: Path, n: int = 12, donors=("d1", "d2"), seed: int = 0) -> np.ndarray:
    """A file as the CELLxGENE portal hands it out: Ensembl ids, log-normalised X, raw counts in raw.X."""
    x = counts(n, seed=seed)
    obs = pd.DataFrame(
        {
            "cell_type_ontology_term_id": ["CL:0000236", "CL:0000623"] * (n // 2),
            "cell_type": ["B cell", "natural killer cell"] * (n // 2),
            "donor_id": [donors[i % len(donors)] for i in range(n)],
            "assay": ["10x 3' v3"] * n,
            "tissue": ["blood"] * n,
            "disease": ["normal"] * n,
            "is_primary_data": [True] * n,
            "sex": ["female"] * n,
        },
        index=[f"c{i}" for i in range(n)],
    )
    var = pd.DataFrame({"feature_name": [f"{g}_symbol" for g in GENES.values()]}, index=list(GENES))
    raw = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    normalised = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    adata = ad.AnnData(X=sp.csr_matrix(normalised), obs=obs, var=var)
    adata.raw = raw
    adata.write_h5ad(path)
    return x


def author_file(path: Path, labels, x=None, var_names=None, extra_obs=None) -> np.ndarray:
    """An author's file: symbols as var names, author labels, a patient column, no CELLxGENE column."""
    n = len(labels)
    x = counts(n) if x is None else x
    obs = pd.DataFrame(
        {"author": list(labels), "patient": [f"p{i % 3}" for i in range(n)]},
        index=[f"a{i}" for i in range(n)],
    )
    for k, v in (extra_obs or {}).items():
        obs[k] = v
    names = list(GENES.values()) if var_names is None else var_names
    ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=names)).write_h5ad(path)
    return x


def label_map(path: Path, rows: dict[str, str]) -> str:
    pd.DataFrame({"author_label": list(rows), "cell_type_ontology_term_id": list(rows.values())}).to_csv(
        path, sep="\t", index=False
    )
    return str(path)


def prepare(entry, **overrides):
    adata = ingest.read_h5ad(entry["path"])
    return ingest.prepare_dataset(
        adata, entry, entry["id"], np.arange(adata.n_obs), ONTOLOGY, settings([entry], **overrides)
    )


# -- the whole road: files in, Census-layout releases out -----------------------------------------------------------
def test_cellxgene_schema_files_need_no_mapping_and_read_back_as_a_census(tmp_path):
    train = cellxgene_file(tmp_path / "a.h5ad", seed=0)
    new = cellxgene_file(tmp_path / "b.h5ad", donors=("e1",), seed=1)
    entries = [
        {"id": "a", "path": str(tmp_path / "a.h5ad"), "release": "train", "counts": {"matrix": "raw.X"}},
        {"id": "b", "path": str(tmp_path / "b.h5ad"), "release": "ood", "counts": {"matrix": "raw.X"}},
    ]
    manifest = ingest.ingest_releases(settings(entries), tmp_path / "census", ONTOLOGY)
    assert manifest["n_cells"] == {"r1": 12, "r2": 24}
    # Every Census column came from the file: only tissue_general (not in the CELLxGENE schema) is defaulted.
    assert set(manifest["datasets"]["a"]["defaults"]) <= {
        "tissue_general",
        "development_stage",
        "self_reported_ethnicity",
        "suspension_type",
    }
    assert "donor_id" not in manifest["datasets"]["a"]["defaults"]
    assert manifest["datasets"]["a"]["genes"]["kind"] == "ensembl"
    with open_census({"uri": str(tmp_path / "census" / "r2")}) as census:
        assert list(read_datasets(census)["dataset_id"]) == ["a", "b"]
        obs = read_obs(census, 'is_primary_data == True and assay in ["10x 3\' v3"]', None)
        var = read_var(census)
        assert raw_counts_are_integers(census)
        ids, x = next(iter_counts(census, obs["soma_joinid"].to_numpy(), var["soma_joinid"].to_numpy(), 100))
    # Symbols from the file's feature_name (the CELLxGENE schema's), not from the bundled table.
    assert list(var["feature_id"]) == list(GENES)
    assert list(var["feature_name"]) == [f"{g}_symbol" for g in GENES.values()]
    assert obs.groupby("dataset_id")["donor_id"].unique().map(sorted).to_dict() == {
        "a": ["d1", "d2"],
        "b": ["e1"],
    }
    assert set(obs["cell_type_ontology_term_id"]) == {"CL:0000236", "CL:0000623"}
    np.testing.assert_array_equal(x.toarray(), np.vstack([train, new]))  # raw.X, not the log-normalised X


def test_author_labels_go_through_the_map_and_missing_columns_take_reported_defaults(tmp_path):
    author_file(tmp_path / "f.h5ad", ["B", "NK", "B", "NK"])
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "labels": {
            "column": "author",
            "map": label_map(tmp_path / "m.tsv", {"B": "CL:0000236", "NK": "CL:0000623"}),
        },
        "obs": {"donor_id": "patient"},
        "values": {"assay": "10x 3' v3"},
    }
    data, report, integer = prepare(entry)
    assert list(data.obs["cell_type_ontology_term_id"]) == ["CL:0000236", "CL:0000623"] * 2
    assert list(data.obs["cell_type"])[:2] == ["B cell", "natural killer cell"]  # names from the ontology
    assert list(data.obs["author_cell_type"]) == ["B", "NK", "B", "NK"]
    assert list(data.obs["donor_id"]) == ["p0", "p1", "p2", "p0"]
    assert set(data.obs["assay"]) == {"10x 3' v3"} and integer
    assert report["defaults"]["tissue"] == "unknown" and "donor_id" not in report["defaults"]
    # Symbols got the scTab table's Ensembl ids.
    assert list(data.var_names) == list(GENES)
    # is_primary_data from a column of strings: "False" is false, not a non-empty string's truth.
    entry["obs"]["is_primary_data"] = "primary"
    adata = ad.read_h5ad(tmp_path / "f.h5ad")
    adata.obs["primary"] = ["True", "False", "true", "0"]
    adata.write_h5ad(tmp_path / "f.h5ad")
    data, _, _ = prepare(entry)
    assert list(data.obs["is_primary_data"]) == [True, False, True, False]
    del entry["obs"]["is_primary_data"]
    # Without a donor column, the dataset is one donor, and that default is reported.
    del entry["obs"]
    data, report, _ = prepare(entry)
    assert set(data.obs["donor_id"]) == {"f"} and "donor_id" in report["defaults"]


def test_unmapped_labels_are_all_named_with_the_file_to_edit_or_dropped_and_counted(tmp_path):
    author_file(tmp_path / "f.h5ad", ["B", "NK", "mystery", "odd", "B", "odd"])
    path = label_map(tmp_path / "m.tsv", {"B": "CL:0000236", "NK": "CL:0000623", "odd": ""})
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "labels": {"column": "author", "map": path},
        "values": {"assay": "10x 3' v3"},
    }
    with pytest.raises(DataError) as err:
        prepare(entry)
    message = str(err.value)
    assert "'mystery' (1 cells)" in message and "'odd' (2 cells)" in message and path in message
    assert "unmapped_labels: drop" in message
    data, report, _ = prepare(entry, unmapped_labels="drop")
    assert data.n_obs == 3 and report["unmapped_labels_dropped"] == {"mystery": 1, "odd": 2}
    # An id the ontology lacks is named too.
    label_map(
        tmp_path / "m.tsv",
        {"B": "CL:9999999", "NK": "CL:0000623", "odd": "CL:0000623", "mystery": "CL:0000623"},
    )
    with pytest.raises(DataError, match=r"'B' → CL:9999999"):
        prepare(entry)


def test_a_log_normalised_matrix_is_refused_as_counts_and_read_when_declared(tmp_path):
    x = counts(8, seed=3)
    totals = (
        x.sum(1) * 3.0
    )  # the file's totals cover more genes than it keeps, as in scanpy's pbmc68k_reduced
    logged = np.round(np.log1p(x / totals[:, None] * 1e4), 3)  # rounded to 3 decimals, as that file is
    author_file(tmp_path / "f.h5ad", ["B", "NK"] * 4, x=logged, extra_obs={"n_counts": totals})
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "labels": {
            "column": "author",
            "map": label_map(tmp_path / "m.tsv", {"B": "CL:0000236", "NK": "CL:0000623"}),
        },
        "values": {"assay": "10x 3' v3"},
    }
    with pytest.raises(DataError, match=r"log1p of counts scaled per cell.*kind: log1p_normalised"):
        prepare(entry)
    entry["counts"] = {"kind": "log1p_normalised", "scale": 10000, "total_counts_column": "n_counts"}
    data, report, integer = prepare(entry)
    np.testing.assert_array_equal(data.X.toarray(), x)  # the counts back, exactly
    assert integer and report["counts"]["max_distance_from_integer"] < ingest.INTEGER_TOLERANCE
    # A wrong scale does not give integers: refused, naming the keys to check.
    entry["counts"] = {"kind": "log1p_normalised", "scale": 3000, "total_counts_column": "n_counts"}
    with pytest.raises(
        DataError, match="not integer counts.*check counts.scale and counts.total_counts_column"
    ):
        prepare(entry)
    # Ten times too small a scale gives integers ten times too large: no count of 1 gives it away.
    entry["counts"] = {"kind": "log1p_normalised", "scale": 1000, "total_counts_column": "n_counts"}
    with pytest.raises(DataError, match="smallest is 10, not 1"):
        prepare(entry)
    # Without totals: the normalised values, and the release is marked as not holding integer counts.
    entry["counts"] = {"kind": "log1p_normalised", "scale": 10000}
    data, report, integer = prepare(entry)
    assert not integer
    np.testing.assert_allclose(data.X.toarray(), x / totals[:, None] * 1e4, rtol=5e-3)
    ood = {**entry, "id": "g", "release": "ood"}
    ingest.ingest_releases(settings([entry, ood]), tmp_path / "census", ONTOLOGY)
    with open_census({"uri": str(tmp_path / "census" / "r1")}) as census:
        assert not raw_counts_are_integers(census)


def test_a_scaled_matrix_and_non_integer_counts_are_refused(tmp_path):
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "values": {"assay": "10x 3' v3"},
    }
    entry["labels"] = {"column": "author", "map": label_map(tmp_path / "m.tsv", {"B": "CL:0000236"})}
    x = counts(4) + 0.5 + 30  # fractional and far above any log1p value
    author_file(tmp_path / "f.h5ad", ["B"] * 4, x=x)
    with pytest.raises(
        DataError, match=r"24 of 24 stored values are not integers.*Point counts.matrix at the raw"
    ):
        prepare(entry)
    author_file(tmp_path / "f.h5ad", ["B"] * 4, x=counts(4) - 2.0)
    with pytest.raises(DataError, match="negative values: it is scaled or centred"):
        prepare(entry)


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_repeated_symbols_are_reported_and_kept_once_not_summed(tmp_path):
    x = counts(4)
    names = ["CD3E", "CD3E", "MS4A1", "CD14", "NOTAGENE", "NOTAGENE"]
    author_file(tmp_path / "f.h5ad", ["B"] * 4, x=x, var_names=names)
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "labels": {"column": "author", "map": label_map(tmp_path / "m.tsv", {"B": "CL:0000236"})},
        "values": {"assay": "10x 3' v3"},
    }
    data, report, _ = prepare(entry)
    assert report["genes"]["duplicated_features"] == {
        "n_columns_dropped": 2,
        "features": ["CD3E", "NOTAGENE"],
    }
    # The first column of each: CD3E's own counts, not CD3E + CD3E; an unknown symbol keeps the symbol as its id.
    assert list(data.var_names) == ["ENSG00000198851", "ENSG00000156738", "ENSG00000170458", "NOTAGENE"]
    np.testing.assert_array_equal(data.X.toarray(), x[:, [0, 2, 3, 4]])
    assert report["genes"]["symbols_kept_as_id"] == 2


def test_a_dataset_lacking_a_required_column_is_named(tmp_path):
    author_file(tmp_path / "f.h5ad", ["B"] * 4)
    entry = {
        "id": "f",
        "path": str(tmp_path / "f.h5ad"),
        "release": "train",
        "values": {"assay": "10x 3' v3"},
    }
    with pytest.raises(DataError, match=r"no 'cell_type_ontology_term_id'.*labels.column"):
        prepare(entry)
    entry["labels"] = {"column": "celltype", "map": label_map(tmp_path / "m.tsv", {"B": "CL:0000236"})}
    with pytest.raises(ConfigError, match=r"labels.column 'celltype' is not an obs column"):
        prepare(entry)
    entry["labels"]["column"] = "author"
    entry["obs"] = {"donor_id": "donor"}
    with pytest.raises(ConfigError, match=r"obs.donor_id names column 'donor', which the file's obs lacks"):
        prepare(entry)


def test_too_few_shared_genes_stop_the_ingest(tmp_path):
    author_file(tmp_path / "a.h5ad", ["B"] * 4)
    author_file(tmp_path / "b.h5ad", ["B"] * 4, var_names=["CD3E", "X1", "X2", "X3", "X4", "X5"])
    mapping = label_map(tmp_path / "m.tsv", {"B": "CL:0000236"})
    common = {"labels": {"column": "author", "map": mapping}, "values": {"assay": "10x 3' v3"}}
    entries = [
        {"id": "a", "path": str(tmp_path / "a.h5ad"), "release": "train", **common},
        {"id": "b", "path": str(tmp_path / "b.h5ad"), "release": "ood", **common},
    ]
    genes = tmp_path / "genes.parquet"
    pd.DataFrame({"gene_names": list(GENES.values())}, index=list(GENES)).to_parquet(genes)
    with pytest.raises(DataError, match=r"dataset b: it lacks 83.3% of the gene list.*too few shared genes"):
        ingest.ingest_releases(settings(entries, gene_source=str(genes)), tmp_path / "census", ONTOLOGY)
    assert not (tmp_path / "census").exists()  # nothing half-written
    manifest = ingest.ingest_releases(
        settings(entries, gene_source=str(genes), max_missing_gene_fraction=0.9),
        tmp_path / "census",
        ONTOLOGY,
    )
    assert manifest["datasets"]["a"]["missing_gene_fraction"] == 0.0
    assert manifest["datasets"]["b"]["missing_gene_fraction"] == pytest.approx(5 / 6)


def test_an_empty_file_and_an_assay_the_filters_drop_are_refused(tmp_path):
    ad.AnnData(X=sp.csr_matrix((0, 3), dtype=np.float32), var=pd.DataFrame(index=["A", "B", "C"])).write_h5ad(
        tmp_path / "empty.h5ad"
    )
    entries = [{"id": "e", "path": str(tmp_path / "empty.h5ad"), "release": "train"}]
    with pytest.raises(DataError, match=r"empty.h5ad.*holds no cell"):
        ingest.ingest_releases(settings(entries), tmp_path / "census", ONTOLOGY)
    cellxgene_file(tmp_path / "a.h5ad")
    entries = [
        {"id": "a", "path": str(tmp_path / "a.h5ad"), "release": "train", "counts": {"matrix": "raw.X"}}
    ]
    with pytest.raises(ConfigError, match=r"assay \[\"10x 3' v3\"\] is not in filters.assays"):
        ingest.ingest_releases(settings(entries, assays=("10x 5' v1",)), tmp_path / "census", ONTOLOGY)
    with pytest.raises(ConfigError, match="does not exist"):
        ingest.read_h5ad(tmp_path / "missing.h5ad")


def test_a_dataset_column_splits_one_file_into_datasets_of_both_releases(tmp_path):
    cellxgene_file(tmp_path / "a.h5ad", n=12)
    adata = ad.read_h5ad(tmp_path / "a.h5ad")
    adata.obs["study"] = ["s1", "s2", "s3"] * 4
    adata.write_h5ad(tmp_path / "a.h5ad")
    entry = {
        "id": "atlas",
        "path": str(tmp_path / "a.h5ad"),
        "dataset_column": "study",
        "release": {"s1": "train", "s2": "train", "s3": "ood"},
        "counts": {"matrix": "raw.X"},
    }
    manifest = ingest.ingest_releases(settings([entry]), tmp_path / "census", ONTOLOGY)
    assert manifest["n_datasets"] == {"r1": 2, "r2": 3}
    assert manifest["datasets"]["atlas_s3"]["release"] == "r2"
    entry["release"] = {"s1": "train", "s2": "ood"}
    with pytest.raises(ConfigError, match="dataset 's3' of dataset_column 'study' has no release"):
        ingest.ingest_releases(settings([entry]), tmp_path / "census2", ONTOLOGY)


# -- the label-map draft -------------------------------------------------------------------------------------------
def test_draft_matches_names_and_exact_synonyms_and_leaves_the_rest_blank(tmp_path):
    synonyms = ingest.exact_synonyms("bundled:v2022-09-15")
    assert "NK cell" in synonyms["CL:0000623"]
    table = ingest.draft_label_map(["CD14+ Monocyte", "NK cells", "B cell", "4.4-FOS"], ONTOLOGY, synonyms)
    got = dict(
        zip(
            table["author_label"],
            zip(table["cell_type_ontology_term_id"], table["match"], strict=True),
            strict=True,
        )
    )
    assert got["CD14+ Monocyte"] == ("CL:0001054", "exact name")
    assert got["NK cells"] == ("CL:0000623", "exact synonym")
    assert got["B cell"] == ("CL:0000236", "exact name")
    assert got["4.4-FOS"][0] == "" and got["4.4-FOS"][1].startswith("none")
    # The command line writes the TSV the ingest reads, and never overwrites an edited one.
    author_file(tmp_path / "f.h5ad", ["B cell", "NK cells", "weird"])
    out = tmp_path / "draft.tsv"
    assert (
        ingest.main(["draft-labels", str(tmp_path / "f.h5ad"), "--column", "author", "--out", str(out)]) == 0
    )
    mapping = ingest.read_label_map(out, "test")
    assert mapping == {"B cell": "CL:0000236", "NK cells": "CL:0000623", "weird": ""}
    with pytest.raises(SystemExit):
        ingest.main(["draft-labels", str(tmp_path / "f.h5ad"), "--column", "author", "--out", str(out)])


# -- the cell split ----------------------------------------------------------------------------------------------------
def test_split_by_cell_cuts_every_tech_sample_and_is_seeded():
    ts = pd.Series(["a"] * 100 + ["b"] * 20 + ["c"] * 2)
    split = split_cells(ts, 1, [0.7, 0.15, 0.15])
    assert split[:100].value_counts().to_dict() == {"train": 70, "val": 15, "test": 15}
    assert split[100:120].value_counts().to_dict() == {"train": 14, "val": 3, "test": 3}
    assert set(split[120:]) == {"train"}  # too few cells to cut
    assert split.equals(split_cells(ts, 1, [0.7, 0.15, 0.15]))
    assert not split.equals(split_cells(ts, 2, [0.7, 0.15, 0.15]))
    assert "leakage" in CELL_SPLIT_CAVEAT


def test_the_config_needs_datasets_of_both_releases():
    base = load_config(ROOT / "config" / "real_pbmc.yaml")
    assert base["split"]["by"] == "cell"
    for edit, message in [
        (lambda c: c["census"]["anndata"].update(datasets=[]), "census.anndata.datasets is empty"),
        (
            lambda c: c["census"]["anndata"]["datasets"][1].update(release="train"),
            r"no dataset has release \['ood'\]",
        ),
        (
            lambda c: c["census"]["anndata"]["datasets"][1].update(id="zheng2017_pbmc68k_reduced"),
            "appear more than once",
        ),
    ]:
        config = load_config(ROOT / "config" / "real_pbmc.yaml")
        edit(config)
        with pytest.raises(ConfigError, match=message):
            load_config(config)


# -- the vendored real example -----------------------------------------------------------------------------------------
def test_vendored_files_match_their_provenance():
    text = (REAL / "PROVENANCE.md").read_text()
    for name in ("pbmc68k_reduced.h5ad", "wu2020_200.h5ad", "genes_shared.parquet"):
        digest = hashlib.sha256((REAL / name).read_bytes()).hexdigest()
        assert re.search(rf"{re.escape(name)}.*{digest}", text), (
            f"{name}: sha256 {digest} not in PROVENANCE.md"
        )


def test_real_label_maps_use_live_terms_in_or_under_the_label_set_and_give_a_reason():
    pinned = [line for line in (REAL / "label_set.txt").read_text().split() if line.startswith("CL:")]
    for name in ("labels_pbmc68k.tsv", "labels_wu2020.tsv"):
        table = pd.read_csv(REAL / name, sep="\t", dtype=str)
        assert (table["reason"].str.len() > 20).all(), name
        for term, label in zip(table["cell_type_ontology_term_id"], table["cell_type"], strict=True):
            assert term in ONTOLOGY.names and term not in ONTOLOGY.obsolete, term
            assert ONTOLOGY.names[term] == label, term
    pbmc = pd.read_csv(REAL / "labels_pbmc68k.tsv", sep="\t")
    assert sorted(pbmc["cell_type_ontology_term_id"]) == sorted(pinned)  # every training type is pinned
    wu = pd.read_csv(REAL / "labels_wu2020.tsv", sep="\t")
    under = [t for t in wu["cell_type_ontology_term_id"] if any(ONTOLOGY.is_subtype(t, p) for p in pinned)]
    # Every OOD type is scorable (a trained label at or above it) except the coarse CD4 and T-cell clusters.
    assert set(wu["cell_type_ontology_term_id"]) - set(under) == {"CL:0000624", "CL:0000084"}


def test_the_real_example_ingests_with_integer_counts_back(tmp_path):
    config = load_config(ROOT / "config" / "real_pbmc.yaml")
    entries = [
        {**e, "path": str(ROOT / e["path"]), "labels": {**e["labels"], "map": str(ROOT / e["labels"]["map"])}}
        for e in config["census"]["anndata"]["datasets"]
    ]
    config["census"]["anndata"]["datasets"] = entries
    config["genes"]["source"] = str(ROOT / config["genes"]["source"])
    manifest = ingest.ingest_releases(IngestSettings.from_config(config), tmp_path / "census", ONTOLOGY)
    pbmc = manifest["datasets"]["zheng2017_pbmc68k_reduced"]
    assert pbmc["counts"]["max_distance_from_integer"] < 0.1
    assert manifest["n_cells"] == {"zheng2017": 700, "zheng2017_wu2020": 900}
    assert (
        pbmc["missing_gene_fraction"] == 0.0
        and manifest["datasets"]["wu2020_200"]["missing_gene_fraction"] == 0.0
    )
    with open_census({"uri": str(tmp_path / "census" / "zheng2017")}) as census:
        obs = read_obs(census, None, ["n_measured_vars", "raw_sum"])
    assert (obs["raw_sum"] == np.round(obs["raw_sum"])).all()
