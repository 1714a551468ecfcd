"""The SOMA writer: a release in the CELLxGENE Census layout, and the ground truth beside it.

Owns the Arrow schemas of the Census tables (obs, var, census_info/{datasets, summary, summary_cell_counts})
and of the ground-truth parquet, ``create_release`` (the empty layout), ``write_dataframe`` (one SOMA
DataFrame written whole) and ``ReleaseWriter``, which buffers one release's cells and writes them in batches
of bounded size. tiledbsoma is imported on first use.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hcebench.data.simulate.expression import Biology
from hcebench.data.simulate.plan import DatasetPlan
from hcebench.data.simulate.settings import SimulationConfig
from hcebench.data.simulate.vocabulary import ORGANISM

_DICT = pa.dictionary(pa.int32(), pa.large_string())
OBS_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("dataset_id", _DICT),
        ("assay", _DICT),
        ("assay_ontology_term_id", _DICT),
        ("cell_type", _DICT),
        ("cell_type_ontology_term_id", _DICT),
        ("development_stage", _DICT),
        ("development_stage_ontology_term_id", _DICT),
        ("disease", _DICT),
        ("disease_ontology_term_id", _DICT),
        ("donor_id", _DICT),
        ("is_primary_data", pa.bool_()),
        ("self_reported_ethnicity", _DICT),
        ("self_reported_ethnicity_ontology_term_id", _DICT),
        ("sex", _DICT),
        ("sex_ontology_term_id", _DICT),
        ("suspension_type", _DICT),
        ("tissue", _DICT),
        ("tissue_ontology_term_id", _DICT),
        ("tissue_general", _DICT),
        ("tissue_general_ontology_term_id", _DICT),
        ("raw_sum", pa.float64()),
        ("nnz", pa.int64()),
        ("raw_mean_nnz", pa.float64()),
        ("raw_variance_nnz", pa.float64()),
        ("n_measured_vars", pa.int64()),
    ]
)
VAR_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("feature_id", pa.large_string()),
        ("feature_name", pa.large_string()),
        ("feature_length", pa.int64()),
        ("nnz", pa.int64()),
        ("n_measured_obs", pa.int64()),
    ]
)
DATASETS_SCHEMA = pa.schema(
    [("soma_joinid", pa.int64())]
    + [
        (c, pa.large_string())
        for c in (
            "collection_id",
            "collection_name",
            "collection_doi",
            "dataset_id",
            "dataset_title",
            "dataset_h5ad_path",
        )
    ]
    + [("dataset_total_cell_count", pa.int64())]
)
#: Census 2023-12-15 adds the dataset's version id (the id of the uploaded h5ad revision).
DATASETS_SCHEMA_NEWER = DATASETS_SCHEMA.insert(5, pa.field("dataset_version_id", pa.large_string()))
SUMMARY_SCHEMA = pa.schema(
    [("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())]
)
COUNTS_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("organism", pa.large_string()),
        ("category", pa.large_string()),
        ("label", pa.large_string()),
        ("ontology_term_id", pa.large_string()),
        ("total_cell_count", pa.int64()),
        ("unique_cell_count", pa.int64()),
    ]
)
#: summary_cell_counts categories: (category, label column, ontology id column)
COUNT_CATEGORIES = [
    ("assay", "assay", "assay_ontology_term_id"),
    ("cell_type", "cell_type", "cell_type_ontology_term_id"),
    ("disease", "disease", "disease_ontology_term_id"),
    ("self_reported_ethnicity", "self_reported_ethnicity", "self_reported_ethnicity_ontology_term_id"),
    ("sex", "sex", "sex_ontology_term_id"),
    ("suspension_type", "suspension_type", None),
    ("tissue", "tissue", "tissue_ontology_term_id"),
    ("tissue_general", "tissue_general", "tissue_general_ontology_term_id"),
]
GROUND_TRUTH_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("dataset_id", pa.large_string()),
        ("true_cell_type_ontology_term_id", pa.large_string()),
        ("true_cell_type", pa.large_string()),
        ("cell_type_ontology_term_id", pa.large_string()),
        ("cell_type", pa.large_string()),
        ("is_primary_data", pa.bool_()),
    ]
)


def _X_CREATE(n_var: int) -> dict[str, Any]:
    # One tile spans every gene, so row-major order is TileDB's global order: batches arrive sorted and
    # are written without TileDB re-sorting them (7x faster), and a chunk of cells reads whole tiles.
    return {"tiledb": {"create": {"dims": {"soma_dim_1": {"tile": max(n_var, 1)}}}}}


#: Our batches are already in global order (ascending joinid, then gene): skip TileDB's sort.
_SORTED = {"tiledb": {"write": {"sort_coords": False}}}


def create_release(
    path: Path, n_obs: int, n_var: int, newer_schema: bool = False, version_ids: bool = False
) -> None:
    """Create the empty Census layout; children are linked by relative URI so the tree can move. ``newer_schema``:
    X/normalized and datasets.dataset_version_id; ``version_ids``: the latter alone."""
    import tiledbsoma as soma

    with soma.Collection.create(str(path)) as root:
        with root.add_new_collection("census_info") as info:
            info.add_new_dataframe("summary", schema=SUMMARY_SCHEMA, domain=[(0, 63)]).close()
            datasets_schema = DATASETS_SCHEMA_NEWER if newer_schema or version_ids else DATASETS_SCHEMA
            info.add_new_dataframe("datasets", schema=datasets_schema, domain=[(0, 100_000)]).close()
            info.add_new_dataframe(
                "summary_cell_counts", schema=COUNTS_SCHEMA, domain=[(0, 1_000_000)]
            ).close()
        with root.add_new_collection("census_data") as data:
            with data.add_new_collection(ORGANISM, soma.Experiment) as exp:
                exp.add_new_dataframe("obs", schema=OBS_SCHEMA, domain=[(0, max(n_obs - 1, 0))]).close()
                with exp.add_new_collection("ms") as ms:
                    with ms.add_new_collection("RNA", soma.Measurement) as rna:
                        rna.add_new_dataframe(
                            "var", schema=VAR_SCHEMA, domain=[(0, max(n_var - 1, 0))]
                        ).close()
                        with rna.add_new_collection("X") as x:
                            for layer in ("raw", "normalized") if newer_schema else ("raw",):
                                x.add_new_sparse_ndarray(
                                    layer,
                                    type=pa.float32(),
                                    shape=(max(n_obs, 1), max(n_var, 1)),
                                    platform_config=_X_CREATE(n_var),
                                ).close()


def write_dataframe(uri: Path, df: pd.DataFrame, schema: pa.Schema) -> None:
    """Write ``df``, cast to ``schema``, into the SOMA DataFrame that ``create_release`` made at ``uri``."""
    import tiledbsoma as soma

    # Reopened rather than written through the creating handle: tiledbsoma 2.3 stores empty enumerations
    # for dictionary columns written through the handle add_new_dataframe returns.
    with soma.DataFrame.open(str(uri), "w") as out:
        out.write(pa.Table.from_pandas(df, schema=schema, preserve_index=False))


def sparse_counts(counts: np.ndarray, var_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense counts (cells × the union of both releases' genes) as a release's COO, in row-major order: the rows and
    columns (int32, ``var_cols`` renumbered from 0) and float32 values of its nonzeros. Run where the cells are drawn,
    so a drawing worker hands back a tenth of the dense block."""
    x = counts[:, var_cols]
    r, c = np.nonzero(x)
    return r.astype(np.int32), c.astype(np.int32), x[r, c].astype(np.float32)


