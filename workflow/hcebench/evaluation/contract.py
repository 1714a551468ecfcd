"""The per-cell predictions contract: the parquet file through which any method joins the benchmark, and its gate.

One row per cell. Required columns (design.md): the cell, its strata, the true and predicted labels (CL term
ids from ``hierarchy/labels.tsv``) and the probability of the prediction. Optional: donor_id, tissue_general,
label names, and ``probs``, the full probability vector in the order of ``hierarchy/labels.tsv``. Provenance
(architecture, loss, seed, split, releases, reachability hash) travels in the parquet file's metadata.

Scoring trusts nothing in the file but its predictions. ``scored_table`` is the gate: it joins the file to the
split's own cells (``soma_joinid`` of the split's obs) and takes each cell's truth and strata from the suite's obs,
so a method cannot score a subset of the cells, cells of another split, or its own copy of the truth. Every breach
is a ``PredictionsError`` that names the file, the rows (how many, and the first few row numbers and cell ids) and
the fix; all breaches of a file are listed in one message, so one rerun of the method can fix them all.

This module needs only pandas and pyarrow, so scoring a predictions file never imports torch.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hcebench.data.store import Store
from hcebench.errors import PredictionsError
from hcebench.io import atomic_path
from hcebench.settings import measurement_setting

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = [
    "cell_id",
    "dataset_id",
    "tissue",
    "assay",
    "disease",
    "true_label",
    "pred_label",
    "pred_prob",
]
OPTIONAL_COLUMNS = ["donor_id", "tissue_general", "true_label_name", "pred_label_name", "probs"]
CONTRACT_COLUMNS = REQUIRED_COLUMNS + [c for c in OPTIONAL_COLUMNS if c != "probs"]
#: The split obs column each scored column is taken from: truth and strata are the suite's, never the method's.
SUITE_COLUMNS = {
    "dataset_id": "dataset_id",
    "donor_id": "donor_id",
    "tissue": "tissue",
    "tissue_general": "tissue_general",
    "assay": "assay",
    "disease": "disease",
    "true_label": "label",
}
#: Columns of the ``ood_novel`` split's obs carried into the scored table: each cell's own, untrained type.
NOVEL_COLUMNS = ("novel_label", "novel_label_name")
#: How far a ``probs`` row may sum from 1. Softmax or normalised scores in float32 sum to 1 within ~1e-5 over
#: hundreds of labels, and vectors rounded to 4 decimals stay well inside; independent per-type scores (one
#: sigmoid per type, as CellTypist's raw output) or logits miss it by far.
PROBS_SUM_TOLERANCE = 1e-3
#: The split obs columns ``contract_table`` reads: what a writer of predictions reads of obs, chunk by chunk.
OBS_COLUMNS = [
    "soma_joinid",
    "dataset_id",
    "donor_id",
    "tissue",
    "tissue_general",
    "assay",
    "disease",
    "label",
]
#: Cells per chunk of a streamed predictions file (a parquet row group each): 65,536 cells × 164 labels is ~43 MB
#: of float32 probabilities, so a writer's memory is a few chunks whatever the split's size. Predicting, scoring and
#: the analyses all stream in chunks of this size. The environment variable HCEBENCH_CHUNK_CELLS replaces it for a
#: measurement (benchmarks/scale_rehearsal.py --quick fills whole chunks at small sizes with it); results do not
#: depend on it, only memory and the files' row groups do.
CHUNK_CELLS_VARIABLE = "HCEBENCH_CHUNK_CELLS"


def chunk_cells_setting(value: str | None) -> int:
    """The chunk size ``HCEBENCH_CHUNK_CELLS`` gives (65,536 when unset); anything but a positive integer is an
    error naming the variable."""
    return measurement_setting(CHUNK_CELLS_VARIABLE, value, 65_536, "cells")


CHUNK_CELLS = chunk_cells_setting(os.environ.get(CHUNK_CELLS_VARIABLE))
#: Rows named in an error message; the message also says how many there are in all.
ROWS_SHOWN = 5
CONTRACT_DOC = "docs/data.md#predictions-contract-how-any-method-joins-the-benchmark"

_TERM_ID = re.compile(r"^[A-Za-z]+:[0-9]+$")
_UNDERSCORE_ID = re.compile(r"^[A-Za-z]+_[0-9]+$")


def contract_table(
    obs: pd.DataFrame,
    labels: list[str],
    probs: np.ndarray,
    label_names: dict[str, str],
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """The contract table of cells ``obs`` (a store split's obs) given each cell's probabilities over ``labels``.

    The prediction is the most probable label; ``pred_prob`` its probability; ``probs`` the whole row.
    """
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)  # a split may hold no cells
    labels = np.asarray(labels)
    table = pd.DataFrame(
        {
            "cell_id": obs["soma_joinid"].to_numpy(np.int64),
            "dataset_id": obs["dataset_id"].astype(str).to_numpy(),
            "donor_id": obs["donor_id"].astype(str).to_numpy(),
            "tissue": obs["tissue"].astype(str).to_numpy(),
            "tissue_general": obs["tissue_general"].astype(str).to_numpy(),
            "assay": obs["assay"].astype(str).to_numpy(),
            "disease": obs["disease"].astype(str).to_numpy(),
            "true_label": obs["label"].astype(str).to_numpy(),
            "true_label_name": obs["label"].map(label_names).astype(str).to_numpy(),
            "pred_label": labels[pred],
            "pred_label_name": pd.Series(labels[pred]).map(label_names).astype(str).to_numpy(),
            "pred_prob": probs[np.arange(len(pred)), pred].astype(np.float32),
        }
    )
    if save_probabilities:
        table["probs"] = list(probs.astype(np.float32))
    return table


def write_predictions(table: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, object]) -> None:
    """Write the table as parquet, atomically, with ``metadata`` under ``hcebench.*`` keys of the file."""
    with PredictionsWriter(path, metadata) as writer:
        writer.write(table)


class PredictionsWriter:
    """A predictions file written chunk by chunk: ``write`` each chunk's contract table (one parquet row group
    each, checked on its own as ``write_predictions`` checks a whole table); the file appears, atomically, when
    the ``with`` block ends without an error. Memory is one chunk's table, whatever the split's size; a file
    written in one chunk has the bytes ``write_predictions`` gives it. A block that writes no chunk is an error."""

    def __init__(self, path: str | os.PathLike, metadata: dict[str, object]):
        self.path = path
        self.metadata = {f"hcebench.{k}".encode(): str(v).encode() for k, v in metadata.items()}
        self.n_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def __enter__(self) -> PredictionsWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, table: pd.DataFrame) -> None:
        check_predictions(table, self.path)
        arrow = pa.Table.from_pandas(table, schema=self._schema, preserve_index=False)
        if self._writer is None:
            meta = dict(arrow.schema.metadata or {})
            meta.update(self.metadata)
            self._schema = arrow.schema.with_metadata(meta)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(arrow.replace_schema_metadata(self._schema.metadata))
        self.n_rows += len(table)

    def __exit__(self, kind, value, traceback) -> bool:
        if self._writer is not None:
            self._writer.close()
        elif kind is None:
            error = RuntimeError(f"{self.path}: no chunk was written (an empty split writes one empty table)")
            self._atomic.__exit__(RuntimeError, error, None)
            raise error
        return bool(self._atomic.__exit__(kind, value, traceback))


def predictions_metadata(
    hierarchy, split_dir: str | os.PathLike, *, architecture: str, loss: str, seed: int, split: str
) -> dict[str, object]:
    """The provenance ``write_predictions`` stores for a file of ``split``: the run, the label set of
    ``hierarchy`` (a ``hcebench.hierarchy.labels.LabelHierarchy``) with its reachability hash, and the census
    release of the store or OOD set holding ``split_dir``."""
    store = Store.holding(split_dir)
    return {
        "architecture": architecture,
        "loss": loss,
        "seed": seed,
        "split": split,
        "labels": ",".join(hierarchy.term_ids),
        "reachability_hash": hierarchy.content_hash,
        "census_release": store.release,
    }


def open_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """The table of a predictions file, unchecked; a file that is not parquet is an error naming it."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError; its message names no file
        raise PredictionsError(
            f"predictions file {path} cannot be read as parquet ({str(err).splitlines()[0]}); write it with "
            f"hcebench.evaluation.contract.write_predictions or pandas' to_parquet ({CONTRACT_DOC})"
        ) from None


