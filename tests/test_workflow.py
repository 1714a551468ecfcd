"""The whole workflow on a tiny simulated census: outputs' content, caching, and per-architecture reruns."""

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hcebench.io import read_json
from hcebench.report import figures
from hcebench.report.figures import NO_DATA_TITLE

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.workflow

# The shared tiny config (also used by the profile tests and CI's SLURM run); its GPU requests are harmless
# locally, where training.device auto falls back to the CPU.
TINY = yaml.safe_load((ROOT / "tests" / "data" / "tiny_config.yaml").read_text())


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-6000:]
    return workdir, workdir / "results" / "tiny"


def test_summary_has_every_architecture_and_loss(run):
    _, results = run
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    assert sorted(zip(summary["architecture"], summary["loss"], strict=True)) == [
        ("linear", "ce"),
        ("linear", "hce"),
        ("mlp", "ce"),
        ("mlp", "hce"),
    ]
    assert (summary["n_seeds"] == 2).all()
    for col in ("ood_macro_f1_mean", "id_macro_f1_mean"):
        assert summary[col].between(0, 1).all()
    hce = summary[summary["loss"] == "hce"]
    assert hce["ood_gain_abs"].notna().all() and hce["ood_n_pairs"].eq(2).all()
    # The gain column is exactly the difference of the two rows' means.
    for arch in ("linear", "mlp"):
        rows = summary[summary["architecture"] == arch].set_index("loss")
        assert rows.loc["hce", "ood_gain_abs"] == pytest.approx(
            rows.loc["hce", "ood_macro_f1_mean"] - rows.loc["ce", "ood_macro_f1_mean"]
        )
    assert summary["cl_release"].eq("v2022-09-15").all()


def test_metrics_table_is_long_and_identified(run):
    _, results = run
    metrics = pd.read_csv(results / "metrics.tsv", sep="\t")
    for col in (
        "architecture",
        "loss",
        "seed",
        "split",
        "stratum_type",
        "stratum",
        "metric",
        "value",
        "train_release",
        "ood_release",
        "cl_release",
        "reachability_hash",
    ):
        assert col in metrics
    assert {"all", "dataset_id", "tissue", "assay", "disease", "cell_type"} <= set(metrics["stratum_type"])
    whole = metrics[(metrics["stratum_type"] == "all")].pivot_table(
        index=["architecture", "loss", "seed", "split"], columns="metric", values="value"
    )
    # Hierarchy correction can only turn wrong predictions right.
    assert (whole["micro_f1"] >= whole["micro_f1_flat"] - 1e-9).all()
    assert len(whole) == 2 * 2 * 2 * 2


def test_predictions_contract_and_splits(run):
    _, results = run
    cells = pd.read_parquet(results / "selection" / "cells.parquet")
    assert cells.groupby("tech_sample")["split"].nunique().max() == 1
    pred = pd.read_parquet(results / "predictions" / "mlp" / "hce" / "seed0" / "ood.parquet")
    for col in (
        "cell_id",
        "dataset_id",
        "tissue",
        "assay",
        "disease",
        "true_label",
        "pred_label",
        "pred_prob",
    ):
        assert col in pred
    ood_meta = read_json(results / "ood" / "meta.json")
    assert not set(pred["dataset_id"]) & set(cells["dataset_id"])  # OOD studies are new studies
    assert set(pred["dataset_id"]) <= set(ood_meta["new_dataset_ids"])
    labels = (results / "selection" / "labels.txt").read_text().split()
    assert set(pred["true_label"]) <= set(labels)
    assert 0 < ood_meta["missing_gene_fraction"] < 0.5  # the newer release lacks some genes
    test = pd.read_parquet(results / "predictions" / "linear" / "ce" / "seed1" / "test.parquet")
    assert set(test["cell_id"]) == set(cells.loc[cells["split"] == "test", "soma_joinid"])
    probs = np.stack(test["probs"].to_numpy())
    np.testing.assert_allclose(probs.max(axis=1), test["pred_prob"], rtol=1e-5)


