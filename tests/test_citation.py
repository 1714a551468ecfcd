"""CITATION.cff is a valid Citation File Format 1.2.0 file: the fields the format requires, the software's version
and license as pyproject.toml states them, and the four works the README's "How to cite" names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def citation() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def check_authors(authors, where):
    assert isinstance(authors, list) and authors, f"{where}: authors must be a non-empty list"
    for person in authors:
        # CFF: a person has family-names (given-names optional), an entity has a name.
        assert person.get("family-names") or person.get("name"), f"{where}: author {person} has no name"


def test_citation_has_the_fields_cff_1_2_0_requires():
    cff = citation()
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"].strip() and cff["title"].strip()
    check_authors(cff["authors"], "CITATION.cff")
    assert cff["type"] == "software"


def test_citation_agrees_with_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    cff = citation()
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]


def test_citation_references_the_paper_sctab_the_census_and_the_cell_ontology():
    refs = citation()["references"]
    for ref in refs:
        assert ref["type"] == "article" and ref["title"].strip() and ref["journal"].strip()
        assert isinstance(ref["year"], int)
        check_authors(ref["authors"], ref["title"])
    by_journal = {ref["journal"]: ref for ref in refs}
    paper = by_journal["Nature Computational Science"]
    assert (
        paper["title"]
        == "Improving atlas-scale single-cell annotation models with hierarchical cross-entropy loss"
    )
    assert paper["year"] == 2026
    assert (
        by_journal["Nature Communications"]["title"] == "Scaling cross-tissue single-cell annotation models"
    )
    assert "CELLxGENE" in by_journal["Nucleic Acids Research"]["title"]
    assert "Cell Ontology" in by_journal["Journal of Biomedical Semantics"]["title"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## How to cite" in readme and "CITATION.cff" in readme
    for ref in refs:
        assert ref["journal"] in readme, f"README's 'How to cite' omits {ref['title']!r}"