class ReleaseWriter:
    """Buffers one release's obs rows and counts and writes them in batches of bounded size."""

    def __init__(
        self,
        path: Path,
        name: str,
        var_cols: np.ndarray,
        n_obs: int,
        cfg: SimulationConfig,
        newer_schema: bool = False,
        version_ids: bool = False,
        shared_feature_names: int = 0,
    ):
        """``version_ids``: datasets carry dataset_version_id even without ``newer_schema``, and a dataset planned as
        a revision (``DatasetPlan.revision``) gets that revision's id in a release written with ``newer_schema``;
        ``shared_feature_names``: that many pairs of var rows share a feature_name (schema 2.4.0)."""
        self.path, self.name, self.var_cols, self.cfg = path, name, var_cols, cfg
        self.newer_schema = newer_schema
        self.version_ids = newer_schema or version_ids
        self.revisions = newer_schema and version_ids
        self.shared_feature_names = shared_feature_names
        self.n_var = len(var_cols)
        create_release(path, n_obs, self.n_var, newer_schema, version_ids)
        exp = path / "census_data" / ORGANISM
        self.obs_uri = str(exp / "obs")
        self.X_uri = str(exp / "ms" / "RNA" / "X" / "raw")
        self.normalized_uri = str(exp / "ms" / "RNA" / "X" / "normalized")
        self.gt = pq.ParquetWriter(str(path.parent / f"ground_truth_{name}.parquet"), GROUND_TRUTH_SCHEMA)
        self.next_joinid = 0
        self.var_nnz = np.zeros(self.n_var, dtype=np.int64)
        self.counts: Counter[tuple[str, str, str, bool]] = Counter()
        self.dataset_counts: dict[str, int] = {}
        self.donors: set[tuple[str, str]] = set()
        self._obs: list[pd.DataFrame] = []
        self._gt: list[pd.DataFrame] = []
        self._coo: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._normalized: list[np.ndarray] = []
        self._buffered_nnz = 0
        self.seconds_writing = 0.0

    def add(
        self, meta: pd.DataFrame, coo: tuple[np.ndarray, np.ndarray, np.ndarray], truth: np.ndarray
    ) -> None:
        """Append cells: ``meta`` holds the obs columns bar joinid and count statistics, ``coo`` their counts on
        this release's genes (``sparse_counts`` with its ``var_cols``)."""
        n = len(meta)
        r, c, v = coo
        joinids = np.arange(self.next_joinid, self.next_joinid + n, dtype=np.int64)
        self.next_joinid += n
        nnz = np.bincount(r, minlength=n)
        raw_sum = np.bincount(r, weights=v, minlength=n)
        sq = np.bincount(r, weights=v.astype(np.float64) ** 2, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_nnz = raw_sum / nnz
            var_nnz = sq / nnz - mean_nnz**2
        obs = meta.copy()
        obs.insert(0, "soma_joinid", joinids)
        obs["raw_sum"] = raw_sum
        obs["nnz"] = nnz.astype(np.int64)
        obs["raw_mean_nnz"] = mean_nnz
        obs["raw_variance_nnz"] = np.maximum(var_nnz, 0.0)
        obs["n_measured_vars"] = np.int64(self.n_var)
        self._obs.append(obs)
        self._coo.append((joinids[r], c.astype(np.int64), v))
        if self.newer_schema:
            # The Census's X/normalized: each cell's counts divided by its total (10x assays: no length scaling).
            self._normalized.append((v / raw_sum[r]).astype(np.float32))
        self._buffered_nnz += len(v)
        self.var_nnz += np.bincount(c, minlength=self.n_var)
        for cat, lab, term in COUNT_CATEGORIES:
            keys = zip(obs[lab], obs[term] if term else obs[lab], obs["is_primary_data"], strict=True)
            for (label, tid, prim), k in Counter(keys).items():
                self.counts[(cat, label, tid if term else "na", bool(prim))] += k
        for prim, k in Counter(obs["is_primary_data"].astype(bool)).items():
            self.counts[("all", "na", "na", bool(prim))] += k
        for ds, k in obs["dataset_id"].value_counts(sort=False).items():
            self.dataset_counts[ds] = self.dataset_counts.get(ds, 0) + int(k)
        self.donors.update(zip(obs["dataset_id"], obs["donor_id"], strict=True))
        gt = pd.DataFrame(
            {
                "soma_joinid": joinids,
                "dataset_id": obs["dataset_id"].to_numpy(),
                "true_cell_type_ontology_term_id": truth[:, 0],
                "true_cell_type": truth[:, 1],
                "cell_type_ontology_term_id": obs["cell_type_ontology_term_id"].to_numpy(),
                "cell_type": obs["cell_type"].to_numpy(),
                "is_primary_data": obs["is_primary_data"].to_numpy(),
            }
        )
        self._gt.append(gt)
        if self._buffered_nnz >= self.cfg.write_batch_nnz:
            self.flush()

    def flush(self) -> None:
        import tiledbsoma as soma

        if not self._obs:
            return
        t0 = time.perf_counter()
        obs = pa.Table.from_pandas(
            pd.concat(self._obs, ignore_index=True), schema=OBS_SCHEMA, preserve_index=False
        )
        # One handle per write: tiledbsoma 2.3 does not persist the enumeration values a second write
        # through the same handle adds, leaving dictionary indices that point past the stored values.
        with soma.DataFrame.open(self.obs_uri, "w") as out:
            out.write(obs, platform_config=_SORTED)
        d0, d1, v = (np.concatenate(a) for a in zip(*self._coo, strict=True))
        with soma.SparseNDArray.open(self.X_uri, "w") as out:
            out.write(
                pa.Table.from_pydict({"soma_dim_0": d0, "soma_dim_1": d1, "soma_data": v}),
                platform_config=_SORTED,
            )
        if self.newer_schema:
            with soma.SparseNDArray.open(self.normalized_uri, "w") as out:
                out.write(
                    pa.Table.from_pydict(
                        {"soma_dim_0": d0, "soma_dim_1": d1, "soma_data": np.concatenate(self._normalized)}
                    ),
                    platform_config=_SORTED,
                )
        gt = pd.concat(self._gt, ignore_index=True)
        self.gt.write_table(pa.Table.from_pandas(gt, schema=GROUND_TRUTH_SCHEMA, preserve_index=False))
        self._obs, self._gt, self._coo, self._normalized, self._buffered_nnz = [], [], [], [], 0
        self.seconds_writing += time.perf_counter() - t0

    def finish(self, plans: list[DatasetPlan], bio: Biology, release_date: str) -> dict[str, Any]:
        self.flush()
        self.gt.close()
        info = self.path / "census_info"
        n = self.next_joinid
        names = bio.gene_names[self.var_cols].copy()
        for i in range(self.shared_feature_names):  # rows 2i and 2i + 1 share a symbol, as GENCODE names may
            names[2 * i + 1] = names[2 * i]
        var = pd.DataFrame(
            {
                "soma_joinid": np.arange(self.n_var, dtype=np.int64),
                "feature_id": bio.gene_ids[self.var_cols],
                "feature_name": names,
                "feature_length": bio.feature_length[self.var_cols],
                "nnz": self.var_nnz,
                "n_measured_obs": np.full(self.n_var, n, dtype=np.int64),
            }
        )
        write_dataframe(self.path / "census_data" / ORGANISM / "ms" / "RNA" / "var", var, VAR_SCHEMA)
        rows = [p for p in plans if p.dataset_id in self.dataset_counts]
        datasets = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(rows), dtype=np.int64),
                "collection_id": [p.collection_id for p in rows],
                "collection_name": [p.collection_name for p in rows],
                "collection_doi": [p.collection_doi for p in rows],
                "dataset_id": [p.dataset_id for p in rows],
                "dataset_title": [p.title for p in rows],
                "dataset_h5ad_path": [f"{p.dataset_id}.h5ad" for p in rows],
                "dataset_total_cell_count": [self.dataset_counts[p.dataset_id] for p in rows],
            }
        )
        if self.version_ids:
            # A version id per dataset revision; derived from the dataset id so the census stays deterministic.
            versions = [
                str(
                    uuid.uuid5(
                        uuid.NAMESPACE_URL, f"hcebench/{p.dataset_id}/v{p.revision if self.revisions else 1}"
                    )
                )
                for p in rows
            ]
            datasets.insert(5, "dataset_version_id", versions)
        write_dataframe(
            info / "datasets", datasets, DATASETS_SCHEMA_NEWER if self.version_ids else DATASETS_SCHEMA
        )
        merged: dict[tuple[str, str, str], list[int]] = {}
        for (cat, label, tid, prim), k in self.counts.items():
            tot = merged.setdefault((cat, label, tid), [0, 0])
            tot[0] += k
            tot[1] += k if prim else 0
        keys = sorted(merged)
        counts = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(keys), dtype=np.int64),
                "organism": "Homo sapiens",
                "category": [k[0] for k in keys],
                "label": [k[1] for k in keys],
                "ontology_term_id": [k[2] for k in keys],
                "total_cell_count": [merged[k][0] for k in keys],
                "unique_cell_count": [merged[k][1] for k in keys],
            }
        )
        write_dataframe(info / "summary_cell_counts", counts, COUNTS_SCHEMA)
        unique = merged.get(("all", "na", "na"), [0, 0])[1]
        summary_items = [
            ("census_schema_version", self.cfg.census_schema_version),
            ("census_build_date", release_date),
            ("dataset_schema_version", "3.0.0"),
            ("total_cell_count", str(n)),
            ("unique_cell_count", str(unique)),
            ("number_donors_homo_sapiens", str(len(self.donors))),
            ("number_donors_mus_musculus", "0"),
        ]
        summary = pd.DataFrame(
            {
                "soma_joinid": np.arange(len(summary_items), dtype=np.int64),
                "label": [k for k, _ in summary_items],
                "value": [v for _, v in summary_items],
            }
        )
        write_dataframe(info / "summary", summary, SUMMARY_SCHEMA)
        return {
            "path": self.path.name,
            "census_build_date": release_date,
            "n_cells": int(n),
            "n_primary_cells": int(unique),
            "n_datasets": len(rows),
            "n_genes": int(self.n_var),
            "nnz": int(self.var_nnz.sum()),
            "ground_truth": f"ground_truth_{self.name}.parquet",
        }