def assert_drawn_figure(path: Path) -> None:
    """A PNG that draws data: not the placeholder a figure function writes when it has nothing to show."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert NO_DATA_TITLE.encode() not in data, f"{path.name} is the 'no data' placeholder"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width > 500 and height > 400, (path.name, width, height)  # the placeholder is 400 × 200


def test_figures_exist_and_are_images(run):
    _, results = run
    for name in ("fig2b_ood_macro_f1", "id_test_macro_f1", "id_vs_ood", "training_curves"):
        assert_drawn_figure(results / "figures" / f"{name}.png")


def test_the_figure_check_rejects_the_placeholder(tmp_path):
    placeholder = tmp_path / "empty.png"
    empty = pd.DataFrame(columns=["architecture", "loss", "seed", "split", "stratum_type", "metric", "value"])
    figures.macro_f1_by_architecture(empty, placeholder, split="ood")
    with pytest.raises(AssertionError, match="placeholder"):
        assert_drawn_figure(placeholder)


ANALYSIS_FIGURES = (
    "fig2c_celltype_delta",
    "fig2d_ontology_dag",
    "connectivity",
    "stratified_macro_f1",
    "hierarchical_metrics",
    "backoff_curves",
    "calibration",
    "novel_ood_types",
)
ANALYSIS_TABLES = (
    "celltype_delta",
    "connectivity",
    "stratified_macro_f1",
    "hierarchical_metrics",
    "backoff",
    "calibration",
    "novel_ood_types",
)


def test_analyses_write_figures_and_provenance_stamped_tables(run):
    _, results = run
    for name in ANALYSIS_FIGURES:
        assert_drawn_figure(results / "figures" / f"{name}.png")
    for name in ANALYSIS_TABLES:
        table = pd.read_csv(results / "analysis" / f"{name}.tsv", sep="\t")
        for col in ("train_release", "ood_release", "cl_release", "reachability_hash", "code_version"):
            assert col in table, (name, col)
    hier = pd.read_csv(results / "analysis" / "hierarchical_metrics.tsv", sep="\t")
    hf = hier[hier["metric"] == "hF"]
    summary = pd.read_csv(
        results / "summary.tsv", sep="\t"
    )  # every (architecture, loss), external ones included
    assert len(hf) == len(summary) * 2 and hf["value"].between(0, 1).all()  # × split, seeds pooled
    assert (hf["ci_low"] <= hf["value"] + 1e-12).all() and (hf["value"] <= hf["ci_high"] + 1e-12).all()
    backoff = pd.read_csv(results / "analysis" / "backoff.tsv", sep="\t")
    per_run = backoff.sort_values("tau").groupby(["architecture", "loss", "seed", "split"])["specificity"]
    assert per_run.apply(lambda s: (s.diff().dropna() <= 1e-12).all()).all()
    prov = pd.read_csv(results / "analysis" / "provenance.tsv", sep="\t").set_index("key")["value"]
    assert prov["cl_release"] == "v2022-09-15" and prov["seeds"] == "0,1"
    assert "version.numpy" in prov.index and prov["code_version"]


def test_novel_ood_types_are_scored_not_dropped(run):
    _, results = run
    meta = read_json(results / "ood" / "meta.json")
    novel = meta["novel"]
    assert novel["n_cells"] == meta["n_cells_unseen_label"]  # every unseen-label cell is accounted for
    assert novel["n_cells_scored"] + novel["n_cells_dropped"] == novel["n_cells"]
    obs = pd.read_parquet(results / "ood" / "ood_novel" / "obs.parquet")
    assert len(obs) == novel["n_cells_scored"]
    labels = set((results / "selection" / "labels.txt").read_text().split())
    assert set(obs["label"]) <= labels and not set(obs["novel_label"]) & labels
    pred = pd.read_parquet(results / "predictions" / "mlp" / "hce" / "seed0" / "ood_novel.parquet")
    assert len(pred) == len(obs)
    table = pd.read_csv(results / "analysis" / "novel_ood_types.tsv", sep="\t")
    # The tiny census has new types below trained ones (T cell under lymphocyte, ...): some must be scored.
    assert novel["n_cells_scored"] > 0 and 0 < novel["coverage"] < 1
    overall = table[table["novel_label"] == "all"]
    assert len(overall) == 2 * 2 * 2 and (overall["n_cells"] == novel["n_cells_scored"]).all()
    assert overall["accuracy_at_ancestor"].between(0, 1).all()
    np.testing.assert_allclose(overall["coverage"], novel["coverage"])


def test_report_renders_every_figure_in_headless_chromium(run):
    import os

    from hcebench.report.check import check_report, find_chromium

    if find_chromium() is None:
        if os.environ.get("HCEBENCH_REQUIRE_CHROMIUM"):
            pytest.fail(
                "HCEBENCH_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install -y chromium)"
            )
        pytest.skip(
            "chromium is not installed here (apt-get update && apt-get install -y chromium; .ci/run does)"
        )
    workdir, results = run
    report = results / "report.html"
    done = snakemake(workdir, "--report", str(report))
    assert done.returncode == 0, done.stderr[-4000:]
    found = check_report(report)
    shown = {Path(p).name: v for p, v in found["images"].items()}
    for name in (*ANALYSIS_FIGURES, "fig2b_ood_macro_f1", "id_test_macro_f1", "id_vs_ood", "training_curves"):
        assert shown.get(f"{name}.png") and shown[f"{name}.png"]["width"] > 100, (
            name,
            shown.get(f"{name}.png"),
        )
    assert {
        "1. Paper figures (Fig. 2)",
        "2. Hierarchy analyses",
        "3. Back-off and calibration",
        "5. Novel OOD cell types",
        "6. Provenance",
    } <= set(found["categories"])


def test_rerun_is_a_no_op_and_a_hyperparameter_reruns_one_branch(run):
    workdir, _ = run
    again = snakemake(workdir, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    edited = yaml.safe_load((workdir / "config.yaml").read_text())
    edited["architectures"]["mlp"]["lr"] = 0.001
    edited_dir = workdir / "edited"
    edited_dir.mkdir()
    (edited_dir / "config.yaml").write_text(yaml.safe_dump(edited))
    shutil.copytree(workdir / "results", edited_dir / "results", symlinks=True)
    shutil.copytree(workdir / ".snakemake", edited_dir / ".snakemake", symlinks=True)
    dry = snakemake(edited_dir, "--dry-run", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out
    counts = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            counts[words[0]] = words[1]
    # 2 losses × 2 seeds of mlp retrain; nothing of linear does.
    assert counts.get("train") == "4", out
    # One predict job per model writes every split, the novel-type split (ood_novel) included, which the
    # analysis rule scores instead of score.
    assert counts.get("predict") == "4" and counts.get("score") == "8", out
    assert "select_cells" not in counts and "build_store" not in counts


def _edited_copy(workdir: Path, name: str, edit) -> Path:
    """A copy of the finished run's directory (results and Snakemake's records) with ``edit`` applied to its config."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    edit(config)
    copy = workdir / name
    copy.mkdir()
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(workdir / "results", copy / "results", symlinks=True)
    shutil.copytree(workdir / ".snakemake", copy / ".snakemake", symlinks=True)
    return copy