def open_scored_columns(path: str | os.PathLike) -> pd.DataFrame:
    """What scoring reads of a predictions file: every column but ``probs`` (text columns as categoricals, ~4 bytes
    per cell each instead of a Python string). Its ``probs`` vectors are checked apart, chunk by chunk
    (``probs_problems``), so they are never whole in memory."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (OSError, ValueError) as err:
        raise PredictionsError(
            f"predictions file {path} cannot be read as parquet ({str(err).splitlines()[0]}); write it with "
            f"hcebench.evaluation.contract.write_predictions or pandas' to_parquet ({CONTRACT_DOC})"
        ) from None
    columns = [name for name in schema.names if name != "probs"]
    text = [f.name for f in schema if f.name in columns and pa.types.is_string(f.type)]
    table = pq.read_table(path, columns=columns, read_dictionary=text).to_pandas()
    for name in text:  # pandas reads the columns as categoricals; a missing value stays missing
        if not isinstance(table[name].dtype, pd.CategoricalDtype):
            table[name] = table[name].astype("category")
    return table


def probs_problems(
    path: str | os.PathLike, n_labels: int | None, labels_source: object = "hierarchy/labels.tsv"
) -> list[str]:
    """The problems of a predictions file's ``probs`` vectors (none without the column), read ``CHUNK_CELLS``
    rows at a time; the first chunk with problems is reported, with its rows numbered in the file."""
    parquet = pq.ParquetFile(path)
    if "probs" not in parquet.schema_arrow.names:
        return []
    columns = [c for c in ("cell_id", "probs") if c in parquet.schema_arrow.names]
    first = 0
    for batch in parquet.iter_batches(batch_size=CHUNK_CELLS, columns=columns):
        chunk = batch.to_pandas()
        problems = _probs_problems(chunk, n_labels, labels_source) if len(chunk) else []
        if problems:
            where = (
                f"rows {first} to {first + len(chunk) - 1} (the first {len(chunk)}-row chunk with problems; "
            )
            where += "row numbers below count from its start)"
            return [f"{where}: {problem}" for problem in problems]
        first += len(chunk)
    return []


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a predictions parquet (ours or an external method's) and check the file on its own.

    This is the check a file can pass without its split; scoring goes further (``scored_table``).
    """
    table = open_predictions(path)
    check_predictions(table, path)
    return table


