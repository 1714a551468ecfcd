"""The whole workflow on a tiny simulated census: outputs' content, caching, and per-architecture reruns."""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hcebench import axes, layout
from hcebench.axes import LOSSES
from hcebench.io import read_json
from hcebench.report import figures
from hcebench.report.figures import NO_DATA_TITLE
from snakemake_cli import snakemake_command

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.workflow

# The shared tiny config (also used by the profile tests and CI's SLURM run); its GPU requests are harmless
# locally, where training.device auto falls back to the CPU.
TINY = yaml.safe_load((ROOT / "tests" / "data" / "tiny_config.yaml").read_text())


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, "--cores", "2", *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


# The whole loss family, one config line away from the demo's: here the linear model trains every registered loss.
TINY_ALL_LOSSES = {
    **TINY,
    "architectures": {
        **TINY["architectures"],
        "linear": {**TINY["architectures"]["linear"], "losses": list(LOSSES)},
    },
}


#: The (architecture, loss) pairs that config trains.
TRAINED = [("linear", loss) for loss in LOSSES] + [("mlp", "ce"), ("mlp", "hce")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY_ALL_LOSSES))
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-6000:]
    (workdir / "terminal.txt").write_text(done.stdout + done.stderr)
    return workdir, workdir / "results" / "tiny"


def test_summary_has_every_architecture_and_loss(run):
    _, results = run
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    trained = set(TRAINED)
    decoded = {(arch, axes.loss_label(loss, axes.PROPAGATION.name)) for arch, loss in trained}
    controls = {(c.architecture, axes.NO_LOSS.name) for c in axes.CONTROLS.values()}
    assert set(zip(summary["architecture"], summary["loss"], strict=True)) == trained | decoded | controls
    models = summary[summary["role"] == "model"]
    assert len(models) == len(trained | decoded) and (models["n_seeds"] == 2).all()
    # The random control runs once per training seed; the deterministic ones once.
    n_seeds = summary.set_index("architecture")["n_seeds"]
    assert n_seeds["control_random"] == 2 and n_seeds["control_truth"] == n_seeds["control_majority"] == 1
    truth = summary[summary["architecture"] == "control_truth"]
    assert truth["ood_macro_f1_mean"].iloc[0] == pytest.approx(1.0)
    summary = models
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
    # Every trained model and its propagation decoding (2 seeds), and the controls' 4 runs, on 2 splits.
    assert len(whole) == (2 * len(TRAINED) * 2 + 4) * 2


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
    "loss_ranking",
)
ANALYSIS_TABLES = (
    "celltype_delta",
    "connectivity",
    "stratified_macro_f1",
    "hierarchical_metrics",
    "backoff",
    "calibration",
    "novel_ood_types",
    "loss_comparison",
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
    # Every trained model and its decoding, each seed (the controls predict the evaluated splits only).
    assert len(overall) == 2 * len(TRAINED) * 2 and (overall["n_cells"] == novel["n_cells_scored"]).all()
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
    # The headline tables first (the report sorts categories by name), every category named and numbered.
    assert sorted(found["categories"])[0] == "1. Headline tables"
    assert {
        "1. Headline tables",
        "2. Paper figures (Fig. 2)",
        "3. Hierarchy analyses",
        "4. Back-off and calibration",
        "6. Novel OOD cell types",
        "7. Data audit and provenance",
        "8. Training",
    } <= set(found["categories"])
    assert all(re.match(r"\d\. ", name) for name in found["categories"]), found["categories"]
    # Every table is readable in the report: its rendered HTML page, not only a download.
    tables = {Path(p).name for p in found["tables"]}
    assert {
        "summary.html",
        "metrics.html",
        "loss_comparison.html",
        "provenance.html",
        "ood_leakage.html",
    } <= tables


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
    # One evaluate job per model predicts, decodes and scores every split; the external methods' score jobs and the
    # controls do not depend on any model, so none of them reruns.
    assert counts.get("evaluate") == "4" and "score" not in counts and "controls" not in counts, out
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


def test_a_bad_value_stops_the_plan_and_leaves_finished_results_untouched(run):
    # Snakemake deletes a job's outputs before running it: a value rejected only inside the job would cost the
    # finished model. A NaN learning rate is refused while planning, so nothing is deleted.
    workdir, _ = run
    copy = _edited_copy(workdir, "nan_lr", lambda c: c["architectures"]["mlp"].update(lr=float("nan")))
    model_dir = copy / "results" / "tiny" / layout.MODEL_DIR.format(arch="mlp", loss="hce", seed=0)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in model_dir.iterdir()}
    done = snakemake(copy)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "architectures.mlp.lr: nan is not a finite number" in out, out[-3000:]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in model_dir.iterdir()} == before
    assert "model.pt" in before


