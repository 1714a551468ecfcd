"""Training and prediction on a toy store: learns, is deterministic, honours the predictions contract."""

import pandas as pd
import pytest
import torch
from hcebench.contract import CONTRACT_COLUMNS, read_predictions, read_provenance, write_predictions
from hcebench.io import read_json
from hcebench.predict import predict_split
from hcebench.train import TrainSettings, train
from store_fixtures import write_toy_store


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("toy"))


ENTRIES = {
    "linear": {"lr": 0.01, "weight_decay": 0.0},
    "mlp": {"lr": 0.005, "weight_decay": 0.0, "n_layers": 2, "hidden": 32, "dropout": 0.0},
}


@pytest.mark.parametrize("arch", ["linear", "mlp"])
@pytest.mark.parametrize("loss", ["ce", "hce"])
def test_training_learns_separable_labels(toy, tmp_path, arch, loss):
    store, hierarchy = toy
    settings = TrainSettings(loss=loss, seed=0, batch_size=128, max_epochs=15, patience=15, device="cpu")
    summary = train(store, hierarchy, arch, ENTRIES[arch], settings, tmp_path)
    # Labels are separable by their gene blocks, so a trained model must be near perfect.
    assert summary["best_val_macro_f1"] > 0.8
    history = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert len(history) == summary["epochs_run"] and history["lr"].is_monotonic_decreasing
    assert read_json(tmp_path / "train.json")["reachability_hash"] == summary["reachability_hash"]


def test_same_seed_same_weights(toy, tmp_path):
    store, hierarchy = toy
    settings = TrainSettings(loss="hce", seed=3, batch_size=64, max_epochs=2, patience=5, device="cpu")
    train(store, hierarchy, "mlp", ENTRIES["mlp"], settings, tmp_path / "a")
    train(store, hierarchy, "mlp", ENTRIES["mlp"], settings, tmp_path / "b")
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_stops(toy, tmp_path):
    store, hierarchy = toy
    # lr 0: nothing improves after the first epoch, so training stops after `patience` more epochs.
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=20, patience=2, device="cpu")
    summary = train(store, hierarchy, "linear", {"lr": 1e-12, "weight_decay": 0.0}, settings, tmp_path)
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 0


def test_predictions_contract(toy, tmp_path):
    store, hierarchy = toy
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=3, patience=3, device="cpu")
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    names = dict(zip([f"T:000000{i}" for i in range(1, 6)], "ABCDE", strict=True))
    table = predict_split(tmp_path / "model.pt", store / "test", names, device="cpu")
    assert set(CONTRACT_COLUMNS) <= set(table.columns)
    assert len(table) == 150
    assert table["pred_prob"].between(0, 1).all()
    assert all(abs(p.sum() - 1) < 1e-4 for p in table["probs"])
    write_predictions(table, tmp_path / "p.parquet", {"loss": "ce", "seed": 0})
    back = read_predictions(tmp_path / "p.parquet")
    assert back["pred_label"].tolist() == table["pred_label"].tolist()
    assert read_provenance(tmp_path / "p.parquet") == {"loss": "ce", "seed": "0"}
    with pytest.raises(ValueError, match="contract"):
        table.drop(columns=["pred_label"]).to_parquet(tmp_path / "bad.parquet")
        read_predictions(tmp_path / "bad.parquet")
