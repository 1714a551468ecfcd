"""The package's house rules: one-way imports between subpackages, no private names across modules, imports at the
top, a docstring for every subpackage, and a CellTypist-side import path free of torch."""

import importlib
import subprocess
import sys

import pytest
from import_graph import PACKAGE, RANK, analyse, layer_of, modules


def test_imports_run_one_way_and_touch_no_private_names():
    edges, problems = analyse()
    assert problems == []
    # The graph is real: every layer above the root imports something below it.
    importers = {src for src, _ in edges}
    assert importers == set(RANK) - {"root"}


def test_the_checker_sees_an_upward_arrow(tmp_path, monkeypatch):
    """A data module importing the report layer is flagged (the check can fail)."""
    import import_graph

    fake = tmp_path / "hcebench"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text(
        "from hcebench.report.figures import LOSS_COLOURS\nfrom hcebench.io import _x\n"
    )
    monkeypatch.setattr(import_graph, "PACKAGE", fake)
    _, problems = import_graph.analyse()
    assert any("upward arrow" in p for p in problems)
    assert any("private name _x" in p for p in problems)


def test_layer_names():
    assert layer_of("hcebench.io") == "root"
    assert layer_of("hcebench.data.store") == "data"
    assert layer_of("hcebench.models") == "models"


@pytest.mark.parametrize("subpackage", [name for name in RANK if name != "root"])
def test_every_subpackage_says_what_it_owns_and_may_import(subpackage):
    doc = importlib.import_module(f"hcebench.{subpackage}").__doc__ or ""
    assert len(doc.split()) >= 25, (
        f"hcebench.{subpackage} needs a docstring: what it owns, what it may import"
    )
    assert "import" in doc


def test_every_module_is_importable():
    for name in modules():
        importlib.import_module(name)


def test_the_celltypist_side_imports_no_torch():
    """envs/celltypist.yaml has no torch: its rule script's imports must not pull it in."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import hcebench.external.celltypist, hcebench.evaluation.contract, hcebench.hierarchy.labels, hcebench.io\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr


def test_tests_mirror_the_package():
    """Each subpackage has test modules named after it (test_<subpackage>_<module>.py), each root module its own."""
    tests = {p.stem for p in (PACKAGE.parents[1] / "tests").glob("test_*.py")}
    for subpackage in (name for name in RANK if name != "root"):
        if subpackage == "external":  # CellTypist runs in the workflow tests, in its own rule
            assert "test_workflow_extensions" in tests
            continue
        assert any(t == f"test_{subpackage}" or t.startswith(f"test_{subpackage}_") for t in tests), (
            subpackage
        )
    for module in ("config", "io", "layout", "provenance"):
        assert f"test_{module}" in tests, module


def test_the_report_needs_the_package_alone_not_its_test_extra():
    """`snakemake --report` renders code with pygments. pytest brings pygments too, so a developer's environment hides
    its absence; a user's `pip install -e .` (no test extra) gets it only through snakemake's `reports` extra."""
    from importlib.metadata import requires

    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    project = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["project"]
    dependencies = {req.name: req for req in map(Requirement, project["dependencies"])}
    assert "reports" in dependencies["snakemake"].extras
    assert "pygments" not in {Requirement(r).name for r in project["optional-dependencies"]["test"]}
    snakemake_extras = [Requirement(r) for r in requires("snakemake")]
    pygments = [r for r in snakemake_extras if r.name == "pygments"]
    assert any(r.marker.evaluate({"extra": "reports"}) for r in pygments)
    assert not any(r.marker.evaluate({"extra": ""}) for r in pygments)  # only through an extra
    # And the report does need it: snakemake renders each rule's code with pygments, and refuses without it.
    render = (
        "from types import SimpleNamespace as R; "
        "from snakemake.report.html_reporter.data.rules import render_code; "
        "print(render_code(R(language='python', source='x = 1')))"
    )
    done = subprocess.run([sys.executable, "-c", render], capture_output=True, text=True)
    assert done.returncode == 0 and 'class="source"' in done.stdout, done.stderr
    blocked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['pygments'] = None; " + render],
        capture_output=True,
        text=True,
    )
    assert "pygments must be installed to create reports" in blocked.stderr