def test_reordering_the_configs_keys_reruns_nothing(run):
    # Rules pass their settings with sorted keys, so Snakemake (which compares params as written) sees no change
    # when a block's keys are reordered. An architecture's own entry keeps its order: model.pt records it as given.
    def reverse(value):
        if isinstance(value, dict):
            return {k: value[k] if k == "architectures" else reverse(value[k]) for k in reversed(list(value))}
        return value

    workdir, _ = run
    copy = _edited_copy(workdir, "reordered", lambda c: None)
    original = yaml.safe_load((workdir / "config.yaml").read_text())
    (copy / "config.yaml").write_text(yaml.safe_dump(reverse(original), sort_keys=False))
    reordered = yaml.safe_load((copy / "config.yaml").read_text())
    assert reordered == original and list(reordered) == list(reversed(list(original)))
    assert list(reordered["training"]) == list(reversed(list(original["training"])))
    dry = snakemake(copy, "--dry-run")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[
        -3000:
    ]


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
    assert trains == {str(len(TRAINED))}, out  # every architecture × its losses, for seed 2 only


def test_seeds_in_one_job_runs_each_architecture_and_loss_once_and_writes_the_same_files(run):
    workdir, results = run
    copy = _edited_copy(workdir, "one_job", lambda c: c["training"].update(seeds_in_one_job=True))
    dry = snakemake(copy, "--dry-run", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out
    counts = {
        w[0]: w[1] for w in (line.split() for line in out.splitlines()) if len(w) == 2 and w[1].isdigit()
    }
    # One train and one evaluate job per architecture × loss, each for both seeds.
    assert counts.get("train") == str(len(TRAINED)) and counts.get("evaluate") == str(len(TRAINED)), out

    # Run one of them for real: linear HCE, both seeds in one process each for training and evaluation.
    seeds = TINY["training"]["seeds"]
    run_files = {
        template: [
            copy / "results" / "tiny" / template.format(arch="linear", loss=loss, seed=seed, split=split)
            for seed in seeds
            for loss, split in [("hce", "ood"), ("hce", "test"), ("hce_prop", "ood")]
        ]
        for template in (layout.PREDICTIONS, layout.METRICS)
    }
    # Relative to the workdir, as Snakemake names its outputs there.
    targets = [str(p.relative_to(copy)) for files in run_files.values() for p in files]
    done = snakemake(copy, "--forcerun", *targets, "--allowed-rules", "train", "evaluate", "--", *targets)
    assert done.returncode == 0, done.stderr[-6000:]
    jobs = re.findall(r"^Finished jobid: \d+ \(Rule: (train|evaluate)\)$", done.stdout + done.stderr, re.M)
    assert sorted(jobs) == ["evaluate", "train"], jobs
    log = (copy / "results" / "tiny" / "logs" / "train" / "linear_hce.log").read_text()
    assert all(f"'seed': {seed}" in log for seed in seeds), log

    # Bit for bit the models and tables of one job per model (the fixture's run).
    for seed in seeds:
        model = layout.MODEL.format(arch="linear", loss="hce", seed=seed)
        ours, theirs = (
            torch.load(d / model, weights_only=True) for d in (copy / "results" / "tiny", results)
        )
        assert ours["state_dict"].keys() == theirs["state_dict"].keys()
        assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in ours["state_dict"])
    for path in run_files[layout.METRICS]:
        assert path.read_bytes() == (results / path.relative_to(copy / "results" / "tiny")).read_bytes(), path
    for path in run_files[layout.PREDICTIONS]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(path), pd.read_parquet(results / path.relative_to(copy / "results" / "tiny"))
        )


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


def _planned(workdir: Path, *targets: str) -> dict[str, int]:
    """Jobs per rule that `snakemake --dry-run` plans in ``workdir`` (for ``targets``, else rule all)."""
    dry = snakemake(workdir, *targets, "--dry-run", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-4000:]
    return {
        w[0]: int(w[1]) for w in (line.split() for line in out.splitlines()) if len(w) == 2 and w[1].isdigit()
    }


