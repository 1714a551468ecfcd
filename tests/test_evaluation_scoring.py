"""hcebench.evaluation.scoring: a predictions file scored against its split's own cells, truth and strata.

Our models' predictions and CellTypist's pass the gate on a toy store; a file that breaks the contract is
refused with nothing written; ood_novel is scored at the nearest trained ancestor; the path imports no torch.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hcebench.data.store import SplitData, SplitWriter
from hcebench.errors import PredictionsError
from hcebench.evaluation.contract import contract_table, write_predictions
from hcebench.evaluation.metrics import metrics_table
from hcebench.evaluation.scoring import read_split_obs, score_predictions
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import write_json
from hcebench.layout import ID_COLUMNS, NOVEL_SPLIT
from store_fixtures import TOY_ENTRIES

RUN = {"architecture": "linear", "loss": "ce", "seed": 0}


def hierarchy_of(hierarchy_dir):
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    return hierarchy, dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))


def random_predictions(obs, hierarchy_dir, seed=0) -> pd.DataFrame:
    hierarchy, names = hierarchy_of(hierarchy_dir)
    probs = np.random.default_rng(seed).dirichlet(np.ones(hierarchy.k), size=len(obs))
    return contract_table(obs, list(hierarchy.term_ids), probs, names)


def value(metrics, stratum_type, stratum, metric):
    row = metrics[
        (metrics["stratum_type"] == stratum_type)
        & (metrics["stratum"] == stratum)
        & (metrics["metric"] == metric)
    ]
    assert len(row) == 1, (stratum_type, stratum, metric)
    return float(row["value"].iloc[0])


def test_our_predictions_score_as_the_table_itself(toy, tmp_path):
    """The gate changes nothing for a valid file: the metrics are those of the file's own table."""
    store, hierarchy_dir = toy
    table = random_predictions(read_split_obs(store, "test"), hierarchy_dir)
    write_predictions(table, tmp_path / "test.parquet", {})
    metrics = score_predictions(
        tmp_path / "test.parquet", hierarchy_dir, store, **RUN, split="test", output=tmp_path / "test.tsv"
    )
    direct = metrics_table(table, LabelHierarchy.load(hierarchy_dir))
    assert np.allclose(metrics["value"], direct["value"], equal_nan=True)
    assert metrics[["stratum_type", "stratum", "metric"]].equals(
        direct[["stratum_type", "stratum", "metric"]]
    )
    assert (metrics[ID_COLUMNS].drop_duplicates().values.tolist()) == [["linear", "ce", 0, "test"]]
    assert pd.read_csv(tmp_path / "test.tsv", sep="\t").shape == metrics.shape


def test_a_trained_models_predictions_pass_the_gate(toy, tmp_path):
    from hcebench.evaluation.predict import predict_split
    from hcebench.training.loop import TrainSettings, train

    store, hierarchy_dir = toy
    _, names = hierarchy_of(hierarchy_dir)
    settings = TrainSettings(loss="hce", seed=0, batch_size=128, max_epochs=2, patience=2, device="cpu")
    train(store, hierarchy_dir, "linear", TOY_ENTRIES["linear"], settings, tmp_path)
    table = predict_split(tmp_path / "model.pt", store / "test", names, device="cpu")
    write_predictions(table, tmp_path / "test.parquet", {"loss": "hce"})
    metrics = score_predictions(tmp_path / "test.parquet", hierarchy_dir, store, **RUN, split="test")
    assert value(metrics, "all", "all", "n_cells") == 150


def test_celltypists_predictions_pass_the_gate(toy, tmp_path):
    pytest.importorskip("celltypist")
    from hcebench.external.celltypist import predict_celltypist, train_celltypist
    from hcebench.settings import CellTypistSettings

    store, hierarchy_dir = toy
    hierarchy, names = hierarchy_of(hierarchy_dir)
    settings = CellTypistSettings(
        max_cells=500_000,
        use_SGD=True,
        mini_batch=True,
        batch_size=100,
        batch_number=3,
        epochs=2,
        alpha=1e-4,
        feature_selection=False,
        save_probabilities=True,
    )
    model = train_celltypist(store, settings, seed=0)
    table = predict_celltypist(model, store / "test", list(hierarchy.term_ids), names)
    write_predictions(table, tmp_path / "test.parquet", {"architecture": "celltypist"})
    metrics = score_predictions(
        tmp_path / "test.parquet",
        hierarchy_dir,
        store,
        architecture="celltypist",
        loss="ce",
        seed=0,
        split="test",
    )
    assert value(metrics, "all", "all", "n_cells") == 150
    assert 0.0 <= value(metrics, "all", "all", "macro_f1") <= 1.0


