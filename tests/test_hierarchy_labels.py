"""hcebench.hierarchy.labels: the reachability matrix as a partial order, and its artifact on disk."""

from pathlib import Path

import numpy as np
import pytest
from hcebench.errors import OntologyError
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.hierarchy.ontology import load_ontology

DATA = Path(__file__).parent / "data"
A, B, C, D, E = (f"T:000000{i}" for i in range(1, 6))  # the five-node DAG of tests/data/five_node.obo


@pytest.fixture(scope="module")
def five():
    return load_ontology(DATA / "five_node.obo")


def test_validate_rejects_non_partial_orders():
    r = np.array([[1, 1], [1, 1]], dtype=np.uint8)
    with pytest.raises(OntologyError, match="antisymmetric"):
        LabelHierarchy(("x", "y"), ("x", "y"), r, "t").validate()
    r = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    with pytest.raises(OntologyError, match="transitive"):
        LabelHierarchy(("x", "y", "z"), ("x", "y", "z"), r, "t").validate()
    with pytest.raises(OntologyError, match="reflexive"):
        LabelHierarchy(("x",), ("x",), np.zeros((1, 1), np.uint8), "t").validate()


def test_save_load_roundtrip_and_tamper_detection(five, tmp_path):
    h = five.closure([A, B, C, D, E])
    h.save(tmp_path / "h")
    back = LabelHierarchy.load(tmp_path / "h")
    assert back.term_ids == h.term_ids and back.content_hash == h.content_hash
    r = np.load(tmp_path / "h" / "reachability.npy")
    r[3, 4] = 1
    np.save(tmp_path / "h" / "reachability.npy", r)
    with pytest.raises(OntologyError, match="hash"):
        LabelHierarchy.load(tmp_path / "h")


def test_child_matrix_as_R_is_validated_and_compared_with_the_closure(five, tmp_path):
    from hcebench.hierarchy.labels import CHILD_MATRIX_RELEASE, choose_reachability, from_child_matrix

    closure = five.closure([A, B, C, D, E])
    # scTab's construction (04_create_hierarchy_matrices.ipynb): np.eye, then 1. at each label's children (float).
    R_ok = from_child_matrix(closure, np.eye(5) + (closure.reachability - np.eye(5)), "child.npy")
    np.testing.assert_array_equal(R_ok.reachability, closure.reachability)
    assert R_ok.release == CHILD_MATRIX_RELEASE and R_ok.content_hash == closure.content_hash
    with pytest.raises(
        OntologyError, match=r"child.npy: the child matrix has shape \(4, 4\), but the run has 5"
    ):
        from_child_matrix(closure, np.eye(4), "child.npy")
    with pytest.raises(OntologyError, match="values other than 0 and 1"):
        from_child_matrix(closure, np.eye(5) * 2, "child.npy")
    with pytest.raises(OntologyError, match="not reflexive"):
        from_child_matrix(closure, closure.reachability - np.eye(5, dtype=np.uint8), "child.npy")
    flipped = closure.reachability.copy()
    i, j = np.argwhere(closure.reachability - np.eye(5, dtype=np.uint8))[0]
    flipped[i, j] = 0  # the child matrix lacks one subtype pair of the closure
    chosen, disagree = choose_reachability(closure, flipped, "child.npy", "child.npy")
    np.testing.assert_array_equal(chosen.reachability, flipped)
    assert disagree[["ancestor", "descendant"]].values.tolist() == [
        [closure.term_ids[i], closure.term_ids[j]]
    ]
    assert disagree.iloc[0, 4:].tolist() == [True, False]
    kept, same = choose_reachability(closure, flipped, "child.npy", "ontology")
    assert kept is closure and len(same) == 1
    assert choose_reachability(closure, None, None, "ontology") == (closure, None)
    with pytest.raises(OntologyError, match="holds no child matrix"):
        choose_reachability(closure, None, None, "sctab")
    kept.save(tmp_path / "h", source="ontology", disagreements=same)
    assert (tmp_path / "h" / "sources_disagree.tsv").read_text().count("\n") == 2
    assert LabelHierarchy.load(tmp_path / "h").content_hash == closure.content_hash
