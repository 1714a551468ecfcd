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


def test_read_obs_logs_a_closing_progress_line(tiny_census, caplog):
    with C.open_census({"uri": str(tiny_census / TRAIN_RELEASE)}) as census:
        with caplog.at_level("INFO", logger="hcebench.data.census"):
            obs = C.read_obs(census, "is_primary_data == True", ["dataset_id"])
    lines = [r.getMessage() for r in caplog.records if r.name == "hcebench.data.census"]
    assert len(lines) == 1 and lines[0].startswith(
        f"census obs of homo_sapiens: read: {len(obs):,} cells in "
    )


# -- network: timeouts, bounded retries, one clear line --------------------------------------------
QUICK = C.Retry(attempts=2, timeout_s=0.5, backoff_s=0.1)


def test_every_open_carries_the_s3_timeouts(tiny_census):
    with C.open_census({"uri": str(tiny_census / TRAIN_RELEASE)}) as census:
        config = census.context.tiledb_config
    for key, value in C.network_tiledb_config().items():
        assert config[key] == value, key
    assert config["vfs.s3.region"] == "us-west-2"  # cellxgene_census's own defaults still apply beneath
    assert int(C.network_tiledb_config()["vfs.s3.connect_max_tries"]) <= 5  # bounded


@pytest.fixture
def census_directory(monkeypatch):
    """Point cellxgene_census's release and mirror directories at a local host; yields a setter that chooses
    how the host behaves ("silent": accepts and never answers; "json": serves a directory without our release)."""
    import http.server
    import socket
    import threading

    from cellxgene_census import _release_directory

    closers = []

    def serve(kind: str) -> list:
        hits = []
        if kind == "silent":
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(8)
            server.settimeout(0.1)
            stop = threading.Event()

            def accept():
                while not stop.is_set():
                    try:
                        hits.append(server.accept()[0])
                    except OSError:
                        continue

            thread = threading.Thread(target=accept, daemon=True)
            thread.start()
            port = server.getsockname()[1]
            closers.append(lambda: (stop.set(), thread.join(), [c.close() for c in hits], server.close()))
        else:
            body = {
                "/mirrors.json": b'{"default": "m", "m": {"provider": "S3", "base_uri": "s3://x/", "region": "r"}}',
                "/release.json": b'{"2023-12-15": {"release_build": "2023-12-15", "soma": {"uri": "s3://x/soma/"}}}',
            }

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):  # noqa: N802 (the http.server interface)
                    hits.append(self.path)
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(body[self.path])

                def log_message(self, *args):
                    pass

            httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            port = httpd.server_address[1]
            closers.append(lambda: (httpd.shutdown(), httpd.server_close()))
        base = f"http://127.0.0.1:{port}"
        monkeypatch.setattr(_release_directory, "CELL_CENSUS_MIRRORS_DIRECTORY_URL", f"{base}/mirrors.json")
        monkeypatch.setattr(_release_directory, "CELL_CENSUS_RELEASE_DIRECTORY_URL", f"{base}/release.json")
        return hits

    yield serve
    for close in closers:
        close()


def test_a_census_host_that_never_answers_fails_in_bounded_time_with_one_line(census_directory):
    import time

    hits = census_directory("silent")
    started = time.monotonic()
    with pytest.raises(C.NetworkError) as err:
        with C.open_census({"census_version": "2023-05-15"}, retry=QUICK):
            pass
    assert time.monotonic() - started < QUICK.longest_s + 2  # not requests' unbounded wait
    assert len(hits) == 2  # both attempts reached the host, which kept silent
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "Census release 2023-05-15 (census.source: cellxgene, census.train_release / census.ood_release) did not "
        "answer: no answer within 0.5 s (2 attempt(s)"
    )
    assert "census.source: local with census.train_uri and census.ood_uri" in message


def test_an_unknown_release_is_named_at_once(census_directory):
    hits = census_directory("json")
    with pytest.raises(
        C.CensusError, match=r"Census release 1999-01-01 \(census.source: cellxgene.*not valid"
    ):
        with C.open_census({"census_version": "1999-01-01"}, retry=QUICK):
            pass
    assert hits == ["/mirrors.json", "/release.json"]  # one attempt: a wrong name is not retried


def test_a_read_that_loses_the_network_ends_in_one_line(monkeypatch):
    import cellxgene_census

    class Remote:  # what open_soma returns, without a network to reach
        closed = False

        def close(self):
            self.closed = True

    remote = Remote()
    monkeypatch.setattr(cellxgene_census, "open_soma", lambda **kwargs: remote)
    with pytest.raises(C.NetworkError) as err:
        with C.open_census({"uri": "s3://bucket/census/2023-05-15"}):
            raise soma.SOMAError("[TileDB::S3] Error: curl error: Timeout was reached\nmore detail")
    assert remote.closed
    message = str(err.value)
    assert "\n" not in message and message.startswith(
        "census s3://bucket/census/2023-05-15 (census.source: local, census.train_uri / census.ood_uri) stopped "
        "answering during a read: SOMAError: [TileDB::S3] Error: curl error: Timeout was reached"
    )
    with pytest.raises(KeyError, match="not a network problem"):  # other errors pass unchanged
        with C.open_census({"uri": "s3://bucket/census/2023-05-15"}):
            raise KeyError("not a network problem")


