"""AnnData atlases as a census source (``census.source: anndata``): ``.h5ad`` files ingested into Census-layout SOMA.

Each entry of ``census.anndata.datasets`` is one ``.h5ad`` file, or several datasets when it names a
``dataset_column``. Every dataset belongs to the training release (``release: train``: in both releases, as a Census
keeps its datasets) or is new in the OOD release (``release: ood``). ``ingest_releases`` writes both releases with
tiledbsoma's own ingestor (``tiledbsoma.io.from_anndata``, one dataset at a time through a registration mapping) in
the layout the simulator writes (``hcebench.data.simulate.writer``):

    <release>/census_info/{summary, datasets, summary_cell_counts}   census_build_date = the release name, one
                                                   row per dataset; cells per assay, cell type, ...
    <release>/census_data/homo_sapiens             obs (Census columns), ms/RNA/var (feature_id, feature_name,
                                                   feature_length), ms/RNA/X/raw (counts)

so the rest of the workflow reads them exactly as ``census.source: local`` reads a SOMA census. What ingest decided
(columns defaulted, labels dropped, genes duplicated or missing, counts recovered) goes to ``manifest.json`` beside
the releases (``report``), and the rule log.

Per dataset:

- **obs**: the Census columns the suite reads (``CENSUS_OBS``). A file that follows the CELLxGENE schema has them
  (``cell_type_ontology_term_id``, ``donor_id``, ``assay``, ``tissue``, ``disease``, ``is_primary_data``, ...). For
  others, ``obs`` maps a Census column to the file's column and ``values`` sets a constant; a column neither
  present, mapped nor set takes ``OBS_DEFAULTS`` (each use reported). The label is required.
- **labels**: ``cell_type_ontology_term_id`` when the file has it; otherwise ``labels.column`` (author labels) and
  ``labels.map``, a TSV of author label → CL term id (``draft_label_map`` drafts it from the ontology's names and
  exact synonyms: ``python -m hcebench.data.anndata_source draft-labels``). Labels without an id stop the run,
  naming each and the TSV to edit, unless ``census.anndata.unmapped_labels: drop`` (then counted).
- **counts**: ``counts.matrix`` (``X``, ``raw.X`` or ``layers/<name>``) must hold non-negative integers
  (``counts.kind: raw``). A matrix of log1p of per-cell-scaled counts is refused with the declaration that reads it:
  ``counts.kind: log1p_normalised`` with ``counts.scale`` (the per-cell total it was scaled to) is undone with
  ``expm1``; with ``counts.total_counts_column`` (an obs column of each cell's total counts) it is multiplied back
  to counts and rounded, after checking the values are integers within ``INTEGER_TOLERANCE``. Without totals the
  normalised values are written as they are: the store's normalisation divides each cell by its own sum, so the
  result is the same as from counts over the same genes; the release is then marked as not holding integer counts
  (``RAW_COUNTS_LABEL`` in its summary) and the build checks its values are finite and non-negative only.
- **genes**: by Ensembl id or by symbol (``genes.kind``; detected when left out). A symbol-only file gets Ensembl
  ids from the bundled scTab protein-coding table (``gene_names``) where the symbol is there once; other symbols
  keep the symbol as feature_id, so that two symbol-only studies still align on them. A repeated feature is kept
  once (its first column) and every repeat is reported, never summed. The fraction of the gene list
  (``genes.source``) each dataset lacks is recorded, an error past ``census.anndata.max_missing_gene_fraction``.

Memory: one file at a time as anndata reads it, and one dataset's counts in the Census layout (CSR, 12 bytes per
stored value, plus its obs); each prepared dataset goes to a scratch ``.h5ad`` and is appended from there. A file
larger than memory should be split into several files first.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hcebench.data.census import RAW_COUNTS_LABEL
from hcebench.data.checks import any_bad_value, bad_values
from hcebench.data.genes import read_gene_list
from hcebench.data.simulate.writer import (
    COUNT_CATEGORIES,
    COUNTS_SCHEMA,
    DATASETS_SCHEMA,
    SUMMARY_SCHEMA,
    write_dataframe,
)
from hcebench.errors import ConfigError, DataError
from hcebench.hierarchy.ontology import Ontology, load_ontology, resolve_source
from hcebench.io import atomic_path, write_json
from hcebench.settings import IngestSettings

log = logging.getLogger(__name__)

ORGANISM = "homo_sapiens"
#: Census obs columns an ingested release holds (strings, bar is_primary_data), in the Census's order.
CENSUS_OBS = (
    "dataset_id",
    "assay",
    "assay_ontology_term_id",
    "cell_type",
    "cell_type_ontology_term_id",
    "development_stage",
    "development_stage_ontology_term_id",
    "disease",
    "disease_ontology_term_id",
    "donor_id",
    "is_primary_data",
    "self_reported_ethnicity",
    "self_reported_ethnicity_ontology_term_id",
    "sex",
    "sex_ontology_term_id",
    "suspension_type",
    "tissue",
    "tissue_ontology_term_id",
    "tissue_general",
    "tissue_general_ontology_term_id",
)
#: What a column takes when the file lacks it and the config neither maps nor sets it. ``donor_id`` defaults to
#: the dataset id (the whole dataset one donor: a tech_sample split then needs split.by: cell), ``tissue_general``
#: to the tissue. The label has no default.
OBS_DEFAULTS = {
    "assay": "unknown",
    "development_stage": "unknown",
    "disease": "unknown",
    "is_primary_data": True,
    "self_reported_ethnicity": "unknown",
    "sex": "unknown",
    "suspension_type": "cell",
    "tissue": "unknown",
}
COUNT_KINDS = ("raw", "log1p_normalised")
#: Largest distance from an integer that counts recovered from log1p-normalised values may show: files round the
#: logged values (scanpy's pbmc68k_reduced to 3 decimals), which moves a count of c by about c/2000.
INTEGER_TOLERANCE = 0.3
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
#: Label-map TSV columns: the first two are read; the rest are for the reader.
LABEL_MAP_COLUMNS = ("author_label", "cell_type_ontology_term_id", "cell_type", "match", "reason")


# -- reading a file ---------------------------------------------------------------------------------------------
def read_h5ad(path: str | Path):
    """The AnnData of ``path``, with a clear error for a missing or unreadable file."""
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"census.anndata.datasets: file {str(path)!r} does not exist; give the .h5ad's path"
        )
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many kinds
        raise DataError(f"{path}: cannot be read as an .h5ad file ({type(err).__name__}: {err})") from err


def counts_matrix(adata, matrix: str, where: str) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """The matrix ``counts.matrix`` names, as float64 CSR, and the var table of its columns."""
    if matrix == "X":
        x, var = adata.X, adata.var
    elif matrix == "raw.X":
        if adata.raw is None:
            raise ConfigError(f"{where}: counts.matrix is raw.X but the file has no .raw; use X or a layer")
        x, var = adata.raw.X, adata.raw.var
    elif matrix.startswith("layers/"):
        name = matrix.split("/", 1)[1]
        if name not in adata.layers:
            raise ConfigError(
                f"{where}: counts.matrix {matrix!r}: no layer {name!r} (layers: {sorted(adata.layers)})"
            )
        x, var = adata.layers[name], adata.var
    else:
        raise ConfigError(f"{where}: counts.matrix {matrix!r} is not X, raw.X or layers/<name>")
    if x is None:
        raise DataError(f"{where}: counts.matrix {matrix!r} is empty (None)")
    x = sp.csr_matrix(x, dtype=np.float64)
    return x, var


def _looks_log_normalised(x: sp.csr_matrix) -> float | None:
    """The per-cell total of expm1(x) when ``x`` looks like log1p of counts scaled to one total per cell."""
    if x.nnz == 0 or x.data.min() < 0 or x.data.max() > 20:
        return None
    sums = np.asarray(
        sp.csr_matrix((np.expm1(x.data), x.indices, x.indptr), shape=x.shape).sum(axis=1)
    ).ravel()
    sums = sums[sums > 0]
    return float(np.median(sums)) if len(sums) else None


def check_raw_counts(x: sp.csr_matrix, where: str) -> None:
    """Raw counts are finite non-negative integers; a log-normalised or scaled matrix is refused with the fix."""
    v = x.data
    if not any_bad_value(v, integer=True):
        return
    bad = bad_values(v, integer=True)  # the census reads' kinds: NaN, infinite, negative, non-integer
    non_finite = int(bad["NaN"].sum() + bad["infinite"].sum())
    if non_finite:
        raise DataError(f"{where}: the counts matrix holds {non_finite:,} NaN or infinite values")
    if bad["negative"].any():
        raise DataError(
            f"{where}: the counts matrix holds {int(bad['negative'].sum()):,} negative values: it is scaled or "
            "centred, not counts. Point counts.matrix at the counts (raw.X or a layer such as layers/counts)"
        )
    fractional = bad["non-integer"]
    if fractional.any():
        total = _looks_log_normalised(x)
        hint = (
            f" It looks like log1p of counts scaled per cell (expm1 of each cell sums to a median {total:,.0f} over "
            "these genes; a subset of the genes sums to less than the scale). If so, declare it: counts: {kind: "
            "log1p_normalised, scale: <the per-cell total, usually 10000>, total_counts_column: <obs column of "
            "each cell's total counts, if the file has one>}"
            if total is not None
            else " Point counts.matrix at the raw counts, or declare counts.kind: log1p_normalised if it is log1p "
            "of per-cell-scaled counts"
        )
        raise DataError(
            f"{where}: {int(fractional.sum()):,} of {len(v):,} stored values are not integers, so the matrix is "
            f"not raw counts.{hint}"
        )


def undo_log1p(
    x: sp.csr_matrix, scale: float, totals: np.ndarray | None, where: str
) -> tuple[sp.csr_matrix, dict]:
    """Counts (or, without ``totals``, per-cell-normalised values) from log1p(counts / total · scale)."""
    if x.nnz and (x.data.min() < 0 or not np.isfinite(x.data).all()):
        raise DataError(
            f"{where}: counts.kind is log1p_normalised but the matrix holds negative or non-finite values: it is "
            "scaled (e.g. sc.pp.scale), not log-normalised; point counts.matrix at raw.X or a layer"
        )
    values = np.expm1(x.data)
    report: dict[str, Any] = {"kind": "log1p_normalised", "scale": float(scale)}
    if totals is None:
        report["recovered"] = "normalised values (no total_counts_column): expm1 only"
        return sp.csr_matrix((values, x.indices.copy(), x.indptr.copy()), shape=x.shape), report
    totals = np.asarray(totals, dtype=np.float64)
    if not np.isfinite(totals).all() or (totals <= 0).any():
        raise DataError(f"{where}: counts.total_counts_column holds non-positive or missing totals")
    per_value = np.repeat(totals / scale, np.diff(x.indptr))
    counts = values * per_value
    rounded = np.rint(counts)
    deviation = np.abs(counts - rounded)
    worst = float(deviation.max()) if len(deviation) else 0.0
    smallest = float(rounded.min()) if len(rounded) else 1.0
    if worst <= INTEGER_TOLERANCE and smallest != 1:
        # Integers, but no count of 1 anywhere: the scale (or the totals) is off by a factor of the smallest count.
        raise DataError(
            f"{where}: expm1(x) · total / {scale:g} gives integers whose smallest is {smallest:g}, not 1 (every "
            "count matrix holds ones): counts.scale or counts.total_counts_column is off by that factor; check them"
        )
    if worst > INTEGER_TOLERANCE:
        raise DataError(
            f"{where}: expm1(x) · total / {scale:g} is not integer counts (a value {worst:.3f} from the nearest "
            f"integer, tolerance {INTEGER_TOLERANCE}): check counts.scale and counts.total_counts_column, or leave "
            "total_counts_column out to use the normalised values"
        )
    report.update(
        recovered="integer counts: expm1(x) · total_counts / scale, rounded",
        max_distance_from_integer=worst,
        mean_distance_from_integer=float(deviation.mean()) if len(deviation) else 0.0,
    )
    return sp.csr_matrix((rounded, x.indices.copy(), x.indptr.copy()), shape=x.shape), report


# -- genes ------------------------------------------------------------------------------------------------------
def symbol_to_ensembl() -> dict[str, str]:
    """Symbol → Ensembl id of the bundled scTab protein-coding table, for symbols it holds exactly once."""
    genes = read_gene_list("bundled:sctab_protein_coding", pd.DataFrame())
    counts = genes["feature_name"].value_counts()
    unique = genes[genes["feature_name"].map(counts) == 1]
    return dict(zip(unique["feature_name"], unique["feature_id"], strict=True))


def assign_gene_ids(var: pd.DataFrame, spec: Mapping, where: str) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The Census var (feature_id, feature_name, feature_length) of a file's genes, which of its columns to keep, and
    a report. ``spec`` is the entry's ``genes`` block: ``column`` (var column holding ids or symbols; the index
    when null), ``kind`` (``ensembl`` / ``symbol``; detected when null), ``symbol_column`` (symbols beside ids)."""
    column = spec.get("column")
    if column is None:
        keys = pd.Series(var.index.astype(str), index=var.index)
    elif column not in var.columns:
        raise ConfigError(f"{where}: genes.column {column!r} is not a var column (var: {list(var.columns)})")
    else:
        keys = var[column].astype(str)
    keys = keys.str.strip().to_numpy(dtype=object)
    if len(keys) == 0:
        raise DataError(f"{where}: the counts matrix has no gene")
    kind = spec.get("kind")
    share_ensembl = float(np.mean([bool(_ENSEMBL.match(k)) for k in keys]))
    if kind is None:
        kind = "ensembl" if share_ensembl > 0.5 else "symbol"
    report: dict[str, Any] = {"kind": kind, "n_genes_in_file": int(len(keys))}
    table = symbol_to_ensembl()
    if kind == "ensembl":
        ids = np.array([k.split(".")[0] if _ENSEMBL.match(k) else k for k in keys], dtype=object)
        # The CELLxGENE schema keeps the symbol in var.feature_name.
        sym_col = spec.get("symbol_column") or ("feature_name" if "feature_name" in var.columns else None)
        if sym_col:
            if sym_col not in var.columns:
                raise ConfigError(f"{where}: genes.symbol_column {sym_col!r} is not a var column")
            names = var[sym_col].astype(str).to_numpy(dtype=object)
        else:
            by_id = {v: k for k, v in table.items()}
            names = np.array([by_id.get(i, i) for i in ids], dtype=object)
    elif kind == "symbol":
        names = keys
        ids = np.array([table.get(s, s) for s in keys], dtype=object)
        matched = int(sum(s in table for s in keys))
        report["symbols_with_ensembl_id"] = matched
        report["symbols_kept_as_id"] = int(len(keys) - matched)
    else:
        raise ConfigError(f"{where}: genes.kind {kind!r} is neither ensembl nor symbol")
    dup = pd.Series(ids).duplicated(keep="first").to_numpy()
    if dup.any():
        repeated = sorted(set(keys[pd.Series(ids).duplicated(keep=False).to_numpy()]))
        report["duplicated_features"] = {"n_columns_dropped": int(dup.sum()), "features": repeated}
        log.warning(
            "%s: %d gene columns repeat a feature already seen (%s%s); the first column of each is kept, the "
            "others dropped, not summed",
            where,
            int(dup.sum()),
            ", ".join(repeated[:10]),
            " ..." if len(repeated) > 10 else "",
        )
    keep = np.flatnonzero(~dup)
    out = pd.DataFrame(
        {
            "feature_id": ids[keep].astype(str),
            "feature_name": names[keep].astype(str),
            "feature_length": np.zeros(len(keep), dtype=np.int64),
        }
    )
    return out, keep, report


