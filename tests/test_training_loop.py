"""hcebench.training.loop: the training loop learns, is reproducible, stops early, resumes bit for bit after
a signal or a kill, augments, and honours per-architecture overrides."""

import logging
import os
import signal
import subprocess
import sys
import time

import hcebench.training.loop as train_module
import numpy as np
import pandas as pd
import pytest
import torch
from hcebench.data.store import SplitData
from hcebench.errors import TrainingError
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import read_json
from hcebench.models import build_model, logits_and_aux
from hcebench.training.loop import EXIT_INTERRUPTED, TrainSettings, train
from store_fixtures import TOY_ENTRIES as ENTRIES
from store_fixtures import write_toy_store


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
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_stops(toy, tmp_path, caplog):
    store, hierarchy = toy
    # lr 0: nothing improves after the first epoch, so training stops after `patience` more epochs.
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=20, patience=2, device="cpu")
    with caplog.at_level(logging.INFO, logger="hcebench.training.loop"):
        summary = train(store, hierarchy, "linear", {"lr": 1e-12, "weight_decay": 0.0}, settings, tmp_path)
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1
    # Epochs count from 1 alike in the log, history.tsv, train.json and model.pt.
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/20", "2/20", "3/20"]
    assert all("(epoch 1)" in line for line in epoch_lines)
    assert pd.read_csv(tmp_path / "history.tsv", sep="\t")["epoch"].tolist() == [1, 2, 3]
    assert read_json(tmp_path / "train.json")["best_epoch"] == 1
    assert torch.load(tmp_path / "model.pt", weights_only=True)["best_epoch"] == 1


MORE = {
    "tabnet": {
        "lr": 0.02,
        "weight_decay": 0.0,
        "n_d": 16,
        "n_a": 8,
        "n_shared": 1,
        "n_independent": 1,
        "virtual_batch_size": 64,
    },
    "transformer": {
        "lr": 0.01,
        "weight_decay": 0.0,
        "top_k": 16,
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 1,
        "dropout": 0.0,
    },
}


@pytest.mark.parametrize("arch", ["tabnet", "transformer"])
def test_tabnet_and_transformer_learn(toy, tmp_path, arch):
    store, hierarchy = toy
    settings = TrainSettings(loss="hce", seed=0, batch_size=128, max_epochs=12, patience=12, device="cpu")
    summary = train(store, hierarchy, arch, MORE[arch], settings, tmp_path)
    assert summary["best_val_macro_f1"] > 0.8
    assert not (tmp_path / "checkpoint.pt").exists()  # removed once the outputs are written


def test_architecture_training_overrides(toy, tmp_path):
    store, hierarchy = toy
    entry = {**ENTRIES["linear"], "training": {"max_epochs": 2, "batch_size": 300}}
    settings = TrainSettings.from_config({"max_epochs": 9, "batch_size": 64}, "ce", 0, entry=entry)
    assert (settings.max_epochs, settings.batch_size, settings.patience) == (2, 300, 10)
    summary = train(store, hierarchy, "linear", entry, settings, tmp_path)
    assert summary["epochs_run"] == 2


def _signal_at_step(monkeypatch, step: int, signum=signal.SIGUSR1):
    """Make the process signal itself while the ``step``-th forward pass (training or validation) runs."""
    import hcebench.models.device as device_module

    calls = {"n": 0}
    real = device_module.autocast

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    # Training steps run in the loop's module, validation passes in predict_logits's.
    monkeypatch.setattr(train_module, "autocast", counting)
    monkeypatch.setattr(device_module, "autocast", counting)


def _bank(store, n: int = 6, seed: int = 0) -> np.ndarray:
    n_genes = read_json(store / "meta.json")["n_genes"]
    return np.random.default_rng(seed).normal(0, 0.8, (n, n_genes)).astype(np.float32)


