"""The real two-study example (config/real_pbmc.yaml) through the workflow: the whole plan, and its data rules run on
the vendored .h5ad files (ingest, selection, store, OOD set, audit). The whole run takes several minutes on 2 cores
(docs/real_data.md), too long for the suite; training on real cells is the same code as on the simulated ones."""

import shutil
import subprocess
from pathlib import Path

import pytest
from hcebench.io import read_json
from snakemake_cli import snakemake_command

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_command(
        workdir, "--configfile", str(workdir / "config" / "real_pbmc.yaml"), "--cores", "2", *args
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_the_real_example_plans_every_rule_and_its_data_rules_run_on_the_real_files(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "real_pbmc.yaml", tmp_path / "config")
    shutil.copytree(ROOT / "data" / "real", tmp_path / "data" / "real")
    plan = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-4000:]
    for rule in (
        "ingest_anndata",
        "select_cells",
        "build_store",
        "build_ood",
        "train",
        "evaluate",
        "aggregate",
    ):
        assert rule in plan.stdout, rule
    results = tmp_path / "results" / "real_pbmc"
    done = snakemake(tmp_path, "results/real_pbmc/ood", "results/real_pbmc/audit/ood_leakage.json")
    assert done.returncode == 0, done.stderr[-6000:]
    manifest = read_json(results / "census" / "manifest.json")
    assert manifest["n_cells"] == {"zheng2017": 700, "zheng2017_wu2020": 900}
    report = read_json(results / "selection" / "report.json")
    assert report["split_by"] == "cell" and "leakage" in report["split_leakage_caveat"]
    assert report["n_labels"] == 10 and report["cells_selected"] == 700
    store = read_json(results / "store" / "meta.json")
    assert store["n_genes"] == 743
    ood = read_json(results / "ood" / "meta.json")
    assert ood["new_dataset_ids"] == ["wu2020_200"] and ood["missing_gene_fraction"] == 0.0
    # Treg, CD4 memory and CD8 clusters carry training labels; the CD8 subtypes are scored at the CD8 term.
    assert ood["n_cells"] == {"ood": 48, "ood_novel": 84}
    leakage = read_json(results / "audit" / "ood_leakage.json")
    assert leakage  # the audit reads the ingested census_info like a Census's
    again = snakemake(tmp_path, "-n", "results/real_pbmc/ood")
    assert "Nothing to be done" in again.stdout + again.stderr