# -- labels -----------------------------------------------------------------------------------------------------
def read_label_map(path: str | Path, where: str) -> dict[str, str]:
    """Author label → CL term id from a label-map TSV (``LABEL_MAP_COLUMNS``); a blank id means unmapped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{where}: labels.map {str(path)!r} does not exist; draft one with `python -m "
            "hcebench.data.anndata_source draft-labels <file.h5ad> --column <label column> --out <map.tsv>`"
        )
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False)
    missing = [c for c in LABEL_MAP_COLUMNS[:2] if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: label map lacks column(s) {missing}; its columns: {list(table.columns)}")
    repeated = table["author_label"][table["author_label"].duplicated()].tolist()
    if repeated:
        raise ConfigError(f"{path}: author label(s) listed twice: {sorted(set(repeated))}")
    return {
        str(a): str(t).strip()
        for a, t in zip(table["author_label"], table["cell_type_ontology_term_id"], strict=True)
    }


def map_labels(
    author: pd.Series,
    mapping: Mapping[str, str],
    ontology: Ontology,
    map_path: str,
    where: str,
    unmapped: str,
) -> tuple[pd.Series, dict]:
    """CL term id of each cell from its author label; unmapped cells are an error or dropped (``unmapped``)."""
    author = author.astype(str)
    labels = sorted(author.unique())
    no_id = [a for a in labels if not mapping.get(a)]
    bad = {a: mapping[a] for a in labels if mapping.get(a) and mapping[a] not in ontology.names}
    if bad:
        raise DataError(
            f"{where}: label map {map_path} gives term ids that Cell Ontology {ontology.release} lacks: "
            + ", ".join(f"{a!r} → {t}" for a, t in bad.items())
            + f". Fix them in {map_path}"
        )
    counts = author.value_counts()
    if no_id and unmapped != "drop":
        raise DataError(
            f"{where}: {len(no_id)} author label(s) have no CL term id: "
            + ", ".join(f"{a!r} ({int(counts[a])} cells)" for a in no_id)
            + f". Give each a CL id in {map_path} (column cell_type_ontology_term_id), or set "
            "census.anndata.unmapped_labels: drop to leave their cells out"
        )
    terms = author.map(lambda a: mapping.get(a) or None)
    return terms, {a: int(counts[a]) for a in no_id}


def _normal(text: str) -> str:
    text = text.lower().replace("+", "-positive ").replace("_", " ")
    text = re.sub(r"[^a-z0-9,\- ]", " ", text)
    return re.sub(r"\s+", " ", text).replace(" ,", ",").strip()


def exact_synonyms(source: str) -> dict[str, list[str]]:
    """Term id → its EXACT synonyms in the OBO of ``source`` (``ontology.source``)."""
    import pronto

    onto = pronto.Ontology(str(resolve_source(source)))
    return {
        t.id: sorted(s.description for s in t.synonyms if s.scope == "EXACT")
        for t in onto.terms()
        if not t.obsolete
    }


def draft_label_map(labels: list[str], ontology: Ontology, synonyms: Mapping[str, list[str]]) -> pd.DataFrame:
    """A label-map table for ``labels``: each matched to the live term whose name, or else exact synonym, equals it
    (compared lower-case, ``+`` read as ``-positive``, punctuation as spaces, a final ``s`` dropped); unmatched or
    ambiguous labels get a blank id for the user to fill in."""
    by_name: dict[str, set[str]] = {}
    by_synonym: dict[str, set[str]] = {}
    for term, name in ontology.names.items():
        if term in ontology.obsolete or not term.startswith("CL:"):
            continue
        by_name.setdefault(_normal(name), set()).add(term)
        for s in synonyms.get(term, []):
            by_synonym.setdefault(_normal(s), set()).add(term)
    rows = []
    for label in labels:
        keys = [_normal(label)]
        if keys[0].endswith("s"):
            keys.append(keys[0][:-1])
        term, how = "", "none: fill in a CL id"
        for table, kind in ((by_name, "exact name"), (by_synonym, "exact synonym")):
            found = sorted(set().union(*(table.get(k, set()) for k in keys)))
            if len(found) == 1:
                term, how = found[0], kind
                break
            if len(found) > 1:
                how = f"ambiguous {kind}: one of {', '.join(found)}"
                break
        rows.append(
            {
                "author_label": label,
                "cell_type_ontology_term_id": term,
                "cell_type": ontology.names.get(term, ""),
                "match": how,
                "reason": "",
            }
        )
    return pd.DataFrame(rows, columns=list(LABEL_MAP_COLUMNS))


_TRUTH = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _column(values: pd.Series, key: str, where: str) -> np.ndarray:
    """A Census obs column from a file's column: strings, or for ``is_primary_data`` booleans (``True``/``False``,
    1/0 or yes/no in any case; anything else is an error, never read as true)."""
    if key != "is_primary_data":
        return values.astype(str).to_numpy(dtype=object)
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    bad = sorted(set(text[~text.isin(list(_TRUTH))]))
    if bad:
        raise DataError(f"{where}: is_primary_data holds values that are not true/false: {bad[:5]}")
    return text.map(_TRUTH).to_numpy(dtype=bool)


# -- obs --------------------------------------------------------------------------------------------------------
def census_obs(
    adata, dataset_id: str, entry: Mapping, ontology: Ontology, unmapped: str, where: str
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The Census obs of a dataset's cells, which cells to keep (mapped labels), and a report (defaults used)."""
    obs = adata.obs
    mapped = dict(entry.get("obs") or {})
    values = dict(entry.get("values") or {})
    for key in list(mapped) + list(values):
        if key not in CENSUS_OBS or key in ("dataset_id", "cell_type_ontology_term_id", "cell_type"):
            raise ConfigError(
                f"{where}: obs/values key {key!r} is not a Census obs column the ingest sets (choose from "
                f"{[c for c in CENSUS_OBS if c not in ('dataset_id', 'cell_type', 'cell_type_ontology_term_id')]}; "
                "the label comes from labels:)"
            )
    for key, col in mapped.items():
        if col not in obs.columns:
            raise ConfigError(
                f"{where}: obs.{key} names column {col!r}, which the file's obs lacks (obs columns: "
                f"{list(obs.columns)})"
            )
    n = adata.n_obs
    out: dict[str, Any] = {"dataset_id": np.full(n, dataset_id, dtype=object)}
    defaults: dict[str, Any] = {}
    # The label: the CELLxGENE column, or author labels through the map.
    label_spec = entry.get("labels") or {}
    report: dict[str, Any] = {}
    if label_spec.get("column"):
        col = label_spec["column"]
        if col not in obs.columns:
            raise ConfigError(
                f"{where}: labels.column {col!r} is not an obs column (obs: {list(obs.columns)})"
            )
        if not label_spec.get("map"):
            raise ConfigError(f"{where}: labels.column is set but labels.map is not: give the label-map TSV")
        mapping = read_label_map(label_spec["map"], where)
        terms, dropped = map_labels(obs[col], mapping, ontology, label_spec["map"], where, unmapped)
        out["author_cell_type"] = obs[col].astype(str).to_numpy(dtype=object)
        report["label_source"] = f"obs column {col!r} through {label_spec['map']}"
        report["unmapped_labels_dropped"] = dropped
    elif "cell_type_ontology_term_id" in obs.columns:
        terms = obs["cell_type_ontology_term_id"].astype(str)
        report["label_source"] = "obs column 'cell_type_ontology_term_id' (CELLxGENE schema)"
    else:
        raise DataError(
            f"{where}: the file's obs has no 'cell_type_ontology_term_id' (the CELLxGENE schema's label) and the "
            "entry sets no labels.column: name the author-label column and a label map (labels: {column: ..., "
            "map: ...})"
        )
    keep = terms.notna().to_numpy()
    terms = terms.fillna("").astype(str).to_numpy(dtype=object)
    out["cell_type_ontology_term_id"] = terms
    if "cell_type" in obs.columns and not label_spec.get("column"):
        out["cell_type"] = obs["cell_type"].astype(str).to_numpy(dtype=object)
    else:
        out["cell_type"] = np.array([ontology.names.get(t, t) for t in terms], dtype=object)
    for key in CENSUS_OBS:
        if key in out:
            continue
        if key in values:
            out[key] = np.full(n, values[key], dtype=object if key != "is_primary_data" else bool)
        elif key in mapped:
            out[key] = _column(obs[mapped[key]], key, where)
        elif key in obs.columns:
            out[key] = _column(obs[key], key, where)
        elif key.endswith("_ontology_term_id"):
            out[key] = np.full(n, "unknown", dtype=object)
        elif key == "donor_id":
            out[key] = np.full(n, dataset_id, dtype=object)
            defaults[key] = f"{dataset_id} (the whole dataset is one donor)"
        elif key == "tissue_general":
            continue  # the tissue's, below
        else:
            out[key] = np.full(n, OBS_DEFAULTS[key], dtype=object if key != "is_primary_data" else bool)
            defaults[key] = OBS_DEFAULTS[key]
    if "tissue_general" not in out:
        out["tissue_general"] = out["tissue"]
        if "tissue" in defaults or "tissue" not in obs.columns:
            defaults["tissue_general"] = "the tissue"
    frame = pd.DataFrame({k: out[k] for k in (*CENSUS_OBS, "author_cell_type") if k in out})
    frame["is_primary_data"] = frame["is_primary_data"].astype(bool)
    report["defaults"] = defaults
    if defaults:
        log.warning(
            "%s: obs columns defaulted (file lacks them; set obs: or values: to choose): %s", where, defaults
        )
    return frame, keep, report