# 5 minibatches and 2 validation batches per epoch: mid-epoch (3, 9), in the epoch's last minibatch (5: none
# left, so it checkpoints after validation) and during validation (6); with augmentation, whose random draws
# must resume where they stopped too.
@pytest.mark.parametrize(("step", "augmenting"), [(3, False), (5, False), (6, False), (9, False), (3, True)])
def test_resume_after_signal_finishes_identically(toy, tmp_path, monkeypatch, step, augmenting):
    store, hierarchy = toy
    entry = {
        "lr": 0.005,
        "weight_decay": 0.01,
        "n_layers": 2,
        "hidden": 32,
        "dropout": 0.3,
    }  # dropout: torch RNG
    entry["augment"] = augmenting
    bank = _bank(store) if augmenting else None
    settings = TrainSettings(
        loss="hce", seed=7, batch_size=128, max_epochs=4, patience=4, device="cpu", shuffle_block_rows=4
    )
    train(store, hierarchy, "mlp", entry, settings, tmp_path / "straight", bank=bank)

    with monkeypatch.context() as m:
        _signal_at_step(m, step)
        with pytest.raises(SystemExit) as stopped:
            train(store, hierarchy, "mlp", entry, settings, tmp_path / "cut", bank=bank)
    assert stopped.value.code == EXIT_INTERRUPTED
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    train(store, hierarchy, "mlp", entry, settings, tmp_path / "cut", bank=bank)

    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert a["best_epoch"] == b["best_epoch"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    ha, hb = (
        pd.read_csv(tmp_path / d / "history.tsv", sep="\t").drop(columns="seconds")
        for d in ("straight", "cut")
    )
    pd.testing.assert_frame_equal(ha, hb)


def test_augmentation_changes_training_and_needs_a_matching_bank(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    settings = TrainSettings(loss="hce", seed=2, batch_size=128, max_epochs=2, patience=2, device="cpu")
    plain = train(store, hierarchy, "mlp", ENTRIES["mlp"], settings, tmp_path / "plain")
    assert plain["augment"] is False and plain["augmentation_vectors"] == 0

    seen = []
    real = train_module.augment

    def spy(x, bank, generator):
        out = real(x, bank, generator)
        seen.append(((out - x).abs().sum().item(), out.min().item(), out.max().item()))
        return out

    monkeypatch.setattr(train_module, "augment", spy)
    entry = {**ENTRIES["mlp"], "augment": True}
    summary = train(store, hierarchy, "mlp", entry, settings, tmp_path / "aug", bank=_bank(store))
    assert summary["augment"] is True and summary["augmentation_vectors"] == 6
    assert len(seen) == 2 * 5  # every training minibatch of both epochs, none of the validation ones
    assert all(shift > 0 and lo >= 0 and hi <= 9 for shift, lo, hi in seen)
    a = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "aug" / "model.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="augment is true but no augmentation bank"):
        train(store, hierarchy, "mlp", entry, settings, tmp_path / "nobank")
    with pytest.raises(ValueError, match="augmentation bank has shape"):
        train(
            store, hierarchy, "mlp", entry, settings, tmp_path / "badbank", bank=np.zeros((3, 7), np.float32)
        )


def test_shuffle_block_rows_reaches_the_loader(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    blocks = []
    real = SplitData.batch_order

    def spy(self, batch_size, rng, block_rows=1, **kwargs):
        if rng is not None:  # the training split's shuffle (validation reads in order)
            blocks.append((batch_size, block_rows))
        return real(self, batch_size, rng, block_rows, **kwargs)

    monkeypatch.setattr(SplitData, "batch_order", spy)
    settings = TrainSettings.from_config(
        {
            "batch_size": 100,
            "max_epochs": 2,
            "patience": 2,
            "device": "cpu",
            "shuffle_block_rows": 16,
            "prefetch": 0,
        },
        "ce",
        0,
    )
    summary = train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    assert summary["epochs_run"] == 2 and blocks == [(100, 16), (100, 16)]
    assert "prefetch" not in settings.fingerprint() and settings.fingerprint()["shuffle_block_rows"] == 16


def test_changed_settings_ignore_a_stale_checkpoint(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=3, patience=3, device="cpu")
    with monkeypatch.context() as m:
        _signal_at_step(m, 2)
        with pytest.raises(SystemExit):
            train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    other = {**ENTRIES["linear"], "lr": 0.02}
    summary = train(store, hierarchy, "linear", other, settings, tmp_path)
    assert summary["epochs_run"] == 3 and not (tmp_path / "checkpoint.pt").exists()


KILLED_RUN = """
import sys
from hcebench.training.loop import EXIT_INTERRUPTED, TrainSettings, train
import logging
logging.basicConfig(level=logging.INFO)
settings = TrainSettings(loss="hce", seed=1, batch_size=64, max_epochs=int(sys.argv[3]), patience=1000, device="cpu")
train(sys.argv[1], sys.argv[2], "mlp", {"lr": 0.005, "weight_decay": 0.0, "n_layers": 2, "hidden": 32}, settings,
      sys.argv[4])
"""


def test_killed_training_job_resumes_from_its_checkpoint(toy, tmp_path):
    store, hierarchy = toy
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", KILLED_RUN, str(store), str(hierarchy), "20", str(out)]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():  # the first epoch's checkpoint
        assert job.poll() is None, job.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "checkpoint" in err and not (out / "model.pt").exists()
    epochs_done = len(pd.read_csv(out / "history.tsv", sep="\t"))
    assert 1 <= epochs_done < 20

    restarted = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resumed from" in restarted.stderr
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == list(range(1, 21))
    assert (out / "model.pt").exists() and not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize(("arch", "loss"), [("linear", "ce"), ("linear", "hce"), ("tabnet", "hce")])
def test_validation_loss_is_unweighted_on_hierarchy_corrected_targets(tmp_path, arch, loss):
    store, hierarchy_dir = write_toy_store(tmp_path / "data")
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)  # far from uniform: must not enter the val loss
    np.save(store / "class_weights.npy", weights)
    # lr ~0: the model stays at its initialisation, so many predictions are wrong or a subtype of the truth.
    entry = {"lr": 1e-12, "weight_decay": 0.0}
    if arch == "tabnet":
        entry = {**MORE["tabnet"], **entry, "lambda_sparse": 0.1}  # the sparsity term is part of the val loss
    settings = TrainSettings(loss=loss, seed=0, batch_size=64, max_epochs=1, patience=1, device="cpu")
    train(store, hierarchy_dir, arch, entry, settings, tmp_path / "run")
    logged = pd.read_csv(tmp_path / "run" / "history.tsv", sep="\t")["val_loss"].item()

    # By hand, from the epoch's weights (model.pt) on the whole validation split at once.
    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    model = build_model(arch, entry, 40, 5)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    val = SplitData.open(store / "val", 40, ckpt["labels"])
    with torch.no_grad():
        z, aux = logits_and_aux(model(torch.from_numpy(val.x.toarray())))
    z = z.double().numpy()
    r = LabelHierarchy.load(hierarchy_dir).reachability
    y, pred = val.y, z.argmax(1)
    target = np.where(r[y, pred] == 1, pred, y)  # the prediction if it is y or a subtype of y, else y
    assert (target != y).sum() > 5  # the correction matters in this case
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    rows = np.arange(len(y))
    if loss == "ce":
        per_cell = -np.log(p[rows, target])
    else:
        per_cell = -np.log((p * r[target]).sum(1) + 1e-6)
    expected = per_cell.mean() + (0.0 if aux is None else aux.item())
    assert logged == pytest.approx(expected, rel=1e-5)
    # Neither the class-weighted loss nor the loss on the uncorrected labels.
    weighted = (weights[target] * per_cell).sum() / weights[target].sum()
    assert abs(logged - weighted) > 1e-3
    raw = -np.log(p[rows, y]) if loss == "ce" else -np.log((p * r[y]).sum(1) + 1e-6)
    assert abs(logged - raw.mean()) > 1e-3


def test_float32_matmul_precision_reaches_torch_during_training_and_is_restored(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    seen = []
    for name in ("train_step", "predict_outputs"):
        real = getattr(train_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen.append((_name, torch.get_float32_matmul_precision()))
            return _real(*args, **kwargs)

        monkeypatch.setattr(train_module, name, spy)
    settings = TrainSettings.from_config(
        {
            "batch_size": 128,
            "max_epochs": 2,
            "patience": 2,
            "device": "cpu",
            "float32_matmul_precision": "high",
        },
        "ce",
        0,
    )
    assert (
        settings.float32_matmul_precision == "high"
        and settings.fingerprint()["float32_matmul_precision"] == "high"
    )
    before = torch.get_float32_matmul_precision()
    train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    assert {name for name, _ in seen} == {"train_step", "predict_outputs"} and len(seen) == 2 * (5 + 1)
    assert all(precision == "high" for _, precision in seen)  # every training step and validation pass
    assert torch.get_float32_matmul_precision() == before  # restored for whatever runs next
    assert (
        torch.load(tmp_path / "model.pt", weights_only=True)["settings"]["float32_matmul_precision"] == "high"
    )
    bad = TrainSettings(loss="ce", seed=0, max_epochs=1, device="cpu", float32_matmul_precision="fast")
    with pytest.raises(ValueError, match="training.float32_matmul_precision"):
        train(store, hierarchy, "linear", ENTRIES["linear"], bad, tmp_path / "bad")
    assert torch.get_float32_matmul_precision() == before


def test_a_non_finite_loss_stops_training_and_writes_no_model(tmp_path):
    store, hierarchy = write_toy_store(tmp_path / "data")
    values = store / "train" / "X.data.f32"
    data = np.fromfile(values, dtype=np.float32)
    data[5] = np.nan  # one stored value of one training cell
    data.tofile(values)
    settings = TrainSettings(loss="hce", seed=0, batch_size=1000, max_epochs=2, patience=2, device="cpu")
    with pytest.raises(TrainingError, match=r"linear, epoch 1, minibatch 0: training loss is nan"):
        train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path / "run")
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "train.json").exists()


def test_an_epoch_logs_its_progress_within(toy, tmp_path, monkeypatch, caplog):
    import functools

    from hcebench.progress import Progress

    store, hierarchy = toy
    # A line a minibatch, instead of a minute.
    monkeypatch.setattr(train_module, "Progress", functools.partial(Progress, every_s=0.0))
    settings = TrainSettings(loss="hce", seed=0, batch_size=128, max_epochs=1, patience=1, device="cpu")
    with caplog.at_level("INFO", logger="hcebench.training.loop"):
        train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path)
    lines = [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]
    # 600 training cells in minibatches of 128: a line after each but the last, which the epoch's own line closes.
    assert [line.split(", ")[0:2] for line in lines] == [
        ["linear hce seed 0", f"epoch 1: trained on: {n} of 600 cells ({100 * n / 600:.1f} %)"]
        for n in (128, 256, 384, 512)
    ]
    assert all("cells/s, about" in line and "left" in line for line in lines)


def test_a_hierarchy_of_another_label_order_is_refused_before_training(toy, tmp_path):
    """Class k of the store must be row k of R; a hierarchy built for another label order (or set) would train HCE
    against the wrong ancestors without any error, so the run stops first, naming both and the fix."""
    from hcebench.hierarchy.ontology import load_ontology
    from store_fixtures import DATA, LABELS

    store, _ = toy
    load_ontology(DATA / "five_node.obo").closure(LABELS[::-1]).save(tmp_path / "reversed")
    load_ontology(DATA / "five_node.obo").closure(LABELS[:4]).save(tmp_path / "fewer")
    settings = TrainSettings(loss="hce", seed=0, batch_size=128, max_epochs=1, patience=1, device="cpu")
    for other in ("reversed", "fewer"):
        with pytest.raises(
            ValueError, match=rf"label order of .*{other} differs from .*meta\.json; rebuild both"
        ):
            train(store, tmp_path / other, "linear", ENTRIES["linear"], settings, tmp_path / f"run_{other}")
        assert not (tmp_path / f"run_{other}" / "model.pt").exists()


def test_a_checkpoint_of_another_architecture_is_ignored_not_resumed(toy, tmp_path, monkeypatch, caplog):
    """An MLP's checkpoint copied into a linear run's directory: its weights would not even fit; the run says so,
    trains from scratch and finishes as a clean run of its own, leaving no stale checkpoint."""
    import shutil

    store, hierarchy = toy
    settings = TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=2, patience=2, device="cpu")
    with monkeypatch.context() as m:
        _signal_at_step(m, 3)
        with pytest.raises(SystemExit):
            train(store, hierarchy, "mlp", ENTRIES["mlp"], settings, tmp_path / "mlp")
    assert (tmp_path / "mlp" / "checkpoint.pt").exists()
    (tmp_path / "linear").mkdir()
    shutil.copy(tmp_path / "mlp" / "checkpoint.pt", tmp_path / "linear" / "checkpoint.pt")
    with caplog.at_level("WARNING", logger="hcebench.training.checkpoints"):
        summary = train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path / "linear")
    assert "written for another architecture entry, settings or data" in caplog.text
    clean = train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path / "clean")
    assert summary["epochs_run"] == 2 and summary["best_val_macro_f1"] == clean["best_val_macro_f1"]
    model = torch.load(tmp_path / "linear" / "model.pt", weights_only=True)
    assert model["architecture"] == "linear" and not (tmp_path / "linear" / "checkpoint.pt").exists()