def read_provenance(path: str | os.PathLike) -> dict[str, str]:
    """The ``hcebench.*`` metadata a predictions file was written with."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode()[len("hcebench.") :]: v.decode() for k, v in meta.items() if k.startswith(b"hcebench.")}


def check_predictions(
    table: pd.DataFrame, source: object = "predictions", n_labels: int | None = None
) -> None:
    """Raise ``PredictionsError`` unless the table honours the contract on its own: the required columns, a
    ``pred_prob`` in [0, 1] on every row, and ``probs`` rows (when present) of one length (``n_labels`` when
    given), finite, non-negative and summing to 1 within ``PROBS_SUM_TOLERANCE``."""
    _require_columns(table, source)
    problems = _probability_problems(table, n_labels)
    if problems:
        raise PredictionsError(_message(source, problems))


def scored_table(
    table: pd.DataFrame,
    split_obs: pd.DataFrame,
    labels: Sequence[str],
    *,
    label_names: Mapping[str, str] | None = None,
    source: object = "predictions",
    split_source: object = "the split's obs",
    labels_source: object = "hierarchy/labels.tsv",
    file_problems: Sequence[str] = (),
) -> pd.DataFrame:
    """The table scoring uses: every cell of the split, in the split's order, with the method's prediction.

    ``table`` is a predictions file's table; ``split_obs`` the obs of the split it predicts (a store or OOD
    split: ``soma_joinid``, ``label`` and the strata); ``labels`` the term ids of ``hierarchy/labels.tsv``.
    ``cell_id``, ``true_label`` and the strata (``SUITE_COLUMNS``) come from ``split_obs``; ``pred_label``,
    ``pred_prob`` and ``probs`` (when present) from the file; label names from ``label_names`` when given, and
    ``NOVEL_COLUMNS`` when the split has them. Strata the method wrote differently are replaced (and logged);
    everything else that is wrong raises one ``PredictionsError`` listing every problem: cells of the split
    without a row, cell ids not in the split, duplicated cell ids, a ``pred_label`` outside ``labels`` (with a
    hint for names and ``CL_`` ids), a ``pred_prob`` that is not a probability, malformed ``probs`` rows, and a
    ``true_label`` that differs from the split's truth. ``source``, ``split_source`` and ``labels_source`` name
    the three inputs in the messages. ``file_problems`` are problems found in the file apart (``probs_problems``
    of a file read without its ``probs``, ``open_scored_columns``), listed with the others.

    What it holds per cell, for a table read by ``open_scored_columns`` and an obs read by column: the inputs and
    the scored table (ids, probabilities, references to shared label strings); ``scoring.score_predictions``
    gives the measured total.
    """
    _require_columns(table, source)
    obs_ids = _split_ids(split_obs, split_source)
    problems = _label_problems(table, labels, label_names, labels_source)
    problems += _probability_problems(table, len(labels), labels_source)
    problems += list(file_problems)
    cell_problems, position = _cell_problems(table, obs_ids, split_source)
    problems += cell_problems
    if position is not None:
        problems += _truth_problems(table, split_obs, position, split_source)
    if problems:
        raise PredictionsError(_message(source, problems))

    row_of_cell = np.empty(len(obs_ids), dtype=np.int64)
    row_of_cell[position] = np.arange(len(table))
    _log_replaced_strata(table, split_obs, row_of_cell, source)
    out = {"cell_id": obs_ids}
    for column, obs_column in SUITE_COLUMNS.items():
        if obs_column in split_obs.columns:
            out[column] = split_obs[obs_column].to_numpy()
    out["true_label"] = (
        split_obs["label"].astype(str).to_numpy() if "label" in split_obs else np.zeros(0, dtype=object)
    )
    pred_label = table["pred_label"].to_numpy(dtype=object)[row_of_cell]
    out["pred_label"] = pred_label
    out["pred_prob"] = table["pred_prob"].to_numpy(dtype=np.float64)[row_of_cell]
    if label_names is not None:
        out["true_label_name"] = [label_names.get(t, "") for t in out["true_label"]]
        out["pred_label_name"] = [label_names.get(t, "") for t in pred_label]
    if "probs" in table.columns:
        out["probs"] = table["probs"].to_numpy(dtype=object)[row_of_cell]
    for column in NOVEL_COLUMNS:
        if column in split_obs.columns:
            out[column] = split_obs[column].to_numpy()
    return pd.DataFrame(out)


# -- the checks: each returns a list of problems, one sentence each, naming rows and the fix ------------------------
def _require_columns(table: pd.DataFrame, source: object) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise PredictionsError(
            f"{source} misses contract column(s) {missing}; required: {REQUIRED_COLUMNS} "
            f"(hcebench.evaluation.contract, {CONTRACT_DOC})"
        )


def _split_ids(split_obs: pd.DataFrame, split_source: object) -> np.ndarray:
    """The split's cell ids (``soma_joinid``); an obs that cannot be joined on is the store's fault, not the file's."""
    if len(split_obs) == 0:
        return np.zeros(0, dtype=np.int64)
    missing = [c for c in ("soma_joinid", "label") if c not in split_obs.columns]
    if missing:
        raise ValueError(
            f"{split_source} lacks {missing}: not a store split's obs; rebuild the store or OOD set"
        )
    ids = split_obs["soma_joinid"].to_numpy(np.int64)
    if pd.Index(ids).has_duplicates:
        raise ValueError(f"{split_source} holds a soma_joinid more than once; rebuild the store or OOD set")
    return ids