# -- datasets of an entry ---------------------------------------------------------------------------------------
def entry_datasets(
    entry: Mapping, n_obs: int, obs: pd.DataFrame, where: str
) -> list[tuple[str, str, np.ndarray]]:
    """(dataset id, release, cell rows) of each dataset an entry holds: the file, or each value of its
    ``dataset_column``."""
    release = entry.get("release")
    column = entry.get("dataset_column")
    if not column:
        if release not in ("train", "ood"):
            raise ConfigError(f"{where}: release must be train or ood, not {release!r}")
        return [(entry["id"], release, np.arange(n_obs))]
    if column not in obs.columns:
        raise ConfigError(
            f"{where}: dataset_column {column!r} is not an obs column (obs: {list(obs.columns)})"
        )
    values = obs[column].astype(str).to_numpy()
    out = []
    for value in sorted(set(values)):
        rel = release.get(value) if isinstance(release, Mapping) else release
        if rel not in ("train", "ood"):
            raise ConfigError(
                f"{where}: dataset {value!r} of dataset_column {column!r} has no release (train or ood); give "
                "release as train, ood, or a mapping of each value to one"
            )
        out.append((f"{entry['id']}_{value}", rel, np.flatnonzero(values == value)))
    return out


def prepare_dataset(
    adata, entry: Mapping, dataset_id: str, rows: np.ndarray, ontology: Ontology, settings: IngestSettings
) -> tuple[Any, dict, bool]:
    """One dataset's AnnData in the Census layout (obs, var, X = counts), its report, and whether X holds
    integer counts."""
    import anndata as ad

    where = f"census.anndata dataset {dataset_id} ({entry['path']})"
    if len(rows) == 0:
        raise DataError(f"{where}: the file holds no cell")
    spec = {
        "matrix": "X",
        "kind": "raw",
        "scale": 10000,
        "total_counts_column": None,
        **(entry.get("counts") or {}),
    }
    if spec["kind"] not in COUNT_KINDS:
        raise ConfigError(f"{where}: counts.kind {spec['kind']!r} is not one of {list(COUNT_KINDS)}")
    x, var = counts_matrix(adata, spec["matrix"], where)
    x = x[rows]
    sub = adata[rows]
    if spec["kind"] == "raw":
        check_raw_counts(x, where)
        counts_report = {"kind": "raw", "matrix": spec["matrix"]}
        integer = True
    else:
        totals = None
        if spec["total_counts_column"]:
            col = spec["total_counts_column"]
            if col not in sub.obs.columns:
                raise ConfigError(f"{where}: counts.total_counts_column {col!r} is not an obs column")
            totals = sub.obs[col].to_numpy(dtype=np.float64)
        x, counts_report = undo_log1p(x, float(spec["scale"]), totals, where)
        counts_report["matrix"] = spec["matrix"]
        integer = totals is not None
    genes, keep_genes, gene_report = assign_gene_ids(var, entry.get("genes") or {}, where)
    x = x[:, keep_genes]
    obs, keep_cells, obs_report = census_obs(
        sub, dataset_id, entry, ontology, settings.unmapped_labels, where
    )
    x = x[keep_cells]
    obs = obs.loc[keep_cells].reset_index(drop=True)
    if len(obs) == 0:
        raise DataError(f"{where}: no cell is left after dropping unmapped labels")
    x = sp.csr_matrix(x, dtype=np.float32)
    x.eliminate_zeros()
    nnz = np.diff(x.indptr)
    obs["raw_sum"] = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    obs["nnz"] = nnz.astype(np.int64)
    obs["n_measured_vars"] = np.int64(len(genes))
    obs.index = pd.Index([f"{dataset_id}:{c}" for c in sub.obs_names[keep_cells]], name=None)
    for col in CENSUS_OBS:
        if col != "is_primary_data":
            obs[col] = obs[col].astype(str).astype("category")
    if "author_cell_type" in obs:
        obs["author_cell_type"] = obs["author_cell_type"].astype("category")
    var = genes.set_index("feature_id")
    var.index.name = None
    out = ad.AnnData(X=x, obs=obs, var=var)
    report = {
        "path": str(entry["path"]),
        "n_cells": int(len(obs)),
        "n_cells_in_file": int(len(rows)),
        "counts": counts_report,
        "genes": gene_report,
        **obs_report,
    }
    return out, report, integer


