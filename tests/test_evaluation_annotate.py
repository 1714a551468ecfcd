"""hcebench.evaluation.annotate (``hcebench-annotate``): a trained model applied to an ``.h5ad``.

The reference is the workflow's own evaluation: a run is built in-process on the tiny simulated census (selection,
hierarchy, training store, OOD set, a linear HCE model, ``evaluate_model`` with the propagation decoder), its OOD
cells are exported from the census with their raw counts as an ``.h5ad``, and annotating that file must give each
cell the label and probability of the run's ``ood.parquet`` and the back-off label of its ``ood.parquet`` decoded by
propagation (``hce_prop``).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tiledbsoma
import torch
from hcebench import layout
from hcebench.config import load_config
from hcebench.data.build import build_training_store
from hcebench.data.genes import match_query_genes
from hcebench.data.ood import build_ood_set
from hcebench.data.selection import select_from_census
from hcebench.data.store import Store
from hcebench.errors import CheckpointError, DataError
from hcebench.evaluation.annotate import AnnotationModel, ModelFiles, annotate, main
from hcebench.evaluation.contract import read_predictions
from hcebench.evaluation.model_evaluation import EvaluationFiles, evaluate_model
from hcebench.io import read_json
from hcebench.settings import OodSettings, SelectionSettings, StoreSettings
from hcebench.training.loop import TrainSettings, train
from sim_fixtures import OOD_RELEASE, TRAIN_RELEASE, bundled_ontology

ROOT = Path(__file__).resolve().parents[1]
RUN = {"arch": "linear", "loss": "hce", "seed": 0}


@pytest.fixture(scope="module")
def run(tiny_census, tmp_path_factory):
    """A run's results directory with one evaluated model, and the OOD cells as an .h5ad of raw counts."""
    root = tmp_path_factory.mktemp("annotate") / "results" / "tiny"
    config = load_config(ROOT / "tests" / "data" / "tiny_config.yaml")
    train_source, ood_source = ({"uri": str(tiny_census / r)} for r in (TRAIN_RELEASE, OOD_RELEASE))
    ontology = bundled_ontology()
    selection = select_from_census(train_source, SelectionSettings.from_config(config), ontology)
    ontology.closure(selection.labels).save(root / layout.HIERARCHY_DIR)
    store_dir, ood_dir = root / layout.STORE_DIR, root / layout.OOD_DIR
    build_training_store(
        train_source, selection.cells, selection.labels, StoreSettings.from_config(config), store_dir
    )
    build_ood_set(
        train_source,
        ood_source,
        selection.labels,
        Store(store_dir).genes,
        OodSettings.from_config(config),
        ood_dir,
        ontology=ontology,
    )
    model_dir = root / layout.MODEL_DIR.format(**RUN)
    settings = TrainSettings(loss="hce", seed=0, batch_size=256, max_epochs=2, patience=2, device="cpu")
    train(
        store_dir,
        root / layout.HIERARCHY_DIR,
        "linear",
        config["architectures"]["linear"],
        settings,
        model_dir,
    )
    prop = {**RUN, "loss": "hce_prop"}
    files = EvaluationFiles(
        predictions=[str(root / layout.PREDICTIONS.format(**RUN, split=s)) for s in ("val", "ood")],
        metrics=[str(root / layout.METRICS.format(**RUN, split="ood"))],
        decoded=[str(root / layout.PREDICTIONS.format(**prop, split="ood"))],
        decoded_metrics=[str(root / layout.METRICS.format(**prop, split="ood"))],
        decoder=str(root / layout.DECODER.format(**prop)),
    )
    evaluate_model(
        model_dir / "model.pt",
        root / layout.HIERARCHY_DIR,
        {"val": str(store_dir / "val"), "ood": str(ood_dir / "ood")},
        ["ood"],
        files,
        architecture="linear",
        loss="hce",
        seed=0,
        device=torch.device("cpu"),
    )
    # The OOD cells as a user would have them: raw counts of the newer release, in a shuffled order.
    joinids = pd.read_parquet(ood_dir / "ood" / "obs.parquet")["soma_joinid"].to_numpy()
    with tiledbsoma.Experiment.open(f"{ood_source['uri']}/census_data/homo_sapiens") as exp:
        query = exp.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(coords=(np.sort(joinids),)))
        with (
            warnings.catch_warnings()
        ):  # tiledbsoma's obs index is integers; anndata says it makes them strings
            warnings.simplefilter("ignore", ad.ImplicitModificationWarning)
            adata = query.to_anndata(X_name="raw")
    adata.obs_names = adata.obs["soma_joinid"].astype(str).to_numpy()
    adata = adata[np.random.default_rng(0).permutation(adata.n_obs)].copy()
    adata.X = sp.csr_matrix(adata.X)
    h5ad = root.parent / "ood_cells.h5ad"
    adata.write_h5ad(h5ad)
    return {
        "root": root,
        "model_dir": model_dir,
        "h5ad": h5ad,
        "argmax": read_predictions(files.predictions[1]),
        "decoded": read_predictions(files.decoded[0]),
    }