def test_union_selection_f1_is_torchmetrics_macro_f1_of_the_epochs_validation_predictions(tmp_path):
    """training.selection_f1: union selects on torchmetrics' macro MulticlassF1Score (the paper's, restated in
    tests/sctab_reference.py) of the hierarchy-corrected validation predictions; the present-label average is kept."""
    from hcebench.evaluation.metrics import hierarchy_correct
    from sctab_reference import torchmetrics_macro_f1

    store, hierarchy_dir = write_toy_store(tmp_path / "data")
    entry = {"lr": 1e-12, "weight_decay": 0.0}  # at its initialisation the model predicts labels freely
    settings = TrainSettings(
        loss="ce", seed=0, batch_size=64, max_epochs=1, patience=1, device="cpu", selection_f1="union"
    )
    summary = train(store, hierarchy_dir, "linear", entry, settings, tmp_path / "run")
    history = pd.read_csv(tmp_path / "run" / "history.tsv", sep="\t")
    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    model = build_model("linear", entry, 40, 5)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    val = SplitData.open(store / "val", 40, ckpt["labels"])
    with torch.no_grad():
        pred = model(torch.from_numpy(val.x.toarray())).argmax(1).numpy()
    r = LabelHierarchy.load(hierarchy_dir).reachability
    corrected = hierarchy_correct(val.y, pred, r)
    expected = torchmetrics_macro_f1(val.y, corrected, 5)
    assert history["val_macro_f1"].item() == pytest.approx(expected, abs=1e-12)
    assert summary["best_val_macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert "val_macro_f1_present" in history


def test_drop_last_skips_the_short_last_minibatch(toy, tmp_path, monkeypatch):
    store, hierarchy = toy
    sizes = []
    real = train_module.train_step

    def spy(model, optimiser, loss_fn, x, y, *args):
        sizes.append(len(y))
        return real(model, optimiser, loss_fn, x, y, *args)

    monkeypatch.setattr(train_module, "train_step", spy)
    n_train = len(SplitData.open(store / "train", 40, LabelHierarchy.load(hierarchy).term_ids))
    for drop_last in (False, True):
        sizes.clear()
        settings = TrainSettings(
            loss="ce", seed=0, batch_size=64, max_epochs=1, patience=1, device="cpu", drop_last=drop_last
        )
        train(store, hierarchy, "linear", ENTRIES["linear"], settings, tmp_path / str(drop_last))
        assert n_train % 64 >= 2  # the toy split ends on a short batch that is trained without drop_last
        assert sizes == ([64] * (n_train // 64) + ([] if drop_last else [n_train % 64]))