def test_adding_a_seed_trains_only_the_new_seed(run):
    workdir, _ = run
    copy = _edited_copy(workdir, "seeded", lambda c: c["training"].update(seeds=[0, 1, 2]))
    dry = snakemake(copy, "--dry-run", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out
    trains = {
        line.split()[1]
        for line in out.splitlines()
        if line.split()[:1] == ["train"] and len(line.split()) == 2
    }
    assert trains == {"4"}, out  # 2 architectures × 2 losses for seed 2 only


def test_training_streams_from_soma_with_tiledbsoma_ml_and_augments(run):
    pytest.importorskip("tiledbsoma_ml")
    workdir, results = run

    def edit(config):
        config["training"]["data_source"] = "tiledbsoma_ml"
        config["architectures"]["mlp"]["augment"] = True

    copy = _edited_copy(workdir, "streamed", edit)
    targets = [
        "results/tiny/models/linear/ce/seed0/train.json",
        "results/tiny/models/mlp/hce/seed0/train.json",
    ]
    done = snakemake(copy, *targets)
    assert done.returncode == 0, done.stderr[-6000:]
    assert (copy / "results" / "tiny" / "augmentation" / "bank.npy").exists()
    for target in targets:
        streamed = read_json(copy / target)
        stored = read_json(workdir / target)
        assert streamed["data_source"] == "tiledbsoma_ml" and stored["data_source"] == "store"
        assert streamed["augment"] == ("mlp" in target) and (streamed["augmentation_vectors"] > 0) == (
            "mlp" in target
        )
        # Same cells, another order (and augmentation): the model learns as well as from the store.
        assert streamed["best_val_macro_f1"] > stored["best_val_macro_f1"] - 0.15, (streamed, stored)
