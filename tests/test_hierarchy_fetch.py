"""hcebench.hierarchy.fetch: downloading an ontology release (offline, from a file:// URL)."""

from pathlib import Path

import pytest
from hcebench.hierarchy.ontology import load_ontology

DATA = Path(__file__).parent / "data"
A, B, C, D, E = (f"T:000000{i}" for i in range(1, 6))  # the five-node DAG of tests/data/five_node.obo


def test_fetch_obo_from_a_url(tmp_path):
    from hcebench.hierarchy.fetch import fetch_obo

    fetch_obo((DATA / "five_node.obo").as_uri(), tmp_path / "cl.obo")
    assert load_ontology(tmp_path / "cl.obo").closure([A, E]).reachability.tolist() == [[1, 1], [0, 1]]
    (tmp_path / "page.html").write_text("<html>not found</html>")
    with pytest.raises(RuntimeError, match="OBO"):
        fetch_obo((tmp_path / "page.html").as_uri(), tmp_path / "bad.obo")
    assert not (tmp_path / "bad.obo").exists()
    with pytest.raises(RuntimeError, match="ontology.source"):
        fetch_obo((tmp_path / "absent.obo").as_uri(), tmp_path / "x.obo")