# -- memory: TileDB's read buffers, budget and threads follow census.chunk_size ---------------------
def test_read_memory_settings_follow_the_chunk_within_bounds():
    low, high = C.READ_BUFFER_BYTES
    per_cell = C.READ_VALUES_PER_CELL * 8
    middle = C.memory_tiledb_config(chunk_size=10_000)
    assert int(middle["soma.init_buffer_bytes"]) == 10_000 * per_cell == int(middle["py.init_buffer_bytes"])
    assert int(C.memory_tiledb_config(chunk_size=1)["soma.init_buffer_bytes"]) == low
    assert int(C.memory_tiledb_config(chunk_size=10**7)["soma.init_buffer_bytes"]) == high
    # The reader's budget: four buffers of a large chunk, never below the floor its metadata needs, and below
    # TileDB's 10 GiB default whatever the chunk.
    assert int(C.memory_tiledb_config(chunk_size=40_000)["sm.mem.total_budget"]) == 4 * 40_000 * per_cell
    assert int(C.memory_tiledb_config(chunk_size=1)["sm.mem.total_budget"]) == C.READ_BUDGET_MIN_BYTES
    assert int(C.memory_tiledb_config(chunk_size=10**7)["sm.mem.total_budget"]) == 4 * high < 10 << 30
    threads = C.memory_tiledb_config(chunk_size=500, threads=3)
    assert threads["sm.compute_concurrency_level"] == threads["sm.io_concurrency_level"] == "3"
    for bad in (0, -5, 2.5, True):
        with pytest.raises(C.CensusError, match="census.chunk_size"):
            C.memory_tiledb_config(chunk_size=bad)


def test_every_open_passes_the_read_memory_settings_of_its_chunk(tiny_census):
    uri = str(tiny_census / TRAIN_RELEASE)
    with C.open_census({"uri": uri}, chunk_size=5_000) as census:
        given = census.context.tiledb_config
        effective = census.context.native_context.config()  # what TileDB itself runs with
    for key, value in C.memory_tiledb_config(chunk_size=5_000).items():
        assert given[key] == value and effective[key] == value, key
    for key, value in C.network_tiledb_config().items():  # merged with the S3 timeouts, not instead of them
        assert given[key] == value, key
    with C.open_census({"uri": uri}) as census:  # no chunk named: the schema's default census.chunk_size
        default = census.context.tiledb_config
    assert (
        default["soma.init_buffer_bytes"]
        == C.memory_tiledb_config(C.DEFAULT_READ_CHUNK)["soma.init_buffer_bytes"]
    )
    assert default["soma.init_buffer_bytes"] != given["soma.init_buffer_bytes"]


def test_reads_larger_than_the_buffers_arrive_whole_in_several_passes(tiny_census, monkeypatch):
    uri = str(tiny_census / TRAIN_RELEASE)

    def read(buffer_bytes: int):
        monkeypatch.setattr(C, "READ_BUFFER_BYTES", (buffer_bytes, buffer_bytes))
        with C.open_census({"uri": uri}, chunk_size=1) as census:
            assert census.context.tiledb_config["soma.init_buffer_bytes"] == str(buffer_bytes)
            obs = C.read_obs(census, None, ["dataset_id", "cell_type"])
            ids = obs["soma_joinid"].to_numpy()
            var_ids = C.read_var(census)["soma_joinid"].to_numpy()
            (_, x), *rest = C.iter_counts(census, ids, var_ids, chunk_size=len(ids))
        assert not rest
        return obs, x

    small_obs, small_x = read(1 << 12)  # 4 KiB a column: far less than one chunk of the tiny census
    assert small_x.nnz * 8 > 10 * (1 << 12)
    big_obs, big_x = read(1 << 30)
    pd.testing.assert_frame_equal(small_obs, big_obs)
    np.testing.assert_array_equal(small_x.toarray(), big_x.toarray())
    np.testing.assert_array_equal(
        big_x.toarray(), _direct(uri, big_obs["soma_joinid"].to_numpy(), np.arange(big_x.shape[1]))
    )


def test_which_errors_are_worth_another_attempt():
    import requests

    def http_error(status: int) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = status
        return requests.HTTPError(f"{status}", response=response)

    assert C.is_transient(http_error(503)) and C.is_transient(http_error(429))
    assert not C.is_transient(http_error(404))
    assert C.is_transient(requests.ConnectionError("refused")) and C.is_transient(TimeoutError())
    assert C.is_transient(soma.SOMAError("[TileDB::S3] curl error: Timeout was reached"))
    assert not C.is_transient(soma.SOMAError("[TileDB::Array] Error: array does not exist"))
    assert not C.is_transient(ValueError("census version 1999-01-01 is not valid"))


def test_no_dns_fails_in_bounded_time_with_one_line(monkeypatch):
    """Without name resolution the release directory cannot be reached: retried within the bound, then one line
    that names the release, its config keys and how to run from disk instead."""
    import socket
    import time

    looked_up = []

    def no_resolver(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)
    started = time.monotonic()
    with pytest.raises(C.NetworkError) as err:
        with C.open_census({"census_version": "2023-05-15"}, retry=QUICK):
            pass
    assert time.monotonic() - started < QUICK.longest_s + 2
    assert len(looked_up) >= QUICK.attempts  # each attempt tried to resolve the directory's host
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "Census release 2023-05-15 (census.source: cellxgene, census.train_release / census.ood_release) did not "
        "answer: ConnectionError"
    )
    assert "NameResolutionError" in message and f"({QUICK.attempts} attempt(s)" in message
    assert "census.source: local with census.train_uri and census.ood_uri" in message
