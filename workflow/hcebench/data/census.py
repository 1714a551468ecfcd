"""Reading a census, real or local: the only module that touches SOMA.

A *census source* is a small dict taken from the config:

    {"uri": "results/demo/census/2023-05-15"}   a local (or s3://) SOMA collection in the Census layout
    {"census_version": "2023-05-15"}            a public CELLxGENE Census release

Both open through ``cellxgene_census.open_soma``, so the simulated census and the real one take the
same code path from here on. Everything returned is plain pandas / numpy / scipy: dictionary-encoded
(categorical) columns, which the real Census uses for its string columns, come back as ``str``
objects, so downstream code never depends on how a release chose to encode a column.

A public release is a network source: opening one is bounded (``CENSUS_RETRY``: a deadline per attempt, a few
attempts with backoff; ``hcebench.network``) and TileDB's S3 client gets timeouts and a bounded retry of its own
(``network_tiledb_config``), so reads cannot hang either. A source that does not answer ends the job with one
line naming the config key and how to run offline (``census.source: local``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from hcebench.data.store.split import plain_strings
from hcebench.errors import CensusError, NetworkError
from hcebench.network import Retry, call_with_retries, one_line
from hcebench.progress import Progress

log = logging.getLogger(__name__)

CensusSource = dict  # {"uri": "<local path or s3:// URI>"} or {"census_version": "2023-05-15"}

SOURCE_KEYS = ("uri", "census_version")
VAR_COLUMNS = ["soma_joinid", "feature_id", "feature_name", "feature_length"]
_RELEASE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- opening ---------------------------------------------------------------------------------------
def _check_source(source: Any) -> tuple[str, str]:
    """Validate a source dict and return (key, value) for its single locator."""
    if not isinstance(source, dict):
        raise CensusError(
            f"census source must be a mapping with exactly one of {SOURCE_KEYS}, got {type(source).__name__} "
            f"{source!r}; write e.g. {{uri: path/to/census}} or {{census_version: '2023-05-15'}}"
        )
    unknown = sorted(set(source) - set(SOURCE_KEYS))
    if unknown:
        raise CensusError(
            f"census source {source!r} has unknown key(s) {unknown}; allowed keys are {list(SOURCE_KEYS)} "
            "(exactly one of them)"
        )
    given = [k for k in SOURCE_KEYS if source.get(k) not in (None, "")]
    if len(given) != 1:
        what = "neither" if not given else "both"
        raise CensusError(
            f"census source {source!r} sets {what} of 'uri' and 'census_version'; set exactly one: "
            "'uri' for a local SOMA census (e.g. the simulated one), 'census_version' for a public release"
        )
    key = given[0]
    value = source[key]
    if not isinstance(value, str):
        raise CensusError(f"census source key {key!r} must be a string, got {type(value).__name__} {value!r}")
    return key, value


#: Opening a public release: the release directory (HTTPS, a few KB) and the collection's metadata (S3). Each
#: attempt takes seconds when the network answers; three attempts end a dead link's job within about 6 minutes.
CENSUS_RETRY = Retry(attempts=3, timeout_s=120.0, backoff_s=5.0)

#: What to do without network, appended to every "did not answer" line.
OFFLINE_FIX = (
    "Offline: copy the releases to disk and set census.source: local with census.train_uri and census.ood_uri "
    "(or census.source: simulated for the demo)."
)

#: Error texts of TileDB / tiledbsoma that mean the network, not the data, failed.
_NETWORK_TEXT = re.compile(
    r"curl|timed? ?out|timeout|connect|resolve host|network|socket|unreachable|throttl|slow ?down|\b50[234]\b",
    re.IGNORECASE,
)


def network_tiledb_config() -> dict[str, str]:
    """TileDB settings that bound every S3 request of a census read, so a silent network fails a job, not hangs it.

    TileDB hands these to the AWS S3 client: ``connect_timeout_ms`` bounds opening a connection,
    ``request_timeout_ms`` how long a transfer may stall (no byte received), and each request is tried
    ``connect_max_tries`` times with waits of ``connect_scale_factor · 2^k`` ms. Worst case per request: about
    3 × (10 + 30) s. Local paths ignore them.
    """
    return {
        "vfs.s3.connect_timeout_ms": "10000",
        "vfs.s3.request_timeout_ms": "30000",
        "vfs.s3.connect_max_tries": "3",
        "vfs.s3.connect_scale_factor": "500",
    }


#: Cells per read when the caller names no ``census.chunk_size``: the config schema's default.
DEFAULT_READ_CHUNK = 20_000
#: Stored values per cell a read buffer is sized for: the paper's selection averages ~2,000 (docs/data.md). A chunk
#: of denser cells is read in more passes of the same buffers, never refused.
READ_VALUES_PER_CELL = 2_048
#: Bounds of one column's read buffer: the floor keeps small chunks and obs/var reads to a few passes; the ceiling is
#: cellxgene_census's own default (1 GiB), which the suite never exceeds.
READ_BUFFER_BYTES = (32 << 20, 1 << 30)
#: The least ``sm.mem.total_budget``: TileDB's reader keeps a tenth of it for the array's tile offsets and bounding
#: rectangles, which grow with the census, not the chunk, and fails a read whose metadata does not fit.
READ_BUDGET_MIN_BYTES = 2 << 30
#: TileDB's compute and I/O threads per open census. TileDB sizes both pools from the machine's cores: with 64 (a
#: 64-core node's default) the same 20,000-cell build peaked 25 % higher than with these 4 and grew 1.33x over a
#: 10x span, not 1.12x (benchmarks/data_path.py --compare-defaults --default-threads 64). A fixed number makes the
#: build's memory the same on a laptop and a large node.
READ_THREADS = 4


def memory_tiledb_config(chunk_size: int = DEFAULT_READ_CHUNK, threads: int = READ_THREADS) -> dict[str, str]:
    """TileDB settings that size a census read's memory from its chunk, not from the machine or the install.

    - ``soma.init_buffer_bytes`` (tiledbsoma's buffer per column of a read) and ``py.init_buffer_bytes`` (the
      same for TileDB-Py readers): one chunk of average cells, ``chunk_size × READ_VALUES_PER_CELL × 8`` bytes
      (an int64 coordinate, the widest column), within ``READ_BUFFER_BYTES``. cellxgene_census sets 1 GiB
      whatever the chunk; a read larger than the buffer returns in several passes.
    - ``sm.mem.total_budget``: TileDB's reader may hold this much in tiles at once (its default 10 GiB); four
      buffers' worth, so the coordinate tiles of one chunk (half the budget by TileDB's default ratios) fit, and
      at least ``READ_BUDGET_MIN_BYTES``. A cap, not an allocation: a small chunk's read stays small.
    - ``sm.compute_concurrency_level`` and ``sm.io_concurrency_level``: ``threads`` (``READ_THREADS``).

    ``chunk_size`` is ``census.chunk_size``, the cells the build reads at a time.
    """
    if not isinstance(chunk_size, int | np.integer) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise CensusError(
            f"census.chunk_size must be a positive number of cells, got {chunk_size!r}; "
            "10,000-50,000 suits 16-64 GB nodes"
        )
    low, high = READ_BUFFER_BYTES
    buffer = min(max(int(chunk_size) * READ_VALUES_PER_CELL * 8, low), high)
    return {
        "soma.init_buffer_bytes": str(buffer),
        "py.init_buffer_bytes": str(buffer),
        "sm.mem.total_budget": str(max(4 * buffer, READ_BUDGET_MIN_BYTES)),
        "sm.compute_concurrency_level": str(threads),
        "sm.io_concurrency_level": str(threads),
    }


def tiledb_config(chunk_size: int = DEFAULT_READ_CHUNK) -> dict[str, str]:
    """Every TileDB setting the suite passes to ``cellxgene_census.open_soma``, in one dict.

    ``open_soma`` takes either a ``tiledb_config`` or a ``context``, not both, so each concern adds its keys
    here (S3 timeouts from ``network_tiledb_config``; memory budgets beside them) rather than building a context
    of its own. ``open_soma`` merges the dict over cellxgene_census's defaults (anonymous S3 access, its region).
    """
    return {**network_tiledb_config(), **memory_tiledb_config(chunk_size)}


def is_remote(source: CensusSource) -> bool:
    """Whether opening ``source`` goes over the network: a public release, or a URI with a scheme (``s3://``)."""
    key, value = _check_source(source)
    return key == "census_version" or "://" in value


def describe_remote(source: CensusSource) -> str:
    """A remote source and the config keys that chose it, for the one-line network error."""
    key, value = _check_source(source)
    if key == "census_version":
        return f"Census release {value} (census.source: cellxgene, census.train_release / census.ood_release)"
    return f"census {value} (census.source: local, census.train_uri / census.ood_uri)"


def is_transient(err: BaseException) -> bool:
    """Whether opening or reading a remote census may pass on another attempt: connection failures, timeouts and
    server errors may; an unknown release or a missing object will not."""
    if isinstance(err, OSError):  # requests' errors are OSErrors too; an HTTP error carries its response
        status = getattr(getattr(err, "response", None), "status_code", None)
        return status is None or status >= 500 or status in (408, 429)
    # TileDB's S3 failures reach Python as SOMAError (or pybind11's RuntimeError); only their text tells a lost
    # connection from a missing object.
    import tiledbsoma

    return isinstance(err, tiledbsoma.SOMAError | RuntimeError) and bool(_NETWORK_TEXT.search(str(err)))


def _open_remote(key: str, value: str, config: dict[str, str], source: CensusSource, retry: Retry) -> Any:
    import cellxgene_census

    try:
        return call_with_retries(
            lambda: cellxgene_census.open_soma(**{key: value}, tiledb_config=config),
            retry,
            what=describe_remote(source),
            fix=OFFLINE_FIX,
            transient=is_transient,
        )
    except ValueError as err:  # cellxgene_census: a version its release directory does not list
        raise CensusError(
            f"{describe_remote(source)} cannot be opened: {one_line(err)}. Check the release name against "
            "cellxgene_census.get_census_version_directory()"
        ) from err


@contextmanager
def open_census(
    source: CensusSource, retry: Retry = CENSUS_RETRY, *, chunk_size: int = DEFAULT_READ_CHUNK
) -> Iterator[Any]:
    """Open a census read-only for the duration of a ``with`` block, and close it afterwards.

    ``source`` holds exactly one of ``uri`` (opened with ``cellxgene_census.open_soma(uri=...)``) or
    ``census_version`` (``open_soma(census_version=...)``, which needs network access). A local ``uri``
    must be a directory holding ``census_info`` and ``census_data``; a URI with a scheme (``s3://``)
    is passed through unchecked. Every open passes ``tiledb_config(chunk_size)``: pass ``census.chunk_size`` when
    reading counts, so TileDB's read buffers and budget follow the chunk (``memory_tiledb_config``).

    A remote source is opened under ``retry`` (module docstring), and a network failure of a read inside the
    ``with`` block (TileDB's S3 timeouts and retries spent) is raised as a one-line ``NetworkError`` too.
    """
    key, value = _check_source(source)
    import cellxgene_census

    config = tiledb_config(chunk_size)
    remote = is_remote(source)
    if remote:
        census = _open_remote(key, value, config, source, retry)
    else:
        path = Path(value)
        if not path.is_dir():
            raise CensusError(
                f"census source uri {value!r} does not exist; build the simulated census first "
                "(the simulate rule, or hcebench.data.simulate.simulate_census) or point 'uri' at a SOMA census directory"
            )
        missing = [p for p in ("census_info", "census_data") if not (path / p).exists()]
        if missing:
            raise CensusError(
                f"census source uri {value!r} is not a census: it lacks {missing}. Point 'uri' at one "
                "release directory (e.g. .../2023-05-15), not at the folder that holds several"
            )
        census = cellxgene_census.open_soma(uri=value, tiledb_config=config)
    try:
        yield census
    except Exception as err:
        if remote and not isinstance(err, NetworkError | CensusError) and is_transient(err):
            raise NetworkError(
                f"{describe_remote(source)} stopped answering during a read: {one_line(err)} (TileDB's S3 "
                f"timeouts and {network_tiledb_config()['vfs.s3.connect_max_tries']} tries per request spent). "
                f"{OFFLINE_FIX}"
            ) from err
        raise
    finally:
        census.close()


def census_release(source: CensusSource, census: Any) -> str:
    """The release a result was computed on, e.g. ``"2023-05-15"``.

    ``source["census_version"]`` when it is a dated release; otherwise (a local ``uri``, or an alias such
    as ``"stable"`` whose meaning moves over time) the ``census_build_date`` of ``census_info/summary``.
    """
    key, value = _check_source(source)
    if key == "census_version" and _RELEASE_DATE.fullmatch(value):
        return value
    summary = read_summary(census)
    try:
        return summary["census_build_date"]
    except KeyError:
        raise CensusError(
            f"census {value!r} has no 'census_build_date' in census_info/summary (labels: {sorted(summary)}); "
            "is it a Census-layout SOMA collection?"
        ) from None


# -- tables ----------------------------------------------------------------------------------------
def _experiment(census: Any, organism: str) -> Any:
    data = census["census_data"]
    if organism not in data:
        raise CensusError(
            f"census has no organism {organism!r} under census_data (has: {sorted(data.keys())}); "
            "check the organism setting"
        )
    return data[organism]


def read_summary(census: Any) -> dict[str, str]:
    """``census_info/summary`` as ``{label: value}``, values as strings (the table stores them so)."""
    df = census["census_info"]["summary"].read().concat().to_pandas()
    return {str(k): str(v) for k, v in zip(df["label"], df["value"], strict=True)}


#: The census_info/summary label of a release whose X/raw holds normalised values rather than integer counts ("false"):
#: one ingested from .h5ad files that hold only log1p-normalised values (hcebench.data.anndata_source). A Census
#: release has no such label: its X/raw holds integer counts.
RAW_COUNTS_LABEL = "x_raw_integer_counts"


def raw_counts_are_integers(census: Any) -> bool:
    """Whether the census's X/raw holds integer counts (the Census), so a fractional value is an error."""
    return read_summary(census).get(RAW_COUNTS_LABEL, "true") != "false"


def read_datasets(census: Any) -> pd.DataFrame:
    """``census_info/datasets``, one row per dataset, string columns as ``str`` objects."""
    return plain_strings(census["census_info"]["datasets"].read().concat().to_pandas())


def read_summary_cell_counts(census: Any, category: str | None = None) -> pd.DataFrame:
    """``census_info/summary_cell_counts`` (organism, category, label, ontology_term_id, total/unique_cell_count),
    only the rows of ``category`` (e.g. ``"assay"``) when given: what a release holds, without reading obs."""
    table = census["census_info"]["summary_cell_counts"]
    value_filter = f"category == {category!r}" if category else None
    return plain_strings(table.read(value_filter=value_filter).concat().to_pandas())


def read_var(census: Any, organism: str = "homo_sapiens", measurement: str = "RNA") -> pd.DataFrame:
    """Genes of a measurement: ``soma_joinid, feature_id, feature_name, feature_length``, in joinid order."""
    exp = _experiment(census, organism)
    var = exp.ms[measurement].var.read(column_names=VAR_COLUMNS).concat().to_pandas()
    return plain_strings(var).sort_values("soma_joinid", ignore_index=True)


def read_obs(
    census: Any,
    value_filter: str | None,
    column_names: list[str] | None = None,
    organism: str = "homo_sapiens",
    *,
    plain: bool = True,
) -> pd.DataFrame:
    """Cells of ``census_data/<organism>/obs`` matching ``value_filter`` (SOMA filter syntax, or None for all).

    ``column_names=None`` reads every column; a list reads those plus ``soma_joinid``, which is always
    the first column. Rows come in joinid order. Categorical columns are converted to ``str`` objects unless
    ``plain`` is False (then a dataset_id costs 4 bytes per cell, not a Python string's ~90).
    """
    cols = None
    if column_names is not None:
        cols = ["soma_joinid"] + [c for c in column_names if c != "soma_joinid"]
    obs = _experiment(census, organism).obs
    if cols is not None:
        unknown = [c for c in cols if c not in obs.schema.names]
        if unknown:
            raise CensusError(f"obs has no column(s) {unknown}; available: {obs.schema.names}")
    # Table by table, so that a read of millions of cells logs its progress (hcebench.progress).
    progress = Progress(None, f"census obs of {organism}: read", log, unit="cells")
    tables = []
    for table in obs.read(value_filter=value_filter, column_names=cols):
        tables.append(table)
        progress.advance(table.num_rows)
    progress.finish()
    if tables:
        df = pa.concat_tables(tables).to_pandas()
    else:
        df = obs.schema.empty_table().select(cols or obs.schema.names).to_pandas()
    if plain:
        df = plain_strings(df)
    if cols is None:
        cols = ["soma_joinid"] + [c for c in df.columns if c != "soma_joinid"]
    return df[cols].sort_values("soma_joinid", ignore_index=True)


# -- counts ----------------------------------------------------------------------------------------
def iter_counts(
    census: Any,
    obs_joinids: np.ndarray,
    var_joinids: np.ndarray,
    chunk_size: int,
    organism: str = "homo_sapiens",
    layer: str = "raw",
) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
    """Stream the counts of ``obs_joinids`` × ``var_joinids`` in row chunks of at most ``chunk_size`` cells.

    Yields ``(ids, X)``: ``ids`` is the next slice of ``obs_joinids`` (int64, in the caller's order) and
    ``X`` a float32 CSR matrix of shape ``(len(ids), len(var_joinids))`` whose row ``i`` is cell ``ids[i]``
    and column ``j`` gene ``var_joinids[j]``. Entries absent from the census are zeros. Repeated obs
    joinids give repeated rows; var joinids must be unique. Memory is bounded by one chunk.

    Chunks of nearby joinids read fastest (a Census stores each dataset's cells contiguously): pass
    cells in joinid order and shuffle afterwards rather than reading a shuffled order.
    """
    import tiledbsoma

    obs_ids = np.asarray(obs_joinids, dtype=np.int64).ravel()
    var_ids = np.asarray(var_joinids, dtype=np.int64).ravel()
    if chunk_size < 1:
        raise CensusError(f"chunk_size must be a positive number of cells, got {chunk_size}")
    if len(np.unique(var_ids)) != len(var_ids):
        raise CensusError("var_joinids contains repeated genes; pass each gene joinid once")
    if (obs_ids < 0).any() or (var_ids < 0).any():
        raise CensusError("joinids must be non-negative; drop missing genes (-1) and zero-fill after reading")
    exp = _experiment(census, organism)
    X = exp.ms["RNA"].X
    if layer not in X:
        raise CensusError(f"census has no X layer {layer!r} (has: {sorted(X.keys())})")
    n_obs_total, n_var_total = X[layer].shape
    if len(var_ids) and var_ids.max() >= n_var_total:
        raise CensusError(f"var joinid {var_ids.max()} is out of range: the census has {n_var_total} genes")

    # TileDB reads sorted coordinates fastest; we query sorted ids and map back to the caller's order.
    var_sorted = np.sort(var_ids)
    # Gene joinids are few (tens of thousands): a lookup table maps them to output columns fastest.
    col_of = np.full(n_var_total, -1, dtype=np.int32)
    col_of[var_ids] = np.arange(len(var_ids), dtype=np.int32)
    n_var = len(var_ids)
    for start in range(0, len(obs_ids), chunk_size):
        ids = obs_ids[start : start + chunk_size].copy()
        uniq, inverse = np.unique(ids, return_inverse=True)
        if uniq[-1] >= n_obs_total:
            raise CensusError(f"obs joinid {uniq[-1]} is out of range: the census has {n_obs_total} cells")
        rows, cols, vals = [], [], []
        if n_var:
            # A point read of X by joinid: what an axis_query with coordinates on both axes does, minus
            # its obs/var dataframe look-ups (half the time on the demo census).
            for tbl in X[layer].read(coords=(uniq, var_sorted)).tables():
                rows.append(tbl["soma_dim_0"].to_numpy())
                cols.append(tbl["soma_dim_1"].to_numpy())
                vals.append(tbl["soma_data"].to_numpy())
        if rows:
            r = tiledbsoma.IntIndexer(uniq).get_indexer(np.concatenate(rows))
            c = np.take(col_of, np.concatenate(cols))
            v = np.concatenate(vals).astype(np.float32, copy=False)
        else:
            r = c = np.zeros(0, dtype=np.int64)
            v = np.zeros(0, dtype=np.float32)
        m = sp.csr_matrix((v, (r, c)), shape=(len(uniq), n_var), dtype=np.float32)
        if len(uniq) != len(ids) or not np.array_equal(uniq, ids):
            m = m[inverse]
        yield ids, m