def _cell_problems(
    table: pd.DataFrame, obs_ids: np.ndarray, split_source: object
) -> tuple[list[str], np.ndarray | None]:
    """Problems of ``cell_id``, and each row's position in the split (-1: not in it; ``None``: cannot join)."""
    cell_id = table["cell_id"]
    fix = f"cell_id is the split's soma_joinid ({split_source})"
    if not pd.api.types.is_integer_dtype(cell_id) or pd.api.types.is_bool_dtype(cell_id):
        first = ", ".join(_show(v) for v in cell_id.head(ROWS_SHOWN).tolist())
        return [f"cell_id has dtype {cell_id.dtype} (first values {first}): write integers; {fix}"], None
    if cell_id.isna().any():
        n, rows = _rows(table, cell_id.isna().to_numpy())
        return [f"{n} row(s) have no cell_id ({rows}): {fix}"], None
    ids = cell_id.to_numpy(np.int64)
    problems = []
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        where = pd.Series(np.flatnonzero(repeated)).groupby(ids[repeated], sort=False).agg(list)
        shown = "; ".join(
            f"cell_id {i} at rows {', '.join(map(str, r))}" for i, r in where.head(ROWS_SHOWN).items()
        )
        problems.append(
            f"{len(where)} cell_id(s) appear more than once ({shown}{_more(len(where))}): "
            "write one row per cell, each prediction once"
        )
    position = pd.Index(obs_ids).get_indexer(ids)
    extra = position < 0
    if extra.any():
        n, rows = _rows(table, extra)
        problems.append(
            f"{n} row(s) have a cell_id that is not a cell of the split ({rows}): {fix}; "
            "predict the split the file is named after, and write soma_joinid, not row numbers"
        )
    covered = np.zeros(len(obs_ids), dtype=bool)
    covered[position[~extra]] = True
    if not covered.all():
        absent = obs_ids[~covered]
        shown = ", ".join(str(i) for i in absent[:ROWS_SHOWN].tolist())
        problems.append(
            f"{len(absent)} of the split's {len(obs_ids)} cells have no row (cell_id {shown}"
            f"{_more(len(absent))}): predict every cell of {split_source}; a subset would be scored as the whole split"
        )
    return problems, position


