"""hcebench.data.ood: the OOD set — new studies, gene alignment, novel types at their nearest trained ancestor."""

from __future__ import annotations

import pandas as pd
from hcebench.data.ood import align_genes, name_alignment_check, new_datasets


# -- novel OOD types: nearest trained ancestor ------------------------------------------------------------
def test_nearest_trained_ancestor_is_the_deepest_trained_is_a_ancestor():
    from hcebench.data.ood import nearest_trained_ancestors
    from hcebench.hierarchy.ontology import Ontology

    # root → A → B → D ; A → C ; X under both B and C ; Y under root only ; Z has a parent chain A → C → Z
    parents = {
        "root": (),
        "A": ("root",),
        "B": ("A",),
        "C": ("A",),
        "D": ("B",),
        "X": ("B", "C"),
        "Y": ("root",),
        "Z": ("C",),
    }
    onto = Ontology(names={t: f"cell {t}" for t in parents}, parents=parents)
    got = nearest_trained_ancestors(["D", "X", "Y", "Z", "unknown"], ["A", "B", "C"], onto)
    assert got["D"] == "B"  # B (2 ancestors) beats A (1)
    assert got["X"] == "B"  # B and C tie in depth: the lower term id wins
    assert got["Y"] is None  # only the untrained root above it: counted and dropped
    assert got["Z"] == "C"
    assert got["unknown"] is None  # not a term of this CL release


def test_align_genes_by_feature_id():
    store = pd.Series(["g1", "g2", "g3", "g4"])
    ood_var = pd.DataFrame({"soma_joinid": [0, 1, 2, 3], "feature_id": ["g4", "gX", "g1", "g2"]})
    joinids, columns, missing = align_genes(store, ood_var)
    assert dict(zip(joinids.tolist(), columns.tolist(), strict=True)) == {0: 3, 2: 0, 3: 1}
    assert missing == 0.25  # g3 is not measured by the newer release


def test_new_datasets_is_a_set_difference():
    old = pd.DataFrame({"dataset_id": ["a", "b"]})
    new = pd.DataFrame({"dataset_id": ["a", "b", "c", "d"], "collection_id": list("wxyz")})
    assert new_datasets(old, new)["dataset_id"].tolist() == ["c", "d"]


def test_name_alignment_check_reports_what_a_symbol_lookup_would_change():
    # A store matched by symbol: C has two ids. The newer release renamed B's id and dropped ENSG3b.
    store = pd.DataFrame(
        {"feature_id": ["ENSG1", "ENSG2", "ENSG3a", "ENSG3b"], "feature_name": ["A", "B", "C", "C"]}
    )
    ood_var = pd.DataFrame(
        {
            "soma_joinid": [0, 1, 2],
            "feature_id": ["ENSG3a", "ENSG2x", "ENSG1"],
            "feature_name": ["C", "B", "A"],
        }
    )
    joinids, columns, missing = align_genes(store["feature_id"], ood_var)
    assert dict(zip(joinids.tolist(), columns.tolist(), strict=True)) == {0: 2, 2: 0}
    assert missing == 0.5
    check = name_alignment_check(store, ood_var)
    assert check == {
        "by": "feature_id",
        "missing_by_id_found_by_name": ["ENSG2", "ENSG3b"],
        "store_genes_sharing_a_symbol": 2,
    }
