"""The store's gene list: which genes a store holds, in which order, from ``genes.source`` and a release's var.

``read_gene_list`` reads the list (``all``, the bundled scTab protein-coding list, or a parquet indexed by Ensembl
id); ``resolve_genes`` matches it to the release's var by Ensembl id or by symbol (``genes.match``) and orders it
(``genes.order``); ``gene_match_counts`` records what each matching rule finds, for the store's meta. ``match_query_genes`` matches a
query's var (a user's ``.h5ad``, for ``hcebench-annotate``) to a store's genes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

#: Gene-list columns that hold the symbol (scTab's features.parquet: gene_names).
GENE_NAME_COLUMNS = ("gene_names", "feature_name")


#: The share of a gene list the census must hold. scTab's list of 19,357 protein-coding genes matches 19,331 in Census
#: 2023-05-15 (99.9 %); a list of which less than half is found is another organism, id namespace or file.
MIN_GENE_SHARE = 0.5


def read_gene_list(source: str, var: pd.DataFrame) -> pd.DataFrame:
    """The gene list ``genes.source`` names, in its order, as (feature_id, feature_name).

    ``all`` is the release's var sorted by feature_id; ``bundled:sctab_protein_coding`` or a parquet path is a
    table indexed by Ensembl id with the symbol in a ``gene_names`` (scTab) or ``feature_name`` column.
    """
    if source == "all":
        genes = var[["feature_id", "feature_name"]].sort_values("feature_id")
        return genes.reset_index(drop=True)
    if source == "bundled:sctab_protein_coding":
        path = Path(str(resources.files("hcebench") / "resources" / "sctab_features_protein_coding.parquet"))
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"genes.source {source!r} does not exist; give a parquet indexed by Ensembl id"
            )
    wanted = pd.read_parquet(path)
    name_column = next((c for c in GENE_NAME_COLUMNS if c in wanted.columns), None)
    names = wanted[name_column].astype(str).to_numpy() if name_column else np.full(len(wanted), "")
    return pd.DataFrame({"feature_id": wanted.index.astype(str), "feature_name": names})


def gene_match_counts(wanted: pd.DataFrame, var: pd.DataFrame) -> dict:
    """How many genes of ``var`` each matching rule finds for the list ``wanted`` (``read_gene_list``).

    ``feature_id`` / ``feature_name``: var rows whose Ensembl id / symbol the list holds; ``id_not_name`` and
    ``name_not_id``: the feature_ids one rule finds and the other does not (a renamed symbol; a changed id, or a
    second id of a symbol the list holds once).
    """
    by_id = var["feature_id"].isin(set(wanted["feature_id"]))
    by_name = var["feature_name"].isin(set(wanted["feature_name"]) - {""})
    return {
        "feature_id": int(by_id.sum()),
        "feature_name": int(by_name.sum()),
        "id_not_name": sorted(var.loc[by_id & ~by_name, "feature_id"].astype(str)),
        "name_not_id": sorted(var.loc[by_name & ~by_id, "feature_id"].astype(str)),
    }


def resolve_genes(
    source: str, var: pd.DataFrame, *, match: str = "feature_id", order: str = "list"
) -> pd.DataFrame:
    """The store's genes in order, as (feature_id, feature_name), from ``genes.source`` and the release's var.

    ``match`` (``genes.match``): ``feature_id`` keeps the var rows whose Ensembl id the list holds;
    ``feature_name`` the var rows whose symbol it holds (scTab's ``var_value_filter="feature_name in list"``:
    a symbol with several ids keeps them all). ``order`` (``genes.order``): ``list`` is the list's order (a
    symbol's ids in var order at its first place in the list; for ``all``, sorted by feature_id); ``census`` is
    the release's var order (soma_joinid), which scTab kept (19,331 of its 19,357 genes in Census 2023-05-15).
    Each row is one var row, so feature_id is unique even where feature_name is not.
    """
    if match not in ("feature_id", "feature_name"):
        raise ValueError(f"genes.match must be 'feature_id' or 'feature_name', not {match!r}")
    if order not in ("list", "census"):
        raise ValueError(f"genes.order must be 'list' or 'census', not {order!r}")
    wanted = read_gene_list(source, var)
    if source != "all" and match == "feature_name" and (wanted["feature_name"] == "").all():
        raise ValueError(
            f"genes.match is feature_name but genes.source {source!r} has no symbol column "
            f"(one of {list(GENE_NAME_COLUMNS)}); add one or set genes.match: feature_id"
        )
    key = "feature_id" if source == "all" else match
    rank = (
        pd.Series(np.arange(len(wanted)), index=wanted[key]).groupby(level=0).min().drop("", errors="ignore")
    )
    census_order = var["soma_joinid"].to_numpy() if "soma_joinid" in var else np.arange(len(var))
    found = var.assign(_rank=var[key].astype(str).map(rank), _census=census_order).dropna(subset=["_rank"])
    if found.empty:
        raise ValueError(
            f"none of the {len(wanted)} genes of genes.source {source!r} is in the census var "
            f"(matched by genes.match: {match}); check the list against the release, or try the other genes.match"
        )
    share = found[key].nunique() / max(wanted[key].replace("", np.nan).nunique(), 1)
    if share < MIN_GENE_SHARE:
        raise ValueError(
            f"only {found[key].nunique():,} of the {len(wanted):,} genes of genes.source {source!r} are in the census "
            f"var ({share:.1%}, matched by genes.match: {match}); below {MIN_GENE_SHARE:.0%} the store would be "
            "another gene space than the list's (another organism, id namespace or file): check the list against "
            "the release, or try the other genes.match"
        )
    found = found.sort_values(["_census"] if order == "census" else ["_rank", "_census"], kind="stable")
    return found[["feature_id", "feature_name"]].astype(str).reset_index(drop=True)


# -- a query's genes (a user's .h5ad) against a store's --------------------------------------------------------
#: Query var columns that may hold Ensembl ids, tried in this order after the var index (CELLxGENE's feature_id,
#: scanpy/10x's gene_ids).
QUERY_ID_COLUMNS = ("feature_id", "gene_ids", "gene_id", "ensembl_id", "ensembl_ids")
#: Query var columns that may hold gene symbols, tried after the id columns (the var index is tried too).
QUERY_SYMBOL_COLUMNS = ("feature_name", "gene_symbols", "gene_symbol", "gene_name", "gene_names", "symbol")
#: The var index, named as ``match_query_genes``'s ``column`` names it.
VAR_INDEX = "index"


@dataclass(frozen=True)
class QueryGeneMatch:
    """Where a query's genes go in a store's column order, and what is missing.

    Query var row ``query_columns[c]`` (a position in the query's var) is read into store column
    ``store_columns[c]``. ``by`` is ``feature_id`` or ``feature_name``, ``column`` the query var column it was found
    in (``index`` for the var index). ``ambiguous_symbols``: symbols (matching by symbol only) that appear more
    than once in the query or in the store, with their counts there; none of them is used, so no two genes are
    merged into one column.
    """

    query_columns: np.ndarray
    store_columns: np.ndarray
    n_store_genes: int
    by: str
    column: str
    ambiguous_symbols: dict[str, dict[str, int]]

    def lookup(self, n_query_genes: int) -> np.ndarray:
        """The store column of every query var row, -1 for those not matched (``hcebench.data.reads.store_rows``'s
        ``columns``)."""
        out = np.full(n_query_genes, -1, dtype=np.int64)
        out[self.query_columns] = self.store_columns
        return out

    @property
    def n_found(self) -> int:
        return len(self.store_columns)

    @property
    def missing_fraction(self) -> float:
        """The share of the store's genes the query lacks (they stay zero, as in the OOD set)."""
        return 1.0 - self.n_found / self.n_store_genes if self.n_store_genes else 0.0

    def report(self) -> dict:
        return {
            "matched_by": self.by,
            "query_column": self.column,
            "n_model_genes": int(self.n_store_genes),
            "n_found": int(self.n_found),
            "missing_fraction": float(self.missing_fraction),
            "ambiguous_symbols": self.ambiguous_symbols,
        }


def strip_version(ids: pd.Series | pd.Index) -> pd.Series:
    """Ensembl ids without a version suffix (``ENSG00000141510.17`` → ``ENSG00000141510``)."""
    return pd.Series(np.asarray(ids, dtype=str)).str.replace(r"\.\d+$", "", regex=True)


def query_var_columns(var: pd.DataFrame) -> dict[str, pd.Series]:
    """Every candidate gene column of a query var, by name: the index, then the known id and symbol columns."""
    columns = {VAR_INDEX: pd.Series(var.index.astype(str), dtype=object)}
    for name in (*QUERY_ID_COLUMNS, *QUERY_SYMBOL_COLUMNS):
        if name in var.columns:
            columns[name] = pd.Series(var[name].astype(str).to_numpy(), dtype=object)
    return columns


def match_query_genes(
    store_genes: pd.DataFrame,
    query_var: pd.DataFrame,
    *,
    column: str | None = None,
    by: str | None = None,
    min_share: float = MIN_GENE_SHARE,
    what: str = "the query",
) -> QueryGeneMatch:
    """Match a query's var (a user's ``.h5ad``) to a store's genes (``feature_id``, ``feature_name``, in column
    order), by Ensembl id or by symbol.

    By default every candidate column (``query_var_columns``) is tried by id (version suffixes ignored) and by
    symbol, and the pair that finds the most store genes wins, ids first on a tie; ``column`` (a var column, or
    ``index``) and ``by`` (``feature_id`` / ``feature_name``) pin either. Matching by symbol leaves out every
    symbol that appears more than once in the query or the store (``QueryGeneMatch.ambiguous_symbols``): a
    symbol naming two genes cannot say which of them a column holds. Raises ``ValueError`` when less than
    ``min_share`` of the store's genes is found (``MIN_GENE_SHARE``: another organism, id namespace or file),
    naming the best attempt and the columns tried.
    """
    if by not in (None, "feature_id", "feature_name"):
        raise ValueError(f"genes are matched by 'feature_id' or 'feature_name', not {by!r}")
    candidates = query_var_columns(query_var)
    if column is not None:
        if column not in candidates and column in query_var.columns:
            candidates[column] = pd.Series(query_var[column].astype(str).to_numpy(), dtype=object)
        if column not in candidates:
            raise ValueError(
                f"{what} has no var column {column!r}; its var columns: {list(query_var.columns)} "
                f"(or {VAR_INDEX!r} for the var index)"
            )
        candidates = {column: candidates[column]}
    store_ids = strip_version(store_genes["feature_id"])
    store_names = pd.Series(store_genes["feature_name"].astype(str).to_numpy(), dtype=object)
    attempts = []
    for name, values in candidates.items():
        for rule in ("feature_id", "feature_name") if by is None else (by,):
            attempts.append(_match_one(store_ids, store_names, values, name, rule))
    # Most genes found; on a tie an id match (unique by construction), then the candidates' order.
    best = max(attempts, key=lambda m: (m.n_found, m.by == "feature_id"))
    share = best.n_found / max(len(store_genes), 1)
    if share < min_share:
        tried = ", ".join(f"{m.column} by {m.by}: {m.n_found:,}" for m in attempts)
        raise ValueError(
            f"{what} holds only {best.n_found:,} of the model's {len(store_genes):,} genes ({share:.1%}; tried "
            f"{tried}); below {min_share:.0%} its genes are another gene space than the model's (another "
            "organism, id namespace or a filtered gene list). Give the var column of Ensembl ids or symbols "
            "(e.g. feature_id, gene_ids, feature_name), or annotate with a model trained on these genes"
        )
    return best


def _match_one(
    store_ids: pd.Series, store_names: pd.Series, values: pd.Series, column: str, rule: str
) -> QueryGeneMatch:
    ambiguous: dict[str, dict[str, int]] = {}
    if rule == "feature_id":
        query = strip_version(values)
        store = store_ids
    else:
        query, store = values.reset_index(drop=True), store_names
        query_counts, store_counts = query.value_counts(), store.value_counts()
        shared = set(query) & set(store)
        ambiguous = {
            s: {"query": int(query_counts.get(s, 0)), "model": int(store_counts.get(s, 0))}
            for s in sorted(shared)
            if query_counts.get(s, 0) > 1 or store_counts.get(s, 0) > 1
        }
        query = query.where(~query.isin(ambiguous.keys()), None)
    # The first query column of each value: ids are unique in a var, and ambiguous symbols are left out above.
    position = pd.Series(np.arange(len(query)), index=query).loc[lambda s: s.index.notna()]
    position = position[~position.index.duplicated(keep="first")]
    found = store.isin(position.index) & store.ne("") & ~store.isin(ambiguous.keys())
    store_columns = np.flatnonzero(found.to_numpy())
    query_columns = position.loc[store[found].to_numpy()].to_numpy(np.int64)
    return QueryGeneMatch(
        query_columns=query_columns,
        store_columns=store_columns.astype(np.int64),
        n_store_genes=len(store),
        by=rule,
        column=column,
        ambiguous_symbols=ambiguous,
    )
