"""The simulated census: Census layout, two releases, determinism, and the mechanism's ingredients."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cellxgene_census
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tiledbsoma
from hcebench.data import census as C
from hcebench.data.simulate import (
    ASSAYS,
    NATIVE_CELL,
    SimulationConfig,
    build_universe,
    coarse_train_studies,
    plan_datasets,
)
from sim_fixtures import OOD_RELEASE, TRAIN_RELEASE, build_tiny_census, bundled_ontology, tiny_config

OBS_TYPES = {
    "soma_joinid": "int",
    "dataset_id": "str",
    "assay": "str",
    "assay_ontology_term_id": "str",
    "cell_type": "str",
    "cell_type_ontology_term_id": "str",
    "development_stage": "str",
    "development_stage_ontology_term_id": "str",
    "disease": "str",
    "disease_ontology_term_id": "str",
    "donor_id": "str",
    "is_primary_data": "bool",
    "self_reported_ethnicity": "str",
    "self_reported_ethnicity_ontology_term_id": "str",
    "sex": "str",
    "sex_ontology_term_id": "str",
    "suspension_type": "str",
    "tissue": "str",
    "tissue_ontology_term_id": "str",
    "tissue_general": "str",
    "tissue_general_ontology_term_id": "str",
    "raw_sum": "float",
    "nnz": "int",
    "raw_mean_nnz": "float",
    "raw_variance_nnz": "float",
    "n_measured_vars": "int",
}
TENX = {a for a, (_, _, _, is10x) in ASSAYS.items() if is10x}


def _read_release(root, release):
    with C.open_census({"uri": str(root / release)}) as census:
        obs = C.read_obs(census, None)
        var = C.read_var(census)
        datasets = C.read_datasets(census)
        summary = C.read_summary(census)
        x = census["census_data"]["homo_sapiens"].ms["RNA"].X["raw"].read().tables().concat()
    return obs, var, datasets, summary, x


@pytest.fixture(scope="module")
def releases(tiny_census):
    return {r: _read_release(tiny_census, r) for r in (TRAIN_RELEASE, OOD_RELEASE)}


def test_layout_opens_like_the_real_census(tiny_census):
    for release in (TRAIN_RELEASE, OOD_RELEASE):
        with cellxgene_census.open_soma(uri=str(tiny_census / release)) as census:
            assert set(census["census_info"].keys()) == {"summary", "datasets", "summary_cell_counts"}
            exp = census["census_data"]["homo_sapiens"]
            assert isinstance(exp, tiledbsoma.Experiment)
            assert set(exp.ms["RNA"].var.schema.names) >= {
                "soma_joinid",
                "feature_id",
                "feature_name",
                "feature_length",
            }
            assert exp.ms["RNA"].X["raw"].schema.field("soma_data").type == pa.float32()
            with exp.axis_query(
                "RNA", obs_query=tiledbsoma.AxisQuery(value_filter="is_primary_data == True")
            ) as query:
                assert query.n_obs > 0 and query.n_vars > 0
                assert sum(t.num_rows for t in query.X("raw").tables()) > 0
            counts = census["census_info"]["summary_cell_counts"].read().concat().to_pandas()
            assert {
                "organism",
                "category",
                "label",
                "ontology_term_id",
                "total_cell_count",
                "unique_cell_count",
            } <= set(counts.columns)
            total = counts[counts.category == "all"].total_cell_count.item()
            assert total == exp.obs.count


def test_obs_columns_present_and_typed(releases):
    for release, (obs, _, _, summary, _) in releases.items():
        assert list(obs.columns) == list(OBS_TYPES)
        for col, kind in OBS_TYPES.items():
            dtype = obs[col].dtype
            if kind == "str":
                assert dtype.kind == "O" and obs[col].map(type).eq(str).all(), col
            elif kind == "bool":
                assert dtype.kind == "b", col
            elif kind == "int":
                assert np.issubdtype(dtype, np.integer), col
            else:
                assert np.issubdtype(dtype, np.floating), col
        assert obs.soma_joinid.tolist() == list(range(len(obs)))
        assert summary["census_build_date"] == release
        assert int(summary["total_cell_count"]) == len(obs)
        assert {"census_schema_version", "unique_cell_count"} <= set(summary)
        assert obs.cell_type_ontology_term_id.str.startswith("CL:").all()
        assert set(obs.assay_ontology_term_id) <= {efo for efo, *_ in ASSAYS.values()}


def test_same_seed_same_content_whatever_the_write_batching_and_drawing_processes(
    tmp_path, tiny_census, releases
):
    # Regression: with several writes per release, tiledbsoma 2.3 lost the dictionary values the later
    # writes added to obs (reading obs then failed with "Index out of bounds"). The cells drawn by three
    # processes instead of this one are the same cells, written in the same order.
    again = build_tiny_census(tmp_path / "again", workers=3, write_batch_nnz=20_000)
    for release in (TRAIN_RELEASE, OOD_RELEASE):
        obs, var, datasets, summary, x = _read_release(again, release)
        obs0, var0, datasets0, summary0, x0 = releases[release]
        pd.testing.assert_frame_equal(obs, obs0)
        pd.testing.assert_frame_equal(var, var0)
        pd.testing.assert_frame_equal(datasets, datasets0)
        assert summary == summary0
        assert x.equals(x0)
        gt = pd.read_parquet(again / f"ground_truth_{release}.parquet")
        pd.testing.assert_frame_equal(gt, pd.read_parquet(tiny_census / f"ground_truth_{release}.parquet"))
    manifest = json.loads((again / "manifest.json").read_text())
    manifest0 = json.loads((tiny_census / "manifest.json").read_text())
    assert manifest["config"].pop("write_batch_nnz") != manifest0["config"].pop("write_batch_nnz")
    assert manifest == manifest0


def test_a_failed_write_stops_the_simulation_and_leaves_no_census(tmp_path, monkeypatch):
    # A write failing part-way (a full disk): the error surfaces and the half-written census does not appear where
    # the rules look for it, nor does its temporary directory stay behind.
    from hcebench.data.simulate import writer

    flushes = []
    real_flush = writer.ReleaseWriter.flush

    def failing_flush(self):
        flushes.append(self.name)
        if len(flushes) == 3:
            raise OSError("disk full (simulated)")
        return real_flush(self)

    monkeypatch.setattr(writer.ReleaseWriter, "flush", failing_flush)
    with pytest.raises(OSError, match="disk full"):
        build_tiny_census(tmp_path / "census", write_batch_nnz=20_000)
    assert len(flushes) == 3
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_failing_drawing_process_stops_the_simulation_and_leaves_no_census(tmp_path, monkeypatch):
    # Cells drawn in forked processes: an error in one of them is raised here, as its own error, and no census
    # (nor its temporary directory) is left behind.
    from hcebench.data.simulate import expression

    real_block = expression.DatasetSampler.block

    def failing_block(self, b):
        if self.plan.index == 2:
            raise MemoryError("cannot draw (simulated)")
        return real_block(self, b)

    monkeypatch.setattr(expression.DatasetSampler, "block", failing_block)
    with pytest.raises(MemoryError, match="cannot draw"):
        build_tiny_census(tmp_path / "census", workers=2)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_other_seed_other_census(tmp_path, releases):
    other = build_tiny_census(tmp_path / "other", seed=12)
    obs, *_ = _read_release(other, TRAIN_RELEASE)
    assert set(obs.dataset_id).isdisjoint(set(releases[TRAIN_RELEASE][0].dataset_id))


def test_newer_release_holds_the_older_datasets_and_cells(releases):
    obs_old, var_old, ds_old, _, x_old = releases[TRAIN_RELEASE]
    obs_new, var_new, ds_new, _, x_new = releases[OOD_RELEASE]
    assert set(ds_old.dataset_id) < set(ds_new.dataset_id)
    assert set(obs_old.dataset_id) == set(ds_old.dataset_id)
    per_old = obs_old.dataset_id.value_counts().sort_index()
    per_new = obs_new[obs_new.dataset_id.isin(per_old.index)].dataset_id.value_counts().sort_index()
    pd.testing.assert_series_equal(per_old, per_new)
    # Same cells, same counts on the genes both releases have (joinids differ between releases).
    ds = per_old.index[0]
    a = obs_old[obs_old.dataset_id == ds].soma_joinid.to_numpy()
    b = obs_new[obs_new.dataset_id == ds].soma_joinid.to_numpy()
    shared = np.intersect1d(var_old.feature_id, var_new.feature_id)
    dense_old = _dense(x_old, a, var_old.set_index("feature_id").loc[shared, "soma_joinid"].to_numpy())
    dense_new = _dense(x_new, b, var_new.set_index("feature_id").loc[shared, "soma_joinid"].to_numpy())
    np.testing.assert_array_equal(dense_old, dense_new)
    for col in ("cell_type_ontology_term_id", "donor_id", "assay", "tissue", "is_primary_data"):
        assert (
            obs_old[obs_old.dataset_id == ds][col].tolist() == obs_new[obs_new.dataset_id == ds][col].tolist()
        )
    meta = ds_new.set_index("dataset_id")
    assert (meta.loc[per_old.index, "dataset_total_cell_count"] == per_old).all()


def _dense(x, rows, cols):
    d0 = x["soma_dim_0"].to_numpy()
    d1 = x["soma_dim_1"].to_numpy()
    v = x["soma_data"].to_numpy()
    out = np.zeros((len(rows), len(cols)), dtype=np.float32)
    r = pd.Index(rows).get_indexer(d0)
    c = pd.Index(cols).get_indexer(d1)
    keep = (r >= 0) & (c >= 0)
    out[r[keep], c[keep]] = v[keep]
    return out


def test_filters_have_something_to_drop_only_in_new_datasets(releases):
    obs_old = releases[TRAIN_RELEASE][0]
    obs_new = releases[OOD_RELEASE][0]
    assert obs_old.is_primary_data.all()
    assert obs_old.assay.isin(TENX).all()
    added = obs_new[~obs_new.dataset_id.isin(set(obs_old.dataset_id))]
    assert (~added.is_primary_data).any()
    assert (~added.assay.isin(TENX)).any()
    assert "Smart-seq2" in set(added.assay)
    assert added[added.is_primary_data & added.assay.isin(TENX)].dataset_id.nunique() >= 1
    # Non-primary cells are re-uploads: whole datasets flagged False, the same counts as an older cell.
    flags = added.groupby("dataset_id").is_primary_data.agg(["all", "any"])
    assert ((flags["all"]) | (~flags["any"])).all()


def test_gene_order_differs_with_genes_dropped_and_added(releases):
    old = releases[TRAIN_RELEASE][1]
    new = releases[OOD_RELEASE][1]
    cfg = tiny_config()
    assert len(old) == cfg.n_genes
    assert len(set(old.feature_id) - set(new.feature_id)) == cfg.n_genes_dropped
    assert len(set(new.feature_id) - set(old.feature_id)) == cfg.n_genes_added
    shared = [g for g in old.feature_id if g in set(new.feature_id)]
    assert [g for g in new.feature_id if g in set(shared)] != shared
    assert old.feature_id.str.match(r"^ENSG\d{11}$").all()
    assert old.feature_id.is_unique and new.feature_id.is_unique
    assert (old.feature_length > 0).all()


def test_counts_are_integers_with_plausible_sparsity(releases):
    for obs, var, _, _, x in releases.values():
        v = x["soma_data"].to_numpy()
        assert v.dtype == np.float32
        assert (v > 0).all() and np.array_equal(v, np.round(v))
        zeros = 1 - len(v) / (len(obs) * len(var))
        assert 0.6 < zeros < 0.98, zeros
        row_sum = np.bincount(x["soma_dim_0"].to_numpy(), weights=v, minlength=len(obs))
        np.testing.assert_allclose(obs.raw_sum.to_numpy(), row_sum)
        assert (obs.nnz.to_numpy() == np.bincount(x["soma_dim_0"].to_numpy(), minlength=len(obs))).all()
        tenx = obs[obs.assay.isin(TENX)]
        assert 50 < tenx.raw_sum.median() < 20_000


def test_datasets_annotate_at_their_own_granularity(tiny_census, releases):
    onto = bundled_ontology()
    for release in (TRAIN_RELEASE, OOD_RELEASE):
        obs = releases[release][0]
        gt = pd.read_parquet(tiny_census / f"ground_truth_{release}.parquet")
        assert gt.soma_joinid.tolist() == obs.soma_joinid.tolist()
        assert gt.cell_type_ontology_term_id.tolist() == obs.cell_type_ontology_term_id.tolist()
        # The recorded label is the true leaf or one of its ancestors, never anything else.
        pairs = gt[["true_cell_type_ontology_term_id", "cell_type_ontology_term_id"]].drop_duplicates()
        for leaf, label in pairs.itertuples(index=False):
            assert onto.is_subtype(leaf, label), (leaf, label)
        coarse = gt.true_cell_type_ontology_term_id != gt.cell_type_ontology_term_id
        by_ds = coarse.groupby(gt.dataset_id).mean()
        assert (by_ds > 0).any(), "no dataset stops above the leaves"
        assert (by_ds < 1).any()
    # One biological type appears under labels at different depths.
    gt = pd.read_parquet(tiny_census / f"ground_truth_{TRAIN_RELEASE}.parquet")
    n_labels = gt.groupby("true_cell_type_ontology_term_id").cell_type_ontology_term_id.nunique()
    assert (n_labels > 1).any()


def test_label_universe_is_a_real_cl_subdag(tiny_census):
    onto = bundled_ontology()
    manifest = json.loads((tiny_census / "manifest.json").read_text())
    terms = {t["term_id"]: t for t in manifest["label_universe"]}
    assert 25 <= len(terms) <= 40
    for t, info in terms.items():
        assert NATIVE_CELL in onto.ancestors(t)
        for p in info["parents"]:
            assert p in terms and onto.is_subtype(t, p)
        assert info["n_cl_is_a_ancestors"] == len(onto.ancestors(t))
    assert any(len(info["parents"]) > 1 for info in terms.values()), "no multi-parent term"
    # Some labels are what the paper's "> 7 is_a ancestors" filter removes.
    recorded = set(
        pd.read_parquet(tiny_census / f"ground_truth_{OOD_RELEASE}.parquet").cell_type_ontology_term_id
    )
    assert any(terms[t]["n_cl_is_a_ancestors"] <= 7 for t in recorded)
    assert manifest["cl_release"] == "v2022-09-15"
    assert manifest["releases"][TRAIN_RELEASE]["n_cells"] == len(
        pd.read_parquet(tiny_census / f"ground_truth_{TRAIN_RELEASE}.parquet")
    )


def test_ood_only_types_appear_only_in_the_newer_release(tiny_census):
    cfg = tiny_config()
    old = pd.read_parquet(tiny_census / f"ground_truth_{TRAIN_RELEASE}.parquet")
    new = pd.read_parquet(tiny_census / f"ground_truth_{OOD_RELEASE}.parquet")
    assert not old.true_cell_type_ontology_term_id.isin(cfg.ood_only_types).any()
    assert set(new.cell_type_ontology_term_id) - set(old.cell_type_ontology_term_id)


def test_census_directory_can_be_moved(tmp_path, tiny_census):
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_census / TRAIN_RELEASE, moved)
    with C.open_census({"uri": str(moved)}) as census:
        assert len(C.read_obs(census, "is_primary_data == True", ["dataset_id"])) > 0
        assert C.census_release({"uri": str(moved)}, census) == TRAIN_RELEASE


def test_universe_rejects_terms_outside_native_cell():
    onto = bundled_ontology()
    with pytest.raises(ValueError, match="native cell"):
        build_universe(onto, ("CL:0000000", "CL:0000084"))
    with pytest.raises(ValueError, match="not in Cell Ontology"):
        build_universe(onto, ("CL:9999999",))


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_genes_dropped", 10_000),
        ("granularity_ood", (0.0, 0.0)),
        ("cells_per_dataset", (5, 2)),
        ("ood_release", "2023-05-15"),
        ("coarse_study_share", 1.5),
        ("coarse_study_share", -0.1),
        ("coarse_study_share", "half"),
    ],
)
def test_bad_config_names_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{field: value}).validate()


def test_releases_mimic_both_census_schemas(tiny_census):
    """2023-05-15 has no X/normalized and no dataset_version_id; 2023-12-15 has both (real schemas)."""
    import numpy as np
    from hcebench.data.census import open_census, read_datasets

    with open_census({"uri": str(tiny_census / "2023-05-15")}) as old:
        assert "dataset_version_id" not in read_datasets(old).columns
        assert set(old["census_data"]["homo_sapiens"].ms["RNA"].X.keys()) == {"raw"}
    with open_census({"uri": str(tiny_census / "2023-12-15")}) as new:
        datasets = read_datasets(new)
        assert datasets["dataset_version_id"].str.len().eq(36).all()
        X = new["census_data"]["homo_sapiens"].ms["RNA"].X
        assert set(X.keys()) == {"raw", "normalized"}
        coords = (slice(0, 49),)
        raw = X["raw"].read(coords).tables().concat().to_pandas()
        norm = X["normalized"].read(coords).tables().concat().to_pandas()
        merged = raw.merge(norm, on=["soma_dim_0", "soma_dim_1"], suffixes=("_raw", "_norm"))
        assert len(merged) == len(raw) == len(norm)
        totals = merged.groupby("soma_dim_0")["soma_data_raw"].transform("sum")
        np.testing.assert_allclose(merged["soma_data_norm"], merged["soma_data_raw"] / totals, rtol=1e-5)


# -- coarse_study_share: the mechanism sweep's knob ------------------------------------------------------------
def _plans(**overrides):
    cfg = tiny_config(**overrides)
    return plan_datasets(cfg, build_universe(bundled_ontology(), cfg.label_universe))


def _without_annotation(plan):
    sources = [(i, rows.tolist()) for i, rows in plan.sources]
    return (plan.dataset_id, plan.assay, plan.tissue, plan.n_cells, plan.composition, plan.donors, sources)


def _annotation(plan):
    return (plan.label_of, plan.caps, plan.coarse)


def test_coarse_study_share_zero_gives_every_training_cell_a_leaf_label(tmp_path):
    root = build_tiny_census(tmp_path / "census", coarse_study_share=0.0)
    manifest = json.loads((root / "manifest.json").read_text())
    leaves = {t["term_id"] for t in manifest["label_universe"] if t["is_leaf"]}
    old = pd.read_parquet(root / f"ground_truth_{TRAIN_RELEASE}.parquet")
    assert set(old.cell_type_ontology_term_id) <= leaves
    assert (old.cell_type_ontology_term_id == old.true_cell_type_ontology_term_id).all()
    # The newer release's own studies keep their coarser mix: the OOD question is unchanged.
    new = pd.read_parquet(root / f"ground_truth_{OOD_RELEASE}.parquet")
    added = new[~new.dataset_id.isin(set(old.dataset_id))]
    assert not set(added.cell_type_ontology_term_id) <= leaves
    assert manifest["config"]["coarse_study_share"] == 0.0
    trained = [d for d in manifest["datasets"] if d["first_release"] == TRAIN_RELEASE]
    assert trained and not any(d["coarse_annotation"] for d in trained)


def test_coarse_study_share_half_annotates_half_the_older_studies_coarsely():
    n_train = 20
    plans = _plans(n_train_datasets=n_train, coarse_study_share=0.5)
    u = build_universe(bundled_ontology(), tiny_config().label_universe)
    train = [p for p in plans if p.first_release == "train"]
    coarse = [p for p in train if p.coarse]
    assert len(coarse) == n_train // 2
    for p in train:
        if not p.coarse:
            assert all(label == leaf for leaf, label in p.label_of.items())
    # The coarse half follows granularity_train, so some of its studies record non-leaf labels.
    assert any(set(p.label_of.values()) - set(u.leaves) for p in coarse)
    assert all(p.coarse for p in plans if p.first_release == "ood")


def test_coarse_study_share_changes_only_the_older_studies_labels():
    today = _plans()
    everything_coarse = _plans(coarse_study_share=1.0)  # every older study on the mix: the same as unset
    assert [_annotation(p) for p in everything_coarse] == [_annotation(p) for p in today]
    assert [_without_annotation(p) for p in everything_coarse] == [_without_annotation(p) for p in today]
    for share in (0.0, 0.5):
        swept = _plans(coarse_study_share=share)
        assert [_without_annotation(p) for p in swept] == [_without_annotation(p) for p in today]
        ood = [(p.label_of, p.caps) for p in swept if p.first_release == "ood"]
        assert ood == [(p.label_of, p.caps) for p in today if p.first_release == "ood"]
    # A larger share only adds coarse studies, so the sweep's points are nested.
    cfg = tiny_config(n_train_datasets=40)
    sets = [
        coarse_train_studies(dataclasses.replace(cfg, coarse_study_share=s), 40) for s in (0.25, 0.5, 0.75)
    ]
    assert [len(c) for c in sets] == [10, 20, 30]
    assert sets[0] < sets[1] < sets[2]
    assert coarse_train_studies(cfg, 40) == set(range(40))


def test_unset_coarse_study_share_leaves_the_manifest_as_before(tiny_census):
    manifest = json.loads((tiny_census / "manifest.json").read_text())
    assert "coarse_study_share" not in manifest["config"]
    assert not any("coarse_annotation" in d for d in manifest["datasets"])


def test_the_schema_lists_exactly_the_simulators_settings():
    """census.simulate accepts only SimulationConfig's fields (the releases come from census.*_release), so a
    misspelt key stops validation instead of the simulate_census job."""
    from hcebench.config import load_schema

    schema = load_schema()["properties"]["census"]["properties"]["simulate"]
    fields = {f.name for f in dataclasses.fields(SimulationConfig)} - {"train_release", "ood_release"}
    assert set(schema["propertyNames"]["enum"]) == fields
    assert set(schema["properties"]) <= fields
