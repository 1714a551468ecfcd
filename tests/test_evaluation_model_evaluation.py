"""hcebench.evaluation.model_evaluation: one model's predictions, propagation decoding and metrics, split by split."""

import pandas as pd
import pytest
import torch
from hcebench.evaluation.contract import read_predictions, read_provenance
from hcebench.evaluation.model_evaluation import EvaluationFiles, evaluate_model
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import read_json
from hcebench.training.loop import TrainSettings, train
from store_fixtures import TOY_ENTRIES as ENTRIES


@pytest.fixture(scope="module")
def model(toy, tmp_path_factory):
    store, hierarchy = toy
    out = tmp_path_factory.mktemp("model")
    settings = TrainSettings(loss="hce", seed=0, batch_size=128, max_epochs=3, patience=3, device="cpu")
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, out)
    return out / "model.pt"


def files(tmp_path, decoding=True):
    return EvaluationFiles(
        predictions=[str(tmp_path / f"{s}.parquet") for s in (["val"] if decoding else []) + ["test"]],
        metrics=[str(tmp_path / "test.tsv")],
        decoded=[str(tmp_path / "test_prop.parquet")] if decoding else [],
        decoded_metrics=[str(tmp_path / "test_prop.tsv")] if decoding else [],
        decoder=str(tmp_path / "decoder.json") if decoding else None,
    )


def evaluate(model, hierarchy_dir, split_dirs, out, **kwargs):
    """``evaluate_model`` of the toy model (linear, HCE, seed 0) scoring the test split, on the CPU."""
    evaluate_model(
        model,
        hierarchy_dir,
        {split: str(path) for split, path in split_dirs.items()},
        ["test"],
        out,
        architecture="linear",
        loss="hce",
        seed=0,
        device=torch.device("cpu"),
        **kwargs,
    )


def test_every_split_is_predicted_the_validation_split_sets_the_decoder_and_both_decodings_are_scored(
    toy, model, tmp_path
):
    store, hierarchy_dir = toy
    out = files(tmp_path)
    evaluate(model, hierarchy_dir, {"val": store / "val", "test": store / "test"}, out)
    val, test = (read_predictions(p) for p in out.predictions)
    assert len(val) == len(pd.read_parquet(store / "val" / "obs.parquet")) and len(test) == 150
    decoder = read_json(out.decoder)
    assert decoder["chosen_on"] == "val" and 0 < decoder["tau"] < 1
    # The decoded file answers for the same cells, with labels of the set, possibly coarser than the argmax.
    decoded = read_predictions(out.decoded[0])
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    assert decoded["cell_id"].tolist() == test["cell_id"].tolist()
    assert set(decoded["pred_label"]) <= set(hierarchy.term_ids)
    assert read_provenance(out.decoded[0])["loss"] == "hce_prop"
    for path, loss in ((out.metrics[0], "hce"), (out.decoded_metrics[0], "hce_prop")):
        table = pd.read_csv(path, sep="\t")
        assert set(table["loss"]) == {loss} and set(table["split"]) == {"test"} and set(table["seed"]) == {0}
        assert "macro_f1" in set(table["metric"])
    assert not (tmp_path / "val.tsv").exists()  # the validation split chooses tau; it is never scored


def test_a_split_streamed_in_many_chunks_writes_the_files_of_one_chunk(toy, model, tmp_path, monkeypatch):
    # Predictions, decoder and decoded predictions stream chunk by chunk (row groups of the files); the result
    # is the one a single chunk gives, whatever the chunk size.
    import hcebench.evaluation.predict as predict_module
    import pyarrow.parquet as pq

    store, hierarchy_dir = toy
    splits = {"val": store / "val", "test": store / "test"}
    whole, chunked = files(tmp_path / "whole"), files(tmp_path / "chunked")
    evaluate(model, hierarchy_dir, splits, whole)
    monkeypatch.setattr(predict_module, "CHUNK_CELLS", 40)
    evaluate(model, hierarchy_dir, splits, chunked)
    assert pq.ParquetFile(chunked.predictions[1]).num_row_groups == 4  # 150 test cells in chunks of 40
    for a, b in zip(whole.predictions + whole.decoded, chunked.predictions + chunked.decoded, strict=True):
        pd.testing.assert_frame_equal(read_predictions(a), read_predictions(b), check_exact=False, rtol=1e-6)
    assert read_json(whole.decoder)["tau"] == read_json(chunked.decoder)["tau"]
    for a, b in zip(
        whole.metrics + whole.decoded_metrics, chunked.metrics + chunked.decoded_metrics, strict=True
    ):
        pd.testing.assert_frame_equal(pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t"))


def test_without_decoding_only_the_scored_splits_are_predicted_and_scored(toy, model, tmp_path):
    store, hierarchy_dir = toy
    out = files(tmp_path, decoding=False)
    evaluate(model, hierarchy_dir, {"test": store / "test"}, out, save_probabilities=False)
    assert "probs" not in read_predictions(out.predictions[0]).columns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.parquet", "test.tsv"]


def test_decoding_needs_the_validation_split_first(toy, model, tmp_path):
    store, hierarchy_dir = toy
    with pytest.raises(ValueError, match="'val' split first"):
        evaluate(model, hierarchy_dir, {"test": store / "test", "val": store / "val"}, files(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    "run, message",
    [
        ({"architecture": "mlp"}, "it was trained as linear/hce/0, not mlp/hce/0"),
        ({"loss": "ce"}, "it was trained as linear/hce/0, not linear/ce/0"),
        ({"seed": 3}, "it was trained as linear/hce/0, not linear/hce/3"),
    ],
)
def test_a_model_file_of_another_run_is_refused_before_it_predicts(toy, model, tmp_path, run, message):
    # A model.pt copied into another run's folder would otherwise be scored as that run.
    from hcebench.errors import CheckpointError

    store, hierarchy_dir = toy
    out = files(tmp_path, decoding=False)
    kwargs = {"architecture": "linear", "loss": "hce", "seed": 0, **run}
    with pytest.raises(
        CheckpointError, match=rf"model .*model\.pt: {message}; delete it and rerun the train job"
    ):
        evaluate_model(
            model,
            hierarchy_dir,
            {"test": str(store / "test")},
            ["test"],
            out,
            device=torch.device("cpu"),
            **kwargs,
        )
    assert not (tmp_path / "test.parquet").exists()