# -- writing the releases ---------------------------------------------------------------------------------------
def _write_release(
    path: Path, release: str, datasets: list[tuple[str, Any, Mapping, Path]], integer: bool
) -> dict:
    """One release: census_info tables and the experiment, each dataset appended with tiledbsoma.io.

    ``datasets`` holds (id, the dataset's obs and var as an AnnData without X, its config entry, the prepared
    ``.h5ad`` with its counts): the registration reads the obs and var of all, and each dataset's counts are read
    from its file only while it is appended, so one dataset's counts are in memory at a time.
    """
    import anndata as ad
    import tiledbsoma as soma
    import tiledbsoma.io as soma_io

    with soma.Collection.create(str(path)) as root:
        with root.add_new_collection("census_info") as info:
            info.add_new_dataframe("summary", schema=SUMMARY_SCHEMA, domain=[(0, 63)]).close()
            info.add_new_dataframe("datasets", schema=DATASETS_SCHEMA, domain=[(0, 100_000)]).close()
            info.add_new_dataframe(
                "summary_cell_counts", schema=COUNTS_SCHEMA, domain=[(0, 1_000_000)]
            ).close()
        root.add_new_collection("census_data").close()
    exp_uri = str(path / "census_data" / ORGANISM)
    adatas = [a for _, a, _, _ in datasets]
    mapping = soma_io.register_anndatas(
        None, adatas, measurement_name="RNA", obs_field_name="obs_id", var_field_name="feature_id"
    )
    for k, (_, _, _, file) in enumerate(datasets):
        if k == 1:  # the experiment exists now: grow its domains to every dataset's cells and genes
            mapping.prepare_experiment(exp_uri)
        soma_io.from_anndata(
            exp_uri,
            ad.read_h5ad(file),
            "RNA",
            obs_id_name="obs_id",
            var_id_name="feature_id",
            X_layer_name="raw",
            registration_mapping=mapping,
            use_relative_uri=True,
        )
    with soma.Collection.open(str(path / "census_data"), "w") as data, soma.Experiment.open(exp_uri) as exp:
        data.set(ORGANISM, exp, use_relative_uri=True)
        n_genes = int(exp.ms["RNA"].var.count)
    info = path / "census_info"
    rows = pd.DataFrame(
        {
            "soma_joinid": np.arange(len(datasets), dtype=np.int64),
            "collection_id": [e.get("collection_id") or d for d, _, e, _ in datasets],
            "collection_name": [e.get("collection_name") or e.get("title") or d for d, _, e, _ in datasets],
            "collection_doi": [e.get("doi") or "" for _, _, e, _ in datasets],
            "dataset_id": [d for d, _, _, _ in datasets],
            "dataset_title": [e.get("title") or d for d, _, e, _ in datasets],
            "dataset_h5ad_path": [Path(e["path"]).name for _, _, e, _ in datasets],
            "dataset_total_cell_count": [int(a.n_obs) for _, a, _, _ in datasets],
        }
    )
    write_dataframe(info / "datasets", rows, DATASETS_SCHEMA)
    write_dataframe(
        info / "summary_cell_counts", summary_cell_counts([a.obs for _, a, _, _ in datasets]), COUNTS_SCHEMA
    )
    n = sum(int(a.n_obs) for _, a, _, _ in datasets)
    donors = {(d, str(x)) for d, a, _, _ in datasets for x in a.obs["donor_id"].unique()}
    primary = sum(int(a.obs["is_primary_data"].sum()) for _, a, _, _ in datasets)
    items = [
        ("census_schema_version", "1.0.0"),
        ("census_build_date", release),
        ("dataset_schema_version", "ingested from .h5ad by hcebench.data.anndata_source"),
        ("total_cell_count", str(n)),
        ("unique_cell_count", str(primary)),
        ("number_donors_homo_sapiens", str(len(donors))),
        ("number_donors_mus_musculus", "0"),
        (RAW_COUNTS_LABEL, "true" if integer else "false"),
    ]
    summary = pd.DataFrame(
        {
            "soma_joinid": np.arange(len(items), dtype=np.int64),
            "label": [k for k, _ in items],
            "value": [v for _, v in items],
        }
    )
    write_dataframe(info / "summary", summary, SUMMARY_SCHEMA)
    return {
        "path": path.name,
        "census_build_date": release,
        "n_cells": n,
        "n_datasets": len(datasets),
        "n_genes": int(n_genes),
        "x_raw_integer_counts": integer,
    }


