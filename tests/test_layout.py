"""hcebench.layout: the vocabulary of splits, run keys and result paths that the rules and the library share."""

import pytest
from hcebench import axes, layout
from hcebench.training.losses import REGISTRY as LOSS_REGISTRY


def test_run_of_reads_the_keys_back_from_a_formatted_path():
    path = "results/demo/" + layout.PREDICTIONS.format(arch="mlp", loss="hce", seed=3, split="ood_novel")
    assert path == "results/demo/predictions/mlp/hce/seed3/ood_novel.parquet"
    assert layout.run_of(path, layout.PREDICTIONS) == {
        "architecture": "mlp",
        "loss": "hce",
        "seed": "3",
        "split": "ood_novel",
    }
    history = layout.HISTORY.format(arch="linear", loss="ce", seed=0)
    assert layout.run_of(f"/abs/{history}", layout.HISTORY) == {
        "architecture": "linear",
        "loss": "ce",
        "seed": "0",
    }


@pytest.mark.parametrize(
    "path",
    [
        "results/demo/predictions/mlp/hce/3/ood.parquet",  # seed without its "seed" prefix
        "results/demo/predictions/mlp/hce/seed3/ood.tsv",
        "results/demo/metrics/mlp/hce/seed3/ood.tsv",
    ],
)
def test_run_of_rejects_a_path_of_another_shape(path):
    with pytest.raises(ValueError, match="is not a"):
        layout.run_of(path, layout.PREDICTIONS)


def test_of_seed_finds_each_models_files_among_a_jobs_outputs_in_their_order():
    # A job running seeds 0, 10 and 1 in turn (training.seeds_in_one_job), outputs listed seed-major.
    paths = [
        "results/demo/" + layout.PREDICTIONS.format(arch="mlp", loss="hce", seed=seed, split=split)
        for seed in (0, 10, 1)
        for split in ("val", "test", "ood")
    ]
    assert layout.of_seed(paths, layout.PREDICTIONS, 1) == [
        f"results/demo/predictions/mlp/hce/seed1/{split}.parquet" for split in ("val", "test", "ood")
    ]
    assert layout.of_seed(paths, layout.PREDICTIONS, 10)[0].endswith("seed10/val.parquet")  # not seed1's
    assert layout.of_seed(paths, layout.PREDICTIONS, 2) == []
    with pytest.raises(ValueError, match="is not a"):
        layout.of_seed(paths, layout.METRICS, 0)


def test_predicted_splits_add_the_novel_split_to_ood_only():
    assert layout.predicted_splits(["test", "ood"]) == ["test", "ood", "ood_novel"]
    assert layout.predicted_splits(["test"]) == ["test"]
    assert set(layout.SCORED_SPLITS) == {"test", "ood", "ood_novel"}


def test_split_home_is_the_ood_set_or_the_store():
    assert layout.split_home("ood") == layout.split_home("ood_novel") == layout.OOD_DIR
    assert layout.split_home("test") == layout.split_home("train") == layout.STORE_DIR


def test_every_run_path_carries_the_run_keys():
    for template in (layout.MODEL, layout.HISTORY, layout.TRAIN_SUMMARY, layout.PREDICTIONS, layout.METRICS):
        for wildcard in ("{arch}", "{loss}", "{seed}"):
            assert wildcard in template, (template, wildcard)


def test_losses_are_the_loss_registry():
    # axes may not import torch, so the names are written out twice; this keeps them equal (order included:
    # it is the order of the config's choices and the docs' table).
    assert tuple(axes.LOSSES) == tuple(LOSS_REGISTRY)
