"""hcebench.evaluation.predict and .contract: a trained model's predictions in the contract's shape."""

import pytest
from hcebench.evaluation.contract import (
    CONTRACT_COLUMNS,
    read_predictions,
    read_provenance,
    write_predictions,
)
from hcebench.evaluation.predict import predict_split
from hcebench.training.loop import TrainSettings, train
from store_fixtures import write_toy_store


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("toy"))


ENTRIES = {
    "linear": {"lr": 0.01, "weight_decay": 0.0},
    "mlp": {"lr": 0.005, "weight_decay": 0.0, "n_layers": 2, "hidden": 32, "dropout": 0.0},
}


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