def summary_cell_counts(obs: list[pd.DataFrame]) -> pd.DataFrame:
    """The Census's ``census_info/summary_cell_counts`` of a release from its datasets' obs: cells (total, and
    primary as unique) per value of each category the obs holds (assay, cell_type, disease, ...), and the
    ``all`` row, so code that asks a release what it holds without reading obs (the assays a release pair adds or
    drops) reads an ingested release as it reads the Census."""
    cells = pd.concat([o.reset_index(drop=True) for o in obs], ignore_index=True)
    primary = (
        cells["is_primary_data"].astype(bool) if "is_primary_data" in cells else pd.Series(True, cells.index)
    )
    rows = [("all", "na", "na", len(cells), int(primary.sum()))]
    for category, label, term in COUNT_CATEGORIES:
        if label not in cells:
            continue
        terms = cells[term].astype(str) if term and term in cells else pd.Series("na", index=cells.index)
        keys = pd.DataFrame({"label": cells[label].astype(str), "term": terms, "primary": primary})
        for (value, term_id), group in keys.groupby(["label", "term"], sort=True):
            rows.append((category, value, term_id, len(group), int(group["primary"].sum())))
    return pd.DataFrame(
        {
            "soma_joinid": np.arange(len(rows), dtype=np.int64),
            "organism": "Homo sapiens",
            "category": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "ontology_term_id": [r[2] for r in rows],
            "total_cell_count": [r[3] for r in rows],
            "unique_cell_count": [r[4] for r in rows],
        }
    )


