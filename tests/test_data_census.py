"""hcebench.data.census: opening sources, reading tables, and streaming counts in the caller's order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
import tiledbsoma as soma
from hcebench.data import census as C
from sim_fixtures import OOD_RELEASE, TRAIN_RELEASE


def _direct(uri, obs_ids, var_ids) -> np.ndarray:
    """Dense counts read straight from X/raw, independently of iter_counts."""
    with soma.open(f"{uri}/census_data/homo_sapiens/ms/RNA/X/raw") as x:
        t = x.read().tables().concat()
        shape = x.shape
    full = sp.csr_matrix(
        (t["soma_data"].to_numpy(), (t["soma_dim_0"].to_numpy(), t["soma_dim_1"].to_numpy())), shape=shape
    )
    return full[obs_ids][:, var_ids].toarray()


# -- sources ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, message",
    [
        ({}, "neither"),
        ({"uri": "a", "census_version": "2023-05-15"}, "both"),
        ({"uri": None}, "neither"),
        ({"census-version": "2023-05-15"}, "unknown key"),
        ("2023-05-15", "must be a mapping"),
        ({"uri": 5}, "must be a string"),
    ],
)
def test_bad_source_dict_is_named(source, message):
    with pytest.raises(C.CensusError, match=message):
        with C.open_census(source):
            pass


def test_missing_or_wrong_uri_says_how_to_fix(tmp_path):
    with pytest.raises(C.CensusError, match="does not exist.*simulate"):
        with C.open_census({"uri": str(tmp_path / "nope")}):
            pass
    with pytest.raises(C.CensusError, match="not a census.*census_info"):
        with C.open_census({"uri": str(tmp_path)}):
            pass


def test_release_of_a_dated_version_needs_no_read():
    assert C.census_release({"census_version": "2023-05-15"}, census=None) == "2023-05-15"


# -- tables ----------------------------------------------------------------------------------------
def test_tables_read_as_plain_pandas(tiny_census):
    source = {"uri": str(tiny_census / OOD_RELEASE)}
    with C.open_census(source) as census:
        assert C.census_release(source, census) == OOD_RELEASE
        summary = C.read_summary(census)
        assert summary["census_build_date"] == OOD_RELEASE and all(
            isinstance(v, str) for v in summary.values()
        )
        datasets = C.read_datasets(census)
        assert {"collection_id", "dataset_id", "dataset_title", "dataset_total_cell_count"} <= set(
            datasets.columns
        )
        assert datasets.dataset_id.map(type).eq(str).all()
        var = C.read_var(census)
        assert list(var.columns) == C.VAR_COLUMNS
        assert var.soma_joinid.tolist() == list(range(len(var)))
        obs = C.read_obs(
            census, "is_primary_data == True and tissue_general == 'blood'", ["tissue_general", "cell_type"]
        )
        assert list(obs.columns) == ["soma_joinid", "tissue_general", "cell_type"]
        assert len(obs) > 0 and (obs.tissue_general == "blood").all()
        # The simulated census stores these dictionary-encoded, like the real one: they must come back as str.
        assert not any(isinstance(obs[c].dtype, pd.CategoricalDtype) for c in obs.columns)
        assert obs.cell_type.map(type).eq(str).all()
        assert obs.soma_joinid.is_monotonic_increasing
        assert C.read_obs(census, "dataset_id == 'no-such-dataset'", ["assay"]).empty
        with pytest.raises(C.CensusError, match="no column"):
            C.read_obs(census, None, ["no_such_column"])
        with pytest.raises(C.CensusError, match="organism"):
            C.read_var(census, organism="mus_musculus")


# -- counts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_iter_counts_matches_a_direct_read_in_the_requested_order(tiny_census, chunk_size):
    uri = str(tiny_census / TRAIN_RELEASE)
    rng = np.random.default_rng(0)
    with C.open_census({"uri": uri}) as census:
        n_obs = len(C.read_obs(census, None, []))
        n_var = len(C.read_var(census))
        obs_ids = rng.choice(n_obs, size=40 if chunk_size == 1 else 300, replace=False)
        var_ids = rng.permutation(n_var)[: n_var // 2]
        got_ids, blocks = [], []
        for ids, x in C.iter_counts(census, obs_ids, var_ids, chunk_size):
            assert isinstance(x, sp.csr_matrix) and x.dtype == np.float32
            assert x.shape == (len(ids), len(var_ids)) and len(ids) <= chunk_size
            got_ids.append(ids)
            blocks.append(x)
    assert np.array_equal(np.concatenate(got_ids), obs_ids)
    np.testing.assert_array_equal(sp.vstack(blocks).toarray(), _direct(uri, obs_ids, var_ids))


def test_iter_counts_repeated_cells_and_errors(tiny_census):
    uri = str(tiny_census / TRAIN_RELEASE)
    with C.open_census({"uri": uri}) as census:
        ids = np.array([5, 3, 5, 0])
        var_ids = np.array([4, 0, 2])
        [(got, x)] = list(C.iter_counts(census, ids, var_ids, 10))
        assert got.tolist() == ids.tolist()
        np.testing.assert_array_equal(x.toarray(), _direct(uri, ids, var_ids))
        [(_, empty)] = list(C.iter_counts(census, ids, np.array([], dtype=np.int64), 10))
        assert empty.shape == (4, 0)
        with pytest.raises(C.CensusError, match="repeated genes"):
            next(C.iter_counts(census, ids, np.array([1, 1]), 10))
        with pytest.raises(C.CensusError, match="non-negative"):
            next(C.iter_counts(census, ids, np.array([-1, 2]), 10))
        with pytest.raises(C.CensusError, match="out of range"):
            next(C.iter_counts(census, np.array([10**9]), var_ids, 10))
        with pytest.raises(C.CensusError, match="layer"):
            next(C.iter_counts(census, ids, var_ids, 10, layer="normalized"))


# -- a census written with plain (not dictionary-encoded) strings ----------------------------------
def _plain_string_census(path) -> str:
    """The smallest Census layout, strings stored as large_string: read_* must not care."""
    with soma.Collection.create(str(path)) as root:
        with root.add_new_collection("census_info") as info:
            schema = pa.schema(
                [("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())]
            )
            info.add_new_dataframe("summary", schema=schema, domain=[(0, 1)]).close()
        with root.add_new_collection("census_data") as data:
            with data.add_new_collection("homo_sapiens", soma.Experiment) as exp:
                schema = pa.schema([("soma_joinid", pa.int64()), ("cell_type", pa.large_string())])
                exp.add_new_dataframe("obs", schema=schema, domain=[(0, 2)]).close()
                with exp.add_new_collection("ms") as ms:
                    with ms.add_new_collection("RNA", soma.Measurement) as rna:
                        schema = pa.schema([("soma_joinid", pa.int64()), ("feature_id", pa.large_string())])
                        rna.add_new_dataframe("var", schema=schema, domain=[(0, 1)]).close()
                        with rna.add_new_collection("X") as x:
                            x.add_new_sparse_ndarray("raw", type=pa.float32(), shape=(3, 2)).close()
    with soma.DataFrame.open(f"{path}/census_info/summary", "w") as s:
        s.write(
            pa.table(
                {"soma_joinid": [0, 1], "label": ["census_build_date", "x"], "value": ["2024-01-01", "y"]},
                schema=s.schema,
            )
        )
    with soma.DataFrame.open(f"{path}/census_data/homo_sapiens/obs", "w") as o:
        o.write(
            pa.table({"soma_joinid": [0, 1, 2], "cell_type": ["T cell", "B cell", "T cell"]}, schema=o.schema)
        )
    with soma.DataFrame.open(f"{path}/census_data/homo_sapiens/ms/RNA/var", "w") as v:
        v.write(
            pa.table(
                {"soma_joinid": [0, 1], "feature_id": ["ENSG00000000003", "ENSG00000000005"]}, schema=v.schema
            )
        )
    with soma.SparseNDArray.open(f"{path}/census_data/homo_sapiens/ms/RNA/X/raw", "w") as a:
        a.write(
            pa.table(
                {
                    "soma_dim_0": pa.array([0, 2], pa.int64()),
                    "soma_dim_1": pa.array([1, 0], pa.int64()),
                    "soma_data": pa.array([3.0, 4.0], pa.float32()),
                }
            )
        )
    return str(path)


def test_plain_string_columns_read_the_same(tmp_path):
    uri = _plain_string_census(tmp_path / "plain")
    with C.open_census({"uri": uri}) as census:
        assert C.census_release({"uri": uri}, census) == "2024-01-01"
        obs = C.read_obs(census, "cell_type == 'T cell'")
        assert obs.soma_joinid.tolist() == [0, 2] and obs.cell_type.tolist() == ["T cell", "T cell"]
        [(_, x)] = list(C.iter_counts(census, np.array([2, 1, 0]), np.array([1, 0]), 5))
        np.testing.assert_array_equal(x.toarray(), [[0, 4], [0, 0], [3, 0]])
