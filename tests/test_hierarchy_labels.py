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
