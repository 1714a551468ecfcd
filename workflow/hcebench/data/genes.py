"""The store's gene list: which genes a store holds, in which order, from ``genes.source`` and a release's var.

``read_gene_list`` reads the list (``all``, the bundled scTab protein-coding list, or a parquet indexed by Ensembl
id); ``resolve_genes`` matches it to the release's var by Ensembl id or by symbol (``genes.match``) and orders it
(``genes.order``); ``gene_match_counts`` records what each matching rule finds, for the store's meta.
"""

from __future__ import annotations

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