def _label_problems(
    table: pd.DataFrame, labels: Sequence[str], label_names: Mapping[str, str] | None, labels_source: object
) -> list[str]:
    values = table["pred_label"].to_numpy(dtype=object)
    known = pd.Series(values, dtype=object).isin(set(labels)).to_numpy()
    if known.all():
        return []
    n, rows = _rows(table, ~known, values)
    bad = pd.unique(pd.Series(values[~known], dtype=object))
    text = [v for v in bad if isinstance(v, str)]
    hints = []
    underscore = [v for v in text if _UNDERSCORE_ID.match(v)]
    if underscore:
        hints.append(
            f"{_show(underscore[0])} looks like an underscore id: write CL:xxxxxxx with a colon "
            f"({_show(underscore[0])} → {_show(underscore[0].replace('_', ':', 1))})"
        )
    names = [v for v in text if not _UNDERSCORE_ID.match(v) and not _TERM_ID.match(v)]
    if names:
        by_name = {str(name).casefold(): t for t, name in (label_names or {}).items()}
        example = next((v for v in names if v.casefold() in by_name), None)
        arrow = f" ({_show(example)} → {_show(by_name[example.casefold()])})" if example is not None else ""
        hints.append(
            f"{_show(names[0])} looks like a name: write the term id (CL:xxxxxxx) of {labels_source}{arrow}"
        )
    foreign = [v for v in text if _TERM_ID.match(v)]
    if foreign:
        hints.append(
            f"{_show(foreign[0])} is a term id outside the label set: predict only the {len(labels)} labels "
            "the models are trained on; map a finer or other term onto the label of the set it belongs to"
        )
    if any(_is_missing(v) for v in bad):
        hints.append("rows without a pred_label: every cell needs a label of the set")
    other = [v for v in bad if not isinstance(v, str) and not _is_missing(v)]
    if other:
        hints.append(f"{_show(other[0])} is not text: write the term id, not a label index")
    return [
        f"{n} row(s) have a pred_label outside the {len(labels)} labels of {labels_source} ({rows}): "
        + "; ".join(hints)
    ]