@pytest.fixture(scope="module")
def model(run):
    return AnnotationModel(ModelFiles.of(run["model_dir"]), torch.device("cpu"))


def by_cell(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(cell_id=table["cell_id"].astype(str)).set_index("cell_id")


def test_annotating_the_ood_cells_gives_the_workflows_predictions(run, model, tmp_path):
    out = tmp_path / "ood.annotated.h5ad"
    summary = annotate(run["h5ad"], out, model, chunk_size=300, batch_size=128)
    annotated = ad.read_h5ad(out)
    obs = annotated.obs
    expected = by_cell(run["argmax"]).loc[obs.index]
    decoded = by_cell(run["decoded"]).loc[obs.index]
    assert len(obs) == len(run["argmax"]) == summary["n_cells"] > 300  # several chunks
    assert (obs["hcebench_label"].astype(str).to_numpy() == expected["pred_label"].to_numpy()).all()
    assert (obs["hcebench_label_name"].astype(str).to_numpy() == expected["pred_label_name"].to_numpy()).all()
    np.testing.assert_allclose(obs["hcebench_label_prob"], expected["pred_prob"], rtol=1e-5, atol=1e-6)
    assert (obs["hcebench_backoff_label"].astype(str).to_numpy() == decoded["pred_label"].to_numpy()).all()
    np.testing.assert_allclose(obs["hcebench_backoff_prob"], decoded["pred_prob"], rtol=1e-5, atol=1e-6)
    # The copy keeps everything the input had: counts, var, the original obs columns.
    original = ad.read_h5ad(run["h5ad"])
    assert (annotated.X != original.X).nnz == 0 and annotated.var.equals(original.var)
    assert obs[original.obs.columns].equals(original.obs)
    assert annotated.uns["hcebench_annotate"]["tau"] == pytest.approx(read_json(model.files.decoder)["tau"])
    assert (
        summary["gene_match"]["matched_by"] == "feature_id"
        and summary["gene_match"]["query_column"] == "feature_id"
    )
    assert summary["missing_gene_fraction"] == pytest.approx(
        read_json(run["root"] / "ood" / "meta.json")["missing_gene_fraction"]
    )


def test_the_parquet_output_and_a_file_with_symbols_only_give_the_same_answers(run, model, tmp_path):
    # Symbols as the var index, no id column: matched by symbol (the simulated symbols are unique).
    adata = ad.read_h5ad(run["h5ad"])
    adata.var = pd.DataFrame(index=adata.var["feature_name"].astype(str).to_numpy())
    h5ad = tmp_path / "symbols.h5ad"
    adata.write_h5ad(h5ad)
    out = tmp_path / "symbols.parquet"
    summary = annotate(h5ad, out, model, chunk_size=1000)
    table = pd.read_parquet(out).set_index("cell_id")
    expected = by_cell(run["argmax"]).loc[table.index]
    assert (
        summary["gene_match"]["matched_by"] == "feature_name"
        and summary["gene_match"]["query_column"] == "index"
    )
    assert (table["hcebench_label"].astype(str).to_numpy() == expected["pred_label"].to_numpy()).all()
    np.testing.assert_allclose(table["hcebench_label_prob"], expected["pred_prob"], rtol=1e-5, atol=1e-6)


def test_the_command_refuses_log_normalised_counts_and_reads_them_from_a_layer(run, tmp_path):
    # X log-normalised (refused as counts, with a message saying so), the counts in a layer.
    adata = ad.read_h5ad(run["h5ad"])
    adata.layers["counts"] = adata.X.copy()
    x = adata.X.astype(np.float32).multiply(1e4 / adata.X.sum(axis=1)).tocsr()
    x.data = np.log1p(x.data)
    adata.X = x
    h5ad = tmp_path / "lognorm.h5ad"
    adata.write_h5ad(h5ad)
    args = [str(h5ad), "--model", str(run["model_dir"]), "--output", str(tmp_path / "out.parquet")]
    with pytest.raises(DataError, match=r"looks log-normalised.*--counts.*layers/counts"):
        annotate(
            h5ad,
            tmp_path / "refused.parquet",
            AnnotationModel(ModelFiles.of(run["model_dir"]), torch.device("cpu")),
        )
    assert not (tmp_path / "refused.parquet").exists()
    report = tmp_path / "report.json"
    assert main([*args, "--counts", "layers/counts", "--report", str(report)]) == 0
    table = pd.read_parquet(tmp_path / "out.parquet").set_index("cell_id")
    expected = by_cell(run["argmax"]).loc[table.index]
    assert (table["hcebench_label"].astype(str).to_numpy() == expected["pred_label"].to_numpy()).all()
    assert sum(json.loads(report.read_text())["label_counts"].values()) == len(table)


def test_the_command_line_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "--model" in text and "back-off label" in text and "layers/<name>" in text


def test_query_genes_by_id_or_symbol_report_ambiguous_symbols_and_refuse_too_few():
    store = pd.DataFrame({"feature_id": ["E1", "E2", "E3", "E4"], "feature_name": ["A", "B", "C", "C"]})
    var = pd.DataFrame(
        {"gene_ids": ["E4.2", "E9", "E1.1", "E2"], "gene_symbols": ["C", "B", "A", "B"]}, index=list("wxyz")
    )
    by_id = match_query_genes(store, var)  # ids win: version suffixes are ignored
    assert (by_id.by, by_id.column, by_id.missing_fraction) == ("feature_id", "gene_ids", 0.25)
    assert dict(zip(by_id.store_columns, by_id.query_columns, strict=True)) == {0: 2, 1: 3, 3: 0}
    by_name = match_query_genes(store, var, by="feature_name", min_share=0.0)
    # B twice in the file, C twice in the model: both left out, reported; only A is matched.
    assert by_name.ambiguous_symbols == {"B": {"query": 2, "model": 1}, "C": {"query": 1, "model": 2}}
    assert list(by_name.store_columns) == [0] and list(by_name.query_columns) == [2]
    with pytest.raises(
        ValueError, match=r"only 1 of the model's 4 genes \(25.0%.*gene_symbols by feature_name: 1"
    ):
        match_query_genes(store, var, by="feature_name", column="gene_symbols")


def test_bad_inputs_are_clear_errors_before_any_output(run, model, tmp_path):
    out = tmp_path / "out.h5ad"
    with pytest.raises(DataError, match="does not exist"):
        annotate(tmp_path / "missing.h5ad", out, model)
    (tmp_path / "empty.h5ad").write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        annotate(tmp_path / "empty.h5ad", out, model)
    (tmp_path / "text.h5ad").write_text("cell,gene\n")
    with pytest.raises(DataError, match="not an .h5ad file"):
        annotate(tmp_path / "text.h5ad", out, model)
    adata = ad.read_h5ad(run["h5ad"])
    adata[:0].copy().write_h5ad(tmp_path / "nocells.h5ad")
    with pytest.raises(DataError, match="0 cells"):
        annotate(tmp_path / "nocells.h5ad", out, model)
    with pytest.raises(DataError, match=r"has no raw/X .*holds \['X'\]"):
        annotate(run["h5ad"], out, model, counts="raw.X")
    negative = adata.copy()
    negative.X = negative.X.copy()
    negative.X.data[5] = -1
    negative.write_h5ad(tmp_path / "negative.h5ad")
    with pytest.raises(DataError, match="1 negative"):
        annotate(tmp_path / "negative.h5ad", out, model)
    few = adata[:, :100].copy()  # a third of the model's genes
    few.write_h5ad(tmp_path / "few.h5ad")
    with pytest.raises(ValueError, match="below 50%"):
        annotate(tmp_path / "few.h5ad", out, model)
    assert not out.exists() and not list(tmp_path.glob(".out.h5ad*"))


def test_a_model_without_its_runs_files_or_with_another_runs_genes_is_refused(run, tmp_path):
    model_dir = tmp_path / "results" / "x" / layout.MODEL_DIR.format(**RUN)
    model_dir.mkdir(parents=True)
    shutil.copy(run["model_dir"] / "model.pt", model_dir)
    with pytest.raises(CheckpointError, match=r"missing: .*labels.tsv.*meta.json.*decoder.json.*give --tau"):
        ModelFiles.of(model_dir)
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(run["model_dir"] / "model.pt", loose)
    with pytest.raises(
        CheckpointError, match="not in a run's results.*give --hierarchy, --store and --decoder"
    ):
        ModelFiles.of(loose, hierarchy=run["root"] / "hierarchy")
    files = ModelFiles.of(loose, hierarchy=run["root"] / "hierarchy", store=run["root"] / "store", tau=0.5)
    assert AnnotationModel(files, torch.device("cpu")).tau == 0.5
    # Another store's genes (the gene order reversed).
    store = tmp_path / "store"
    shutil.copytree(run["root"] / "store", store, ignore=shutil.ignore_patterns("train", "val", "test"))
    genes = pd.read_parquet(store / "var.parquet")
    genes.iloc[::-1].to_parquet(store / "var.parquet", index=False)
    files = ModelFiles.of(run["model_dir"], store=store, tau=0.5)
    with pytest.raises(CheckpointError, match="its genes are not those of"):
        AnnotationModel(files, torch.device("cpu"))


def test_reannotating_an_annotated_file_replaces_its_columns(run, model, tmp_path):
    first, second = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    annotate(run["h5ad"], first, model, prefix="x_")
    annotate(first, second, model, prefix="x_")
    with h5py.File(second) as f:
        order = [str(c) for c in f["obs"].attrs["column-order"]]
    assert len(order) == len(set(order)) and order.count("x_label") == 1
    assert ad.read_h5ad(second).obs["x_label"].equals(ad.read_h5ad(first).obs["x_label"])


@pytest.mark.parametrize(
    "block, message",
    [
        ({"inputs": ["a.h5ad"]}, "annotate.inputs are given but annotate.model is not"),
        (
            {"inputs": ["a.h5ad"], "model": "linear/hce/9"},
            "annotate.model 'linear/hce/9' is not a model of this run",
        ),
        (
            {"inputs": ["a.h5ad"], "model": "tabnet/hxe/0"},
            "annotate.model 'tabnet/hxe/0' is not a model of this run",
        ),
        ({"inputs": ["x/a.h5ad", "y/a.h5ad"], "model": "linear/hce/0"}, r"share file names \['a.h5ad'\]"),
        ({"inputs": ["a.csv"], "model": "linear/hce/0"}, r"annotate.inputs"),
    ],
)
def test_the_annotate_block_names_a_model_of_the_grid(block, message):
    from hcebench.errors import ConfigError

    config = load_config(ROOT / "config.yaml")
    config["annotate"] = block
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_the_annotate_block_needs_a_threshold_without_the_decoder():
    from hcebench.errors import ConfigError

    config = load_config(ROOT / "config.yaml")
    config["annotate"] = {"inputs": ["a.h5ad"], "model": "linear/hce/0"}
    config["evaluation"]["propagation_decoding"] = False
    with pytest.raises(ConfigError, match="annotate.tau is null.*propagation_decoding is false"):
        load_config(config)
    config["annotate"]["tau"] = 0.7
    assert load_config(config)["annotate"]["chunk_size"] == 10_000


def test_the_workflow_rule_annotates_the_configured_files(run, tmp_path):
    # The run's results as the workflow left them; only rule annotate may run (the others' outputs are taken as
    # they are), so this checks the rule, its script and the config block without running the whole workflow.
    import subprocess
    import sys

    import yaml

    workdir = run["root"].parents[1]
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny_config.yaml").read_text())
    config["annotate"] = {"inputs": [str(run["h5ad"])], "model": "linear/hce/0", "format": "parquet"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = f"results/tiny/{layout.ANNOTATION.format(**RUN, name='ood_cells', ext='parquet')}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            target,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "1",
            "--allowed-rules",
            "annotate",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    table = pd.read_parquet(workdir / target).set_index("cell_id")
    expected = by_cell(run["argmax"]).loc[table.index]
    assert (table["hcebench_label"].astype(str).to_numpy() == expected["pred_label"].to_numpy()).all()
    summary = read_json(workdir / target.replace(".parquet", ".json"))
    assert summary["n_cells"] == len(table) and summary["gene_match"]["matched_by"] == "feature_id"
    log = (workdir / "results/tiny/logs/annotate/linear_hce_seed0_ood_cells.log").read_text()
    assert "cells annotated" in log and "genes found by feature_id" in log


def test_counts_in_raw_with_more_genes_than_a_dense_x_are_read_with_raws_genes(run, model, tmp_path):
    # A common shape of shared files: X dense and log-normalised over a few "highly variable" genes, the raw counts
    # of every gene in raw.X (genes in raw.var).
    full = ad.read_h5ad(run["h5ad"])
    hvg = full[:, :40].copy()
    x = hvg.X.toarray().astype(np.float32)
    hvg.X = np.log1p(x / np.maximum(x.sum(axis=1, keepdims=True), 1) * 1e4)
    hvg.raw = full
    hvg.write_h5ad(tmp_path / "hvg.h5ad")
    with pytest.raises(
        ValueError, match=r"X holds only 40 of the model's 300 genes.*--counts raw\.X reads it"
    ):
        annotate(tmp_path / "hvg.h5ad", tmp_path / "x.parquet", model)
    with pytest.raises(DataError, match=r"X looks log-normalised.*the file holds X, raw"):
        annotate(tmp_path / "hvg.h5ad", tmp_path / "x.parquet", model, min_gene_share=0.1)
    summary = annotate(tmp_path / "hvg.h5ad", tmp_path / "raw.parquet", model, counts="raw.X", chunk_size=500)
    table = pd.read_parquet(tmp_path / "raw.parquet").set_index("cell_id")
    expected = by_cell(run["argmax"]).loc[table.index]
    assert summary["genes_found"] > 40
    assert (table["hcebench_label"].astype(str).to_numpy() == expected["pred_label"].to_numpy()).all()
    np.testing.assert_allclose(table["hcebench_label_prob"], expected["pred_prob"], rtol=1e-5, atol=1e-6)
