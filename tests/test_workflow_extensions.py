"""Joining the benchmark from outside: an architecture added by config alone, CellTypist as an external rule."""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hcebench.evaluation.contract import read_predictions, read_provenance
from plugins import install_toy_plugin
from snakemake_cli import snakemake_command

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.workflow

CONFIG = {
    "run": "ext",
    "census": {
        "source": "simulated",
        "simulate": {
            "seed": 5,
            "n_genes": 200,
            "n_train_datasets": 6,
            "n_ood_datasets": 3,
            "cells_per_dataset": [200, 300],
        },
    },
    "filters": {"min_cells_per_type": 30, "min_tech_samples_per_type": 2},
    "training": {"seeds": [0, 1], "max_epochs": 2, "patience": 2, "batch_size": 256},
    # Defined in tests/toy_arch.py, outside the package, and installed as a plugin (tests/plugins.py): the config
    # names it like a built-in.
    "architectures": {"toy": {"lr": 0.01, "weight_decay": 0.0, "width": 8}},
    "evaluation": {"focus_architecture": "toy"},
    "celltypist": {
        "enabled": True,
        "seeds": [0],
        "batch_size": 200,
        "batch_number": 5,
        "epochs": 2,
        "mem_mb": 1000,
        "runtime": 10,
    },
    "resources": {
        "train": {"mem_mb": 1000, "runtime": 10},
        "predict": {"mem_mb": 1000, "runtime": 10},
        "data": {"mem_mb": 2000, "runtime": 10},
    },
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ext")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    site = install_toy_plugin(workdir / "site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = snakemake_command(workdir, "--cores", "2", "results/ext/summary.tsv")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stderr[-6000:]
    return workdir / "results" / "ext"


def test_toy_architecture_and_celltypist_reach_the_summary(results):
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    rows = set(zip(summary["architecture"], summary["loss"], strict=True))
    assert {("celltypist", "ce"), ("toy", "ce"), ("toy", "hce")} <= rows
    assert rows - {("celltypist", "ce")} == {
        (arch, loss) for arch in ("toy",) for loss in ("ce", "hce", "ce_prop", "hce_prop")
    } | {(f"control_{c}", "none") for c in ("random", "majority", "truth")}
    assert summary["ood_macro_f1_mean"].between(0, 1).all()
    assert summary.set_index(["architecture", "loss"]).loc[("toy", "hce"), "ood_n_pairs"] == 2


def test_celltypist_writes_the_contract(results):
    for split in ("test", "ood"):
        path = results / "predictions" / "celltypist" / "ce" / "seed0" / f"{split}.parquet"
        table = read_predictions(path)
        labels = (results / "hierarchy" / "labels.tsv").read_text()
        assert set(table["pred_label"]) <= {line.split("\t")[1] for line in labels.splitlines()[1:]}
        assert table["probs"].map(lambda p: abs(p.sum() - 1) < 1e-4).all()
        assert read_provenance(path)["architecture"] == "celltypist"