def _probability_problems(
    table: pd.DataFrame, n_labels: int | None, labels_source: object = "hierarchy/labels.tsv"
) -> list[str]:
    problems = []
    pred_prob = table["pred_prob"]
    if not pd.api.types.is_numeric_dtype(pred_prob) or pd.api.types.is_bool_dtype(pred_prob):
        first = ", ".join(_show(v) for v in pred_prob.head(ROWS_SHOWN).tolist())
        problems.append(
            f"pred_prob has dtype {pred_prob.dtype} (first values {first}): write numbers in [0, 1]"
        )
    else:
        p = pred_prob.to_numpy(dtype=np.float64, na_value=np.nan)
        for mask, what in (
            (np.isnan(p), "a missing or NaN pred_prob"),
            (np.isinf(p), "an infinite pred_prob"),
            (np.isfinite(p) & ((p < 0) | (p > 1)), "a pred_prob outside [0, 1]"),
        ):
            if mask.any():
                n, rows = _rows(table, mask, p)
                problems.append(
                    f"{n} row(s) have {what} ({rows}): write the probability the method gives its "
                    "predicted label, a number in [0, 1]"
                )
    if "probs" in table.columns and len(table):
        problems += _probs_problems(table, n_labels, labels_source)
    return problems


def _probs_problems(table: pd.DataFrame, n_labels: int | None, labels_source: object) -> list[str]:
    """Problems of the ``probs`` vectors: length, then (on rows of the right length) values and sums."""
    vectors = table["probs"].to_numpy(dtype=object)
    lengths = _lengths(vectors)
    if n_labels is None:  # the file alone: rows must agree with each other
        sized = lengths[lengths >= 0]
        n_labels = int(np.bincount(sized).argmax()) if len(sized) else 0
        expected = f"{n_labels} probabilities (the length of most rows)"
    else:
        expected = f"{n_labels} probabilities, one per label of {labels_source} in its order"
    problems = []
    wrong = lengths != n_labels
    if wrong.any():
        n, rows = _rows(table, wrong, np.where(lengths >= 0, lengths, None))
        problems.append(
            f"{n} row(s) have a probs vector of the wrong length ({rows}; length shown, None: no "
            f"vector): write {expected}, or leave the probs column out"
        )
    right = np.flatnonzero(~wrong)
    bad_value = np.zeros(len(table), dtype=bool)
    negative = np.zeros(len(table), dtype=bool)
    sums = np.full(len(table), np.nan)
    for start in range(0, len(right), 65_536):  # bounds the dense copy on millions of cells
        chunk = right[start : start + 65_536]
        x = _stacked_floats(vectors[chunk], n_labels)
        finite = np.isfinite(x).all(axis=1)
        bad_value[chunk] = ~finite
        negative[chunk] = finite & (x < 0).any(axis=1)
        sums[chunk] = x.sum(axis=1)
    off = ~bad_value & ~negative & ~wrong & (np.abs(sums - 1.0) > PROBS_SUM_TOLERANCE)
    for mask, values, what, fix in (
        (bad_value, None, "a probs vector with NaN, infinite or non-numeric values", "write finite numbers"),
        (negative, None, "a probs vector with a negative value", "write probabilities in [0, 1]"),
        (
            off,
            np.round(sums, 4),
            f"a probs vector that does not sum to 1 within {PROBS_SUM_TOLERANCE} (sum shown)",
            "normalise each row over the label set (divide per-type scores by their sum; softmax logits)",
        ),
    ):
        if mask.any():
            n, rows = _rows(table, mask, values)
            problems.append(f"{n} row(s) have {what} ({rows}): {fix}")
    return problems


def _truth_problems(
    table: pd.DataFrame, split_obs: pd.DataFrame, position: np.ndarray, split_source: object
) -> list[str]:
    """Rows whose ``true_label`` is not the split's: a method's own or shuffled copy of the truth."""
    matched = np.flatnonzero(position >= 0)
    truth = split_obs["label"].astype(str).to_numpy()[position[matched]] if len(matched) else np.array([])
    theirs = table["true_label"].to_numpy(dtype=object)[matched]
    differs = np.array(
        [not (isinstance(t, str) and t == s) for t, s in zip(theirs, truth, strict=True)], dtype=bool
    )
    if not differs.any():
        return []
    mask = np.zeros(len(table), dtype=bool)
    mask[matched[differs]] = True
    shown = np.empty(len(table), dtype=object)
    shown[matched] = [f"{_show(t)}, the split's {_show(s)}" for t, s in zip(theirs, truth, strict=True)]
    n, rows = _rows(table, mask, shown, quote=False)
    message = (
        f"{n} row(s) have a true_label that differs from the split's truth ({rows}): the suite scores "
        f"against its own truth (column 'label' of {split_source}); write that as true_label (contract_table "
        "does), not the method's own labels"
    )
    if "novel_label" in split_obs.columns:
        novel = split_obs["novel_label"].astype(str).to_numpy()[position[matched[differs]]]
        if np.mean(novel == theirs[differs].astype(str)) > 0.5:
            message += (
                "; in ood_novel the truth is each cell's nearest trained ancestor (obs 'label'), not its own "
                "novel type (obs 'novel_label')"
            )
    return [message]


