"""hcebench.models.files: torch files are read without running code; damaged or foreign ones are named errors."""

import pathlib

import numpy as np
import pytest
import torch
from hcebench.errors import CheckpointError
from hcebench.evaluation.predict import load_model
from hcebench.models.files import load_torch_file, plain
from hcebench.training.checkpoints import CHECKPOINT, UNUSABLE_SUFFIX
from hcebench.training.loop import TrainSettings, train
from store_fixtures import TOY_ENTRIES


class Payload:
    """Unpickling this creates ``marker``: stands for any code a shared file could smuggle in."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _settings(**kw):
    return TrainSettings(loss="ce", seed=0, batch_size=128, max_epochs=2, patience=2, device="cpu", **kw)


def test_plain_turns_numpy_into_python():
    value = plain({"a": np.float64(0.5), "b": [np.int64(3), (np.float32(1.5),)], "c": np.arange(2)})
    assert value == {"a": 0.5, "b": [3, (1.5,)], "c": [0, 1]}
    assert type(value["a"]) is float and type(value["b"][0]) is int and isinstance(value["b"][1], tuple)


def test_a_pickled_payload_in_model_pt_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "architecture": Payload(marker)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"model .*model\.pt was refused"):
        load_model(tmp_path / "model.pt", torch.device("cpu"))
    assert not marker.exists()


def test_a_pickled_payload_in_checkpoint_pt_is_set_aside_and_training_restarts(toy, tmp_path):
    store, hierarchy = toy
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"identity": Payload(marker)}, out / CHECKPOINT)
    summary = train(store, hierarchy, "linear", TOY_ENTRIES["linear"], _settings(), out)
    assert not marker.exists()
    assert summary["epochs_run"] == 2  # a fresh start, not a resume
    assert (out / (CHECKPOINT + UNUSABLE_SUFFIX)).exists() and not (out / CHECKPOINT).exists()


def test_a_truncated_checkpoint_is_set_aside_and_training_restarts(toy, tmp_path):
    store, hierarchy = toy
    reference = train(store, hierarchy, "linear", TOY_ENTRIES["linear"], _settings(), tmp_path / "reference")
    out = tmp_path / "run"
    out.mkdir()
    data = (tmp_path / "reference" / "model.pt").read_bytes()
    (out / CHECKPOINT).write_bytes(data[: len(data) // 2])
    summary = train(store, hierarchy, "linear", TOY_ENTRIES["linear"], _settings(), out)
    assert summary["best_val_macro_f1"] == reference["best_val_macro_f1"]  # the same run as from scratch
    assert (out / (CHECKPOINT + UNUSABLE_SUFFIX)).exists()


def test_a_truncated_or_foreign_model_is_an_error_naming_the_file(toy, tmp_path):
    store, hierarchy = toy
    train(store, hierarchy, "linear", TOY_ENTRIES["linear"], _settings(), tmp_path)
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pt is truncated or corrupt.*rerun"):
        load_model(tmp_path / "cut.pt", torch.device("cpu"))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt lacks .*state_dict"):
        load_model(tmp_path / "other.pt", torch.device("cpu"))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not hcebench's dict"):
        load_torch_file(tmp_path / "list.pt", "model")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_torch_file(tmp_path / "missing.pt", "model")


FULL_DISK_WRITER = """
import resource, signal, sys, torch
from hcebench.models.files import write_torch_file
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the OS refuses writes past 4 KiB, as a full disk would
write_torch_file({"state_dict": {"w": torch.zeros(100_000)}}, sys.argv[1], "model")
"""


def test_a_model_write_the_disk_refuses_says_so_and_names_the_file(tmp_path):
    import os
    import subprocess
    import sys

    final = tmp_path / "model.pt"
    final.write_bytes(b"old model")
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1] / "workflow")}
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(final)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0
    assert last.startswith(
        "OSError: [Errno 28] No space left on device or a file-size limit reached: writing the "
        f"model {final} failed with "
    ), last
    assert final.read_bytes() == b"old model" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]