def missing_gene_fraction(gene_source: str, genes: pd.DataFrame) -> float | None:
    """The fraction of the gene list ``genes.source`` names that a dataset's genes lack (None for ``all``)."""
    if gene_source == "all":
        return None
    wanted = read_gene_list(gene_source, genes)
    return float(1.0 - wanted["feature_id"].isin(set(genes["feature_id"])).mean())


def ingest_releases(settings: IngestSettings, out_dir: str | Path, ontology: Ontology) -> dict:
    """Write both releases of the configured ``.h5ad`` files into ``out_dir`` (atomically) with ``manifest.json``
    (the ingest report); return the manifest.

    Each dataset is read, checked and put in the Census layout in turn, then written to a scratch ``.h5ad`` beside
    the releases and dropped from memory; only its obs and var are kept for the registration (``_write_release``).
    """
    import anndata as ad

    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        scratch = tmp / ".prepared"
        scratch.mkdir()
        prepared, reports, integer = [], {}, {"train": True, "ood": True}
        for i, entry in enumerate(settings.datasets):
            for dataset_id, release, data, report, is_integer in _prepare_entry(i, entry, ontology, settings):
                if dataset_id in reports:
                    raise ConfigError(
                        f"census.anndata.datasets: dataset id {dataset_id!r} appears twice; give each entry its "
                        "own id"
                    )
                file = scratch / f"{dataset_id}.h5ad"
                data.write_h5ad(file)
                light = ad.AnnData(obs=data.obs, var=data.var)
                del data
                if not is_integer:
                    integer["ood"] = False
                    if release == "train":
                        integer["train"] = False
                prepared.append((dataset_id, release, light, entry, file))
                reports[dataset_id] = report
        for release in ("train", "ood"):
            if not any(r == release for _, r, _, _, _ in prepared):
                raise ConfigError(
                    f"census.anndata.datasets: no dataset has release {release}; the benchmark needs both"
                )
        train = [(d, a, e, f) for d, r, a, e, f in prepared if r == "train"]
        both = [(d, a, e, f) for d, _, a, e, f in prepared]
        releases = {
            settings.train_release: _write_release(
                tmp / settings.train_release, settings.train_release, train, integer["train"]
            ),
            settings.ood_release: _write_release(
                tmp / settings.ood_release, settings.ood_release, both, integer["ood"]
            ),
        }
        shutil.rmtree(scratch)
        manifest = {
            "generator": "hcebench.data.anndata_source",
            "train_release": settings.train_release,
            "ood_release": settings.ood_release,
            "releases": releases,
            "n_cells": {r: v["n_cells"] for r, v in releases.items()},
            "n_datasets": {r: v["n_datasets"] for r, v in releases.items()},
            "cl_release": ontology.release,
            "unmapped_labels": settings.unmapped_labels,
            "n_cells_unmapped_label_dropped": int(
                sum(sum(r.get("unmapped_labels_dropped", {}).values()) for r in reports.values())
            ),
            "datasets": reports,
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


def _prepare_entry(i: int, entry: Mapping, ontology: Ontology, settings: IngestSettings):
    """Yield (dataset id, release, AnnData in the Census layout, report, integer counts?) of each dataset of one
    config entry, checked against the filters' assays and the gene list."""
    where = f"census.anndata.datasets[{i}] ({entry.get('id')}, {entry.get('path')})"
    adata = read_h5ad(entry["path"])
    if adata.n_obs == 0:
        raise DataError(f"{where}: the file holds no cell")
    if adata.n_vars == 0 and (adata.raw is None or adata.raw.n_vars == 0):
        raise DataError(f"{where}: the file holds no gene")
    for dataset_id, release, rows in entry_datasets(entry, adata.n_obs, adata.obs, where):
        data, report, is_integer = prepare_dataset(adata, entry, dataset_id, rows, ontology, settings)
        report["release"] = settings.train_release if release == "train" else settings.ood_release
        outside = sorted(set(data.obs["assay"].astype(str)) - set(settings.assays))
        if outside:
            raise ConfigError(
                f"census.anndata dataset {dataset_id}: assay {outside} is not in filters.assays, so the filters "
                "would drop every cell: set the dataset's assay (values: {assay: ...} or obs: {assay: <column>}) "
                "or add it to filters.assays"
            )
        missing = missing_gene_fraction(settings.gene_source, data.var.reset_index(names="feature_id"))
        report["missing_gene_fraction"] = missing
        if missing is not None and missing > settings.max_missing_gene_fraction:
            raise DataError(
                f"census.anndata dataset {dataset_id}: it lacks {missing:.1%} of the gene list (genes.source "
                f"{settings.gene_source!r}), more than census.anndata.max_missing_gene_fraction "
                f"{settings.max_missing_gene_fraction:g}: too few shared genes for its cells to be read on the "
                "store's genes. Check genes.kind / genes.column (ids or symbols?) or choose a gene list the "
                "datasets share"
            )
        log.info(
            "%s (%s): %d cells, %d genes, counts %s",
            dataset_id,
            release,
            data.n_obs,
            data.n_vars,
            report["counts"].get("recovered", "raw"),
        )
        yield dataset_id, release, data, report, is_integer


# -- command line -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m hcebench.data.anndata_source draft-labels FILE --column COL --out MAP.tsv``."""
    parser = argparse.ArgumentParser(
        prog="python -m hcebench.data.anndata_source", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    draft = sub.add_parser(
        "draft-labels",
        help="draft a label-map TSV (author label → CL id) by matching names and exact synonyms of the Cell Ontology",
    )
    draft.add_argument("h5ad", help="the .h5ad file")
    draft.add_argument("--column", required=True, help="obs column holding the author labels")
    draft.add_argument(
        "--out", required=True, help="TSV to write (refused if it exists, so edits are never lost)"
    )
    draft.add_argument(
        "--ontology", default="bundled:v2022-09-15", help="ontology.source (default: the bundled CL)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        parser.error(f"{out} exists; edit it, or remove it to draft again")
    import anndata as ad

    obs = ad.read_h5ad(args.h5ad, backed="r").obs
    if args.column not in obs.columns:
        parser.error(f"{args.column!r} is not an obs column of {args.h5ad} (obs: {list(obs.columns)})")
    labels = sorted(obs[args.column].astype(str).unique())
    ontology = load_ontology(args.ontology)
    table = draft_label_map(labels, ontology, exact_synonyms(args.ontology))
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, quoting=csv.QUOTE_MINIMAL)
    matched = int((table["cell_type_ontology_term_id"] != "").sum())
    print(
        f"{out}: {matched} of {len(table)} labels matched; fill in the rest and check every row",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