def test_strata_and_truth_come_from_the_split_not_the_file(toy, tmp_path):
    store, hierarchy_dir = toy
    obs = read_split_obs(store, "test")
    table = random_predictions(obs, hierarchy_dir).assign(dataset_id="everything", tissue="my tissue")
    write_predictions(table, tmp_path / "test.parquet", {})
    metrics = score_predictions(tmp_path / "test.parquet", hierarchy_dir, store, **RUN, split="test")
    datasets = metrics.loc[metrics["stratum_type"] == "dataset_id", "stratum"].unique().tolist()
    assert sorted(datasets) == sorted(obs["dataset_id"].unique().tolist()) and "everything" not in datasets
    assert metrics.loc[metrics["stratum_type"] == "tissue", "stratum"].unique().tolist() == ["blood"]
    for dataset, n in obs["dataset_id"].value_counts().items():
        assert value(metrics, "dataset_id", dataset, "n_cells") == n


def test_a_file_that_breaks_the_contract_is_refused_and_nothing_is_written(toy, tmp_path):
    store, hierarchy_dir = toy
    table = random_predictions(read_split_obs(store, "test"), hierarchy_dir)
    write_predictions(table.iloc[:100], tmp_path / "test.parquet", {})
    with pytest.raises(PredictionsError) as caught:
        score_predictions(
            tmp_path / "test.parquet", hierarchy_dir, store, **RUN, split="test", output=tmp_path / "test.tsv"
        )
    message = str(caught.value)
    assert (
        f"predictions file {tmp_path / 'test.parquet'} (split 'test') breaks the predictions contract"
        in message
    )
    assert (
        "50 of the split's 150 cells have no row (cell_id 100, 101, 102, 103, 104, … (first 5 of 50))"
        in message
    )
    assert f"predict every cell of {store / 'test' / 'obs.parquet'}" in message
    assert not (tmp_path / "test.tsv").exists()


def test_a_split_looked_for_in_the_wrong_directory_names_where_it_lives(toy, tmp_path):
    store, hierarchy_dir = toy
    table = random_predictions(read_split_obs(store, "test"), hierarchy_dir)
    write_predictions(table, tmp_path / "ood.parquet", {})
    with pytest.raises(FileNotFoundError, match=r"holds no split 'ood' .* lives in the run's ood/ directory"):
        score_predictions(tmp_path / "ood.parquet", hierarchy_dir, store, **RUN, split="ood")


@pytest.fixture(scope="module")
def ood_set(toy, tmp_path_factory):
    """An OOD set whose ood_novel split is the toy test split's cells, each of a new type ("N:<label>") whose
    nearest trained ancestor is the cell's toy label."""
    store, _ = toy
    ood = tmp_path_factory.mktemp("ood") / "ood"
    ood.mkdir()
    pd.read_parquet(store / "var.parquet").to_parquet(ood / "var.parquet", index=False)
    write_json(ood / "meta.json", {"train_release": "toy", "ood_release": "toy-2", "n_genes": 40})
    test = SplitData.open(store / "test", 40)
    obs = test.obs.assign(novel_label="N:" + test.obs["label"], novel_label_name="new type")
    writer = SplitWriter(ood / NOVEL_SPLIT, 40)
    writer.append(test.x, obs)
    writer.close()
    return ood


def test_ood_novel_is_scored_at_the_nearest_trained_ancestor(toy, ood_set, tmp_path):
    _, hierarchy_dir = toy
    obs = read_split_obs(ood_set, NOVEL_SPLIT)
    table = random_predictions(obs, hierarchy_dir)
    table["pred_label"] = table["true_label"]  # every cell placed at its ancestor
    write_predictions(table, tmp_path / "novel.parquet", {})
    metrics = score_predictions(tmp_path / "novel.parquet", hierarchy_dir, ood_set, **RUN, split=NOVEL_SPLIT)
    assert value(metrics, "all", "all", "accuracy") == 1.0
    assert set(metrics["ood_release"]) == {"toy-2"}
    table["true_label"] = obs["novel_label"].to_numpy()  # the method's own idea of the truth: the novel type
    write_predictions(table, tmp_path / "own.parquet", {})
    with pytest.raises(
        PredictionsError, match="nearest trained ancestor \\(obs 'label'\\), not its own novel type"
    ):
        score_predictions(tmp_path / "own.parquet", hierarchy_dir, ood_set, **RUN, split=NOVEL_SPLIT)