LOST_PREDICTIONS = Path("results/tiny/predictions/linear/ce/seed0/test.parquet")
LOST_MODEL = Path("results/tiny/models/mlp/hce/seed1/model.pt")


def _lose(workdir: Path, name: str) -> Path:
    """A copy of the finished run without one predictions file and one model folder."""
    copy = _edited_copy(workdir, name, lambda config: None)
    (copy / LOST_PREDICTIONS).unlink()
    shutil.rmtree(copy / LOST_MODEL.parent)
    return copy


def test_a_deleted_predictions_file_or_model_folder_is_made_again_when_named(run):
    workdir, _ = run
    copy = _lose(workdir, "named_again")
    assert _planned(copy, str(LOST_MODEL)) == {"train": 1, "total": 1}
    assert _planned(copy, str(LOST_PREDICTIONS)) == {"evaluate": 1, "total": 1}  # its model is kept
    done = snakemake(copy, str(LOST_PREDICTIONS))
    assert done.returncode == 0, done.stderr[-4000:]
    pd.testing.assert_frame_equal(
        pd.read_parquet(copy / LOST_PREDICTIONS), pd.read_parquet(workdir / LOST_PREDICTIONS)
    )


def test_a_deleted_predictions_file_or_model_folder_is_planned_again_by_a_plain_run(run):
    workdir, _ = run
    planned = _planned(_lose(workdir, "lost"))
    assert planned.get("train") == 1 and planned.get("evaluate") == 2, planned


def test_a_failing_job_ends_its_log_with_the_traceback_and_the_reason(run):
    """A truncated model.pt makes its evaluate job fail: the rule's log holds the traceback, then one line with the
    reason that names the file and the fix, last."""
    workdir, _ = run
    copy = _edited_copy(workdir, "cut_model", lambda config: None)
    model = copy / "results" / "tiny" / "models" / "linear" / "hce" / "seed1" / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    done = snakemake(copy, "results/tiny/predictions/linear/hce/seed1/test.parquet")
    assert done.returncode != 0
    log_path = "results/tiny/logs/evaluate/linear_hce_seed1.log"
    # The terminal (job details left out by the workflow profile) names the failed job and its log.
    assert re.search(rf"^rule evaluate \(.*seed=1.*\) failed; its log: {log_path}$", done.stderr, re.M), (
        done.stderr
    )
    log = (copy / log_path).read_text().splitlines()
    assert any("Traceback (most recent call last)" in line for line in log)
    reason = r"CheckpointError: model \S*linear/hce/seed1/model\.pt is (truncated or )?corrupt \(.+\): delete it and"
    assert re.search(reason + " rerun the job that makes it$", log[-1]), log[-3:]


def test_a_clean_run_logs_no_json_schema_warning(run):
    _, results = run
    logs = sorted((results / "logs").rglob("*.log"))
    assert len(logs) > 10
    for path in logs:
        for line in path.read_text().splitlines():
            assert "JSON Schema" not in line and "jsonschema" not in line, (path.name, line)


def test_the_terminal_shows_job_lines_and_where_the_results_are_not_every_log_line(run):
    """The workflow profile (quiet: rules) and the rule logs keep a run's terminal short: Snakemake's header, one
    finished line per job, no job details, no rule log lines, no Python warning; the end names the headline table
    and the report command."""
    workdir, results = run
    lines = (workdir / "terminal.txt").read_text().splitlines()
    finished = [line for line in lines if re.match(r"^Finished jobid: \d+ \(Rule: \w+\)$", line)]
    n_jobs = int(re.search(r"^total\s+(\d+)$", "\n".join(lines), re.M).group(1))
    assert len(finished) == n_jobs
    assert not [line for line in lines if re.match(r"^\s+(input|output|log|reason|resources): ", line)]
    assert not [line for line in lines if re.search(r"\b\w*Warning\b|hcebench\.\w+ INFO", line)]
    assert len(lines) <= 6 * n_jobs + 60, len(lines)
    assert "hcebench: done. Headline table: results/tiny/summary.tsv" in lines
    assert "hcebench: the report: snakemake --report results/tiny/report.html" in lines
