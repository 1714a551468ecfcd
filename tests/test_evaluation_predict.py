"""hcebench.evaluation.predict and .contract: a trained model's predictions in the contract's shape."""

import hcebench.evaluation.predict as predict_module
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from hcebench.errors import PredictionsError
from hcebench.evaluation.contract import (
    CONTRACT_COLUMNS,
    PredictionsWriter,
    contract_table,
    read_predictions,
    read_provenance,
    write_predictions,
)
from hcebench.evaluation.predict import predict_split
from hcebench.training.loop import TrainSettings, train
from store_fixtures import TOY_ENTRIES as ENTRIES


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


def test_prediction_uses_the_numerics_the_model_was_trained_with(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    seen = []
    real = predict_module.predict_logits

    def spy(model, data, batch_size, device, bf16=True):
        seen.append((torch.get_float32_matmul_precision(), bf16))
        return real(model, data, batch_size, device, bf16)

    monkeypatch.setattr(predict_module, "predict_logits", spy)
    settings = TrainSettings(
        loss="ce",
        seed=0,
        batch_size=128,
        max_epochs=1,
        device="cpu",
        bf16=False,
        float32_matmul_precision="high",
    )
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    names = dict(zip([f"T:000000{i}" for i in range(1, 6)], "ABCDE", strict=True))
    before = torch.get_float32_matmul_precision()
    predict_split(tmp_path / "model.pt", store / "test", names, device="cpu")
    assert seen == [("high", False)] and torch.get_float32_matmul_precision() == before
    # A checkpoint that predates the setting predicts as everything did before it: "highest", bf16 on CUDA.
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    del ckpt["settings"]["float32_matmul_precision"], ckpt["settings"]["bf16"]
    torch.save(ckpt, tmp_path / "old.pt")
    predict_split(tmp_path / "old.pt", store / "test", names, device="cpu")
    assert seen[-1] == ("highest", True)


def test_prediction_logs_its_progress(toy, tmp_path, monkeypatch, caplog):
    import functools

    from hcebench.progress import Progress

    store, hierarchy = toy
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=1, patience=1, device="cpu")
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    # A line a batch, instead of a minute.
    monkeypatch.setattr(predict_module, "Progress", functools.partial(Progress, every_s=0.0))
    with caplog.at_level("INFO", logger="hcebench.evaluation.predict"):
        predict_split(tmp_path / "model.pt", store / "test", {}, batch_size=64, device="cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == "hcebench.evaluation.predict"]
    assert [line.split(" (")[0] for line in lines] == [
        "predict test with linear: 64 of 150 cells",
        "predict test with linear: 128 of 150 cells",
        "predict test with linear: 150 of 150 cells in 0 s",
    ]


@pytest.mark.parametrize("change", ["order", "genes"])
def test_a_split_whose_genes_differ_from_the_models_is_refused(toy, tmp_path, change):
    """A model reads genes by column position: a store or OOD set with other genes, or the same in another order,
    would be predicted without error and be wrong, so it is refused naming both files and the fix."""
    import shutil

    store, hierarchy = toy
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=1, patience=1, device="cpu")
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path / "run")
    other = tmp_path / "other_store"
    shutil.copytree(store, other)
    var = pd.read_parquet(other / "var.parquet")
    if change == "order":
        var = var.iloc[[1, 0, *range(2, len(var))]]
    else:
        var.loc[len(var) - 1, "feature_id"] = "ENSG99999999999"
    var.to_parquet(other / "var.parquet", index=False)
    with pytest.raises(
        ValueError,
        match=r"other_store/var\.parquet lists other genes \(or another order\) than .*"
        r"model\.pt was trained on; rebuild the set from the same training store",
    ):
        predict_split(tmp_path / "run" / "model.pt", other / "test", {}, device="cpu")


def test_a_predictions_file_written_chunk_by_chunk(tmp_path):
    # One row group per chunk; the file is the whole table; nothing is left by a failed or empty write.
    import pandas as pd

    names = {"T:1": "A", "T:2": "B"}
    obs = pd.DataFrame(
        {
            "soma_joinid": range(7),
            "dataset_id": "d",
            "donor_id": "x",
            "tissue": "t",
            "tissue_general": "t",
            "assay": "a",
            "disease": "normal",
            "label": ["T:1", "T:2"] * 3 + ["T:1"],
        }
    )

    probs = np.random.default_rng(0).dirichlet([1, 1], size=7).astype(np.float32)
    whole = contract_table(obs, ["T:1", "T:2"], probs, names)
    with PredictionsWriter(tmp_path / "p.parquet", {"loss": "ce"}) as writer:
        for start in range(0, 7, 3):
            writer.write(whole.iloc[start : start + 3].reset_index(drop=True))
    assert pq.ParquetFile(tmp_path / "p.parquet").num_row_groups == 3 and writer.n_rows == 7
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "p.parquet"), whole)
    assert read_provenance(tmp_path / "p.parquet") == {"loss": "ce"}
    write_predictions(whole, tmp_path / "one.parquet", {"loss": "ce"})
    with PredictionsWriter(tmp_path / "chunk.parquet", {"loss": "ce"}) as writer:
        writer.write(whole)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "chunk.parquet").read_bytes()
    with pytest.raises(PredictionsError), PredictionsWriter(tmp_path / "bad.parquet", {}) as writer:
        writer.write(whole)
        writer.write(whole.assign(pred_prob=2.0))
    with (
        pytest.raises(RuntimeError, match="no chunk was written"),
        PredictionsWriter(tmp_path / "none.parquet", {}),
    ):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk.parquet", "one.parquet", "p.parquet"]