def _log_replaced_strata(
    table: pd.DataFrame, split_obs: pd.DataFrame, row_of_cell: np.ndarray, source: object
) -> None:
    """Say which strata the method wrote differently: they are replaced by the split's, so it is not an error."""
    for column, obs_column in SUITE_COLUMNS.items():
        if column == "true_label" or column not in table.columns or obs_column not in split_obs.columns:
            continue
        theirs = table[column].astype(str).to_numpy()[row_of_cell]
        differ = int((theirs != split_obs[obs_column].astype(str).to_numpy()).sum())
        if differ:
            log.warning(
                "%s: %s differs from the split's on %d of %d cells; scored with the split's",
                source,
                column,
                differ,
                len(theirs),
            )


# -- message helpers -------------------------------------------------------------------------------------------------
def _rows(table: pd.DataFrame, mask: np.ndarray, values=None, quote: bool = True) -> tuple[int, str]:
    """How many rows ``mask`` marks, and the first few described: ``row 3 (cell_id 17): 'x', …``."""
    rows = np.flatnonzero(mask)
    ids = table["cell_id"].to_numpy(dtype=object) if "cell_id" in table.columns else None
    parts = []
    for r in rows[:ROWS_SHOWN].tolist():
        part = f"row {r}" + (f" (cell_id {_show(ids[r])})" if ids is not None else "")
        if values is not None:
            value = values[r]
            part += f": {_show(value) if quote else value}"
        parts.append(part)
    return len(rows), ", ".join(parts) + _more(len(rows))


def _more(n: int) -> str:
    return f", … (first {ROWS_SHOWN} of {n})" if n > ROWS_SHOWN else ""


def _show(value) -> str:
    """A value as a message shows it: text quoted, numbers plain (numpy scalars as Python's)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _lengths(vectors: np.ndarray) -> np.ndarray:
    """The length of every probs entry (``_length``); at once when all are 1-d arrays, as parquet gives them."""
    if all(type(v) is np.ndarray and v.ndim == 1 for v in vectors):
        return np.fromiter((v.size for v in vectors), dtype=np.int64, count=len(vectors))
    return np.array([_length(v) for v in vectors], dtype=np.int64)


def _stacked_floats(vectors: np.ndarray, n: int) -> np.ndarray:
    """Rows of ``n`` floats (entries of that length): one stack when they are numeric arrays, else row by row."""
    try:
        if all(type(v) is np.ndarray and v.dtype.kind in "fiu" for v in vectors):
            return np.stack(vectors).astype(np.float64, copy=False)
    except ValueError:  # stack refuses arrays of other shapes; the rows here all have length n
        pass
    return np.stack([_as_floats(v, n) for v in vectors])


def _length(vector) -> int:
    """The length of a probs entry; -1 for a missing entry or one that is not a vector."""
    try:
        return len(vector) if vector is not None and np.ndim(vector) == 1 else -1
    except ValueError:  # a ragged nested list
        return -1


def _is_missing(value) -> bool:
    """None, NaN or pd.NA: a cell left empty."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def _as_floats(vector, n: int) -> np.ndarray:
    """A probs entry as floats; NaN everywhere if it holds something that is not a number (flagged as such)."""
    try:
        return np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        return np.full(n, np.nan)


def _message(source: object, problems: list[str]) -> str:
    return (
        f"{source} breaks the predictions contract ({CONTRACT_DOC}); fix the method's output and rerun it:\n- "
        + "\n- ".join(problems)
    )
