"""hcebench.hierarchy.ontology: loading OBO releases and closing is_a over a label set — hand-computed DAG,
error cases, and the real CL release."""

from pathlib import Path

import numpy as np
import pytest
from hcebench.errors import OntologyError
from hcebench.hierarchy.ontology import load_ontology

DATA = Path(__file__).parent / "data"
A, B, C, D, E = (f"T:000000{i}" for i in range(1, 6))  # the five-node DAG of tests/data/five_node.obo


@pytest.fixture(scope="module")
def five():
    return load_ontology(DATA / "five_node.obo")


def test_five_node_closure_matches_hand_computation(five):
    h = five.closure([A, B, C, D, E])
    # Row i marks the labels that count as label i (itself and its subtypes).
    expected = np.array(
        [
            [1, 1, 1, 1, 1],  # A: everything
            [0, 1, 0, 1, 1],  # B: B, D, E
            [0, 0, 1, 0, 1],  # C: C, E
            [0, 0, 0, 1, 0],  # D
            [0, 0, 0, 0, 1],  # E
        ]
    )
    np.testing.assert_array_equal(h.reachability, expected)
    assert h.names == ("A", "B", "C", "D", "E")
    assert h.release == "v2000-01-01"
    assert list(h.depth()) == [0, 1, 1, 2, 3]  # E sits under B, C and A


def test_closure_restricted_to_label_subset_keeps_transitive_pairs(five):
    # Without B in the set, D and E still count as A; E still counts as C.
    h = five.closure([A, C, D, E])
    assert h.reachability.tolist() == [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_label_order_is_respected_and_changes_the_hash(five):
    h1 = five.closure([A, B, C, D, E])
    h2 = five.closure([E, D, C, B, A])
    assert h2.reachability[4, 0] == 1  # A (last) reaches E (first)
    assert h1.content_hash != h2.content_hash
    assert h1.content_hash == five.closure([A, B, C, D, E]).content_hash


def test_cycle_is_rejected_with_the_path():
    with pytest.raises(OntologyError, match="cycle"):
        load_ontology(DATA / "cycle.obo")


def test_unknown_label_is_named(five):
    with pytest.raises(OntologyError, match="T:9999999"):
        five.closure([A, "T:9999999"])


def test_obsolete_label_names_replacement(five):
    with pytest.raises(OntologyError, match=r"obsolete.*T:0000005"):
        five.closure([A, "T:0000006"])


def test_duplicate_labels_rejected(five):
    with pytest.raises(OntologyError, match="more than once"):
        five.closure([A, A])


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(OntologyError, match="ontology.source"):
        load_ontology(tmp_path / "nope.obo")


@pytest.fixture(scope="module")
def cl():
    return load_ontology("bundled:v2022-09-15")


def test_real_cl_release_and_sctab_label_set(cl):
    from importlib import resources

    names = (
        (resources.files("hcebench") / "resources" / "sctab_cell_types_2023-05-15.txt")
        .read_text()
        .splitlines()
    )
    ids = [cl.id_of(n) for n in names]
    h = cl.closure(ids)
    assert cl.release == "v2022-09-15"
    assert h.k == 164
    # Every scTab label descends from "native cell" with more than 7 is_a ancestors (the paper's filter).
    assert all(cl.is_subtype(t, "CL:0000003") for t in ids)
    assert min(len(cl.ancestors(t)) for t in ids) == 8
    # Known pairs: a CD8 alpha-beta T cell is a T cell; a T cell is not a B cell.
    t_cell, b_cell = h.index(cl.id_of("T cell")), h.index(cl.id_of("B cell"))
    cd8 = h.index(cl.id_of("CD8-positive, alpha-beta T cell"))
    assert h.reachability[t_cell, cd8] == 1 and h.reachability[cd8, t_cell] == 0
    assert h.reachability[b_cell, cd8] == 0


def test_real_cl_multiple_parents(cl):
    # A CD4 alpha-beta memory T cell is both a CD4 alpha-beta T cell and a memory T cell.
    term = cl.id_of("CD4-positive, alpha-beta memory T cell")
    assert {cl.names[p] for p in cl.parents[term]} == {"CD4-positive, alpha-beta T cell", "memory T cell"}
    assert cl.is_subtype(term, cl.id_of("alpha-beta T cell"))
    # In this release "native cell" is still a live term (later releases obsolete it).
    assert cl.name("CL:0000003") == "native cell" and "CL:0000003" not in cl.obsolete


def test_an_obo_that_refers_to_a_term_it_does_not_define_names_the_term(tmp_path):
    path = tmp_path / "cut.obo"
    path.write_text(
        "format-version: 1.2\n\n[Term]\nid: T:0000001\nname: root\n\n"
        "[Term]\nid: T:0000002\nname: child\nis_a: T:0000001 ! root\nis_a: T:0000009 ! missing\n"
    )
    with pytest.raises(
        OntologyError, match=r"refers to term 'T:0000009' .* but does not define it: the file is incomplete"
    ):
        load_ontology(path)