def test_an_empty_ood_novel_split_scores_an_empty_file(toy, tmp_path):
    store, hierarchy_dir = toy
    ood = tmp_path / "ood"
    ood.mkdir()
    pd.read_parquet(store / "var.parquet").to_parquet(ood / "var.parquet", index=False)
    write_json(ood / "meta.json", {"train_release": "toy", "ood_release": "toy-2", "n_genes": 40})
    SplitWriter(ood / NOVEL_SPLIT, 40).close()
    empty_obs = read_split_obs(store, "test").iloc[:0].assign(novel_label="", novel_label_name="")
    empty_obs.to_parquet(ood / NOVEL_SPLIT / "obs.parquet", index=False)  # as data.ood writes an empty split
    write_predictions(random_predictions(empty_obs, hierarchy_dir), tmp_path / "novel.parquet", {})
    metrics = score_predictions(tmp_path / "novel.parquet", hierarchy_dir, ood, **RUN, split=NOVEL_SPLIT)
    assert value(metrics, "all", "all", "n_cells") == 0


def test_probability_vectors_are_checked_chunk_by_chunk(toy, tmp_path, monkeypatch):
    # The file is scored without holding its probs column; a bad vector is still found, in whichever chunk.
    import hcebench.evaluation.contract as contract

    store, hierarchy_dir = toy
    table = random_predictions(read_split_obs(store, "test"), hierarchy_dir)
    probs = list(table["probs"])
    probs[97] = probs[97] * 2  # sums to 2
    write_predictions(table, tmp_path / "good.parquet", {})
    table.assign(probs=probs).to_parquet(tmp_path / "bad.parquet")
    monkeypatch.setattr(contract, "CHUNK_CELLS", 40)
    with pytest.raises(
        PredictionsError, match=r"rows 80 to 119 .*1 row\(s\) have a probs vector that does not sum"
    ):
        score_predictions(tmp_path / "bad.parquet", hierarchy_dir, store, **RUN, split="test")
    good = score_predictions(tmp_path / "good.parquet", hierarchy_dir, store, **RUN, split="test")
    direct = metrics_table(table, LabelHierarchy.load(hierarchy_dir))
    assert good["value"].equals(direct["value"])


def test_scoring_imports_no_torch(toy, tmp_path):
    store, hierarchy_dir = toy
    write_predictions(
        random_predictions(read_split_obs(store, "test"), hierarchy_dir), tmp_path / "test.parquet", {}
    )
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from hcebench.evaluation.scoring import score_predictions\n"
        "t = score_predictions(sys.argv[1], sys.argv[2], sys.argv[3], architecture='a', loss='ce', seed=0,"
        " split='test')\n"
        "print(len(t))\n"
    )
    args = [str(tmp_path / "test.parquet"), str(hierarchy_dir), str(store)]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 0


def _not_parquet(tmp_path, toy, kind: str):
    """A predictions path holding a CSV (a method that wrote the wrong format) or a parquet file cut short."""
    store, hierarchy_dir = toy
    path = tmp_path / "test.parquet"
    if kind == "csv":
        random_predictions(read_split_obs(store, "test"), hierarchy_dir).drop(columns="probs").to_csv(path)
    else:
        write_predictions(random_predictions(read_split_obs(store, "test"), hierarchy_dir), path, {})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("kind", ["csv", "truncated"])
def test_a_predictions_file_that_is_no_parquet_is_refused_and_nothing_is_written(toy, tmp_path, kind):
    store, hierarchy_dir = toy
    path = _not_parquet(tmp_path, toy, kind)
    with pytest.raises(ValueError, match="Parquet magic bytes not found in footer"):
        score_predictions(path, hierarchy_dir, store, **RUN, split="test", output=tmp_path / "test.tsv")
    assert not (tmp_path / "test.tsv").exists()


def test_a_predictions_file_that_is_no_parquet_is_named(toy, tmp_path):
    store, hierarchy_dir = toy
    path = _not_parquet(tmp_path, toy, "csv")
    with pytest.raises(ValueError, match=str(path)):
        score_predictions(path, hierarchy_dir, store, **RUN, split="test")
