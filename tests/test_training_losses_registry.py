"""The loss registry: every loss is complete, configured only through known keys, numerically sound (weights,
reductions, bf16, gradients, internal-node labels) and trains end to end with its settings."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from dag_fixtures import R_DAG, A, B, C, D, E
from hcebench.axes import LOSSES
from hcebench.config import load_config, load_schema
from hcebench.data.store import SplitData
from hcebench.errors import ConfigError
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.models import build_model, logits_and_aux
from hcebench.training.loop import TrainSettings, train
from hcebench.training.losses import (
    REGISTRY,
    check_loss_settings,
    configurable_fields,
    hce_stable,
    hierarchy_corrected_targets,
    loss_module,
    loss_settings,
    make_loss,
)
from hcebench.training.losses.aggregated import aggregated_cross_entropy
from hcebench.training.losses.hace import hace_targets
from hcebench.training.losses.hxe import hxe_targets
from hcebench.training.losses.soft_labels import soft_label_targets
from store_fixtures import write_toy_store

ROOT = Path(__file__).parents[1]
HIERARCHICAL = ("hce", "hxe", "hace")  # aggregate through R: mass on subtypes of the label is free


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- what every entry must provide ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_entry_is_complete(name):
    module = loss_module(name)
    assert dataclasses.is_dataclass(module.Hyperparameters)
    for field in dataclasses.fields(module.Hyperparameters):
        assert field.default is not dataclasses.MISSING, f"{name}.{field.name} needs a default"
    assert module.FORMULA.strip() and module.REFERENCE.strip() and callable(module.build)
    assert len((module.__doc__ or "").split()) >= 20  # says what the loss is and how it treats a DAG


def test_layout_lists_every_registered_loss():
    assert tuple(LOSSES) == tuple(REGISTRY)


def test_schema_declares_each_loss_hyperparameters_as_the_registry_does():
    # hcebench.config checks losses: entries against the schema (it may not import torch): the two must agree.
    declared = load_schema()["properties"]["losses"]["properties"]
    assert set(declared) == set(REGISTRY)
    for name in REGISTRY:
        assert set(declared[name]["properties"]) == set(configurable_fields(name)), name


def test_settings_fill_registry_defaults():
    assert loss_settings("hxe") == {"alpha": 0.1}
    assert loss_settings("hxe", {"alpha": 0.5}) == {"alpha": 0.5}
    assert loss_settings("soft_labels") == {"beta": 20.0}
    assert loss_settings("hace") == {"epsilon": 0.1}
    assert loss_settings("ce") == {} and loss_settings("hce") == {}  # hce's form is training.hce_form


def test_bad_names_and_values_name_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"training\.losses.*'focal'.*soft_labels"):
        make_loss("focal", R_DAG)
    with pytest.raises(
        ConfigError, match=r"losses\.hxe: unknown hyperparameter 'beta'; hxe accepts \['alpha'\]"
    ):
        make_loss("hxe", R_DAG, settings={"beta": 1.0})
    with pytest.raises(ConfigError, match=r"losses\.hce\.form: set it with training\.hce_form"):
        make_loss("hce", R_DAG, settings={"form": "stable"})
    with pytest.raises(ConfigError, match=r"losses\.ce: unknown hyperparameter 'x'; ce accepts none"):
        make_loss("ce", R_DAG, settings={"x": 1})
    with pytest.raises(ConfigError, match=r"losses\.hxe\.alpha"):
        make_loss("hxe", R_DAG, settings={"alpha": -1.0})
    with pytest.raises(ConfigError, match=r"losses\.hace\.epsilon"):
        make_loss("hace", R_DAG, settings={"epsilon": 1.0})
    with pytest.raises(ConfigError, match=r"losses\.soft_labels\.beta"):
        make_loss("soft_labels", R_DAG, settings={"beta": 0})
    with pytest.raises(ConfigError, match=r"losses\.focal: unknown loss"):
        check_loss_settings({"losses": {"focal": {}}})
    with pytest.raises(ValueError, match="reachability"):
        make_loss("hxe", None)
    # training.hce_form still reaches HCE, and only HCE
    assert make_loss("hce", R_DAG, hce_form="stable").form == "stable"
    with pytest.raises(ValueError, match=r"training\.hce_form.*'exact'"):
        make_loss("hce", R_DAG, hce_form="exact")
    make_loss("hxe", R_DAG, hce_form="exact")  # ignored by a loss without a form


@pytest.mark.parametrize(
    "losses, message",
    [
        (
            {"focal": {}},
            # the choices are the registry's, whatever it holds (a recipe's added loss included)
            r"losses\.focal: unknown loss; choose from " + re.escape(str(list(LOSSES))),
        ),
        (
            {"hxe": {"beta": 3}},
            r"losses\.hxe: unknown hyperparameter\(s\) \['beta'\]; hxe accepts \['alpha'\]",
        ),
        ({"hce": {"form": "stable"}}, r"losses\.hce: .*training\.hce_form"),
        ({"soft_labels": {"beta": -1}}, r"losses\.soft_labels\.beta"),
    ],
)
def test_config_rejects_bad_losses_blocks(losses, message):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["losses"] = losses
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_config_accepts_the_family_with_settings():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["training"]["losses"] = list(LOSSES)
    config["losses"] = {"hxe": {"alpha": 0.2}, "soft_labels": {}}
    loaded = load_config(copy.deepcopy(config))
    assert loaded["losses"] == {"hxe": {"alpha": 0.2}, "soft_labels": {}}
    check_loss_settings(loaded)
    del config["losses"]
    assert load_config(config)["losses"] == {}  # default: every loss at its registry defaults


def test_train_settings_take_the_loss_entry():
    training = {"hce_form": "stable", "batch_size": 64}
    settings = TrainSettings.from_config(training, "hxe", 0, loss_config={"alpha": 0.3})
    assert settings.loss_settings == {"alpha": 0.3}
    assert settings.fingerprint()["loss_settings"] == {"alpha": 0.3}  # a changed setting is a changed run
    assert TrainSettings.from_config(training, "hace", 0).loss_settings == {"epsilon": 0.1}
    with pytest.raises(ConfigError, match=r"losses\.hace: unknown hyperparameter 'alpha'"):
        TrainSettings.from_config(training, "hace", 0, loss_config={"alpha": 0.3})


# -- numerics shared by every loss ------------------------------------------------------------------------------
def random_batch(seed: int, n: int = 24, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 5, generator=g, dtype=torch.float64) * scale
    return z, torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_class_weighted_mean_sum_and_none(name):
    z, y = random_batch(0)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    per_cell = make_loss(name, R_DAG)  # unweighted mean of one cell = its loss
    unweighted = torch.stack([per_cell(z[i : i + 1], y[i : i + 1]) for i in range(len(y))])
    weighted = make_loss(name, R_DAG, class_weights=w)
    expected = (w[y].double() * unweighted).sum() / w[y].double().sum()
    assert weighted(z, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert per_cell(z, y).item() == pytest.approx(unweighted.mean().item(), rel=1e-6)
    # a class weight of 0 removes its cells from the mean
    zero_d = make_loss(name, R_DAG, class_weights=torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]))
    keep = y != D
    assert zero_d(z, y).item() == pytest.approx(unweighted[keep].mean().item(), rel=1e-6)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_bf16_logits_are_computed_in_float32(name):
    z, y = random_batch(1)
    z16 = z.to(torch.bfloat16)
    loss = make_loss(name, R_DAG, class_weights=torch.tensor([1.0, 2.0, 1.0, 0.5, 1.5]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(z16, y)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(loss(z16.float(), y).item(), abs=1e-6)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_gradients_are_finite_and_correct(name):
    z, y = random_batch(2, n=6)
    loss = make_loss(name, R_DAG, class_weights=torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])).double()
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z.clone().requires_grad_(),))
    # extreme float32 logits: finite value and gradient
    for logits in (
        [[1e4, -1e4, 0.0, -1e4, 3e3]],
        [[-80.0, 0.0, 0.0, 0.0, 0.0]],
        [[0.0, 0.0, 0.0, 200.0, -200.0]],
    ):
        x = torch.tensor(logits * 5, requires_grad=True)
        out = make_loss(name, R_DAG)(x, torch.tensor([A, B, C, D, E]))
        (grad,) = torch.autograd.grad(out, x)
        assert torch.isfinite(out) and torch.isfinite(grad).all(), (name, logits)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_validation_loss_on_hierarchy_corrected_targets(name):
    # The loop's validation loss: unweighted, on the corrected targets (D for truth B predicted D, E for the root A
    # predicted E); finite for every loss and equal to the loss of those targets.
    z, _ = random_batch(3, n=5)
    truth, pred = torch.tensor([B, C, A, D, E]), torch.tensor([D, B, E, B, E])
    targets = hierarchy_corrected_targets(truth, pred, R_DAG)
    assert targets.tolist() == [D, C, E, D, E]
    val = make_loss(name, R_DAG, class_weights=None)(z, targets)
    assert torch.isfinite(val)
    per_cell = [make_loss(name, R_DAG)(z[i : i + 1], targets[i : i + 1]).item() for i in range(5)]
    assert val.item() == pytest.approx(float(np.mean(per_cell)), rel=1e-6)


@pytest.mark.parametrize("name", HIERARCHICAL)
def test_mass_moved_into_the_labels_subtree_is_free(name):
    # Cells labelled at internal nodes B and C: moving B's own mass to its subtypes D and E (C's to E) changes
    # nothing, as HCE promises; CE would charge for it.
    base = torch.log(torch.tensor([0.10, 0.20, 0.30, 0.15, 0.25], dtype=torch.float64))
    b_moved = torch.log(torch.tensor([0.10, 0.001, 0.30, 0.249, 0.35], dtype=torch.float64))
    c_moved = torch.log(torch.tensor([0.10, 0.20, 0.001, 0.15, 0.549], dtype=torch.float64))
    loss = make_loss(name, R_DAG)
    assert loss(b_moved[None], torch.tensor([B])).item() == pytest.approx(
        loss(base[None], torch.tensor([B])).item()
    )
    assert loss(c_moved[None], torch.tensor([C])).item() == pytest.approx(
        loss(base[None], torch.tensor([C])).item()
    )
    ce = make_loss("ce", R_DAG)
    assert ce(b_moved[None], torch.tensor([B])).item() > ce(base[None], torch.tensor([B])).item() + 1


@pytest.mark.parametrize("name", list(REGISTRY))
def test_buffers_follow_the_module(name):
    loss = make_loss(name, R_DAG, class_weights=np.ones(5))
    assert all(b.dtype == torch.float32 or b.dtype == torch.bool for b in loss.buffers())
    moved = loss.to(torch.float64)
    assert all(b.dtype in (torch.float64, torch.bool) for b in moved.buffers())


# -- properties on seeded random DAGs ---------------------------------------------------------------------------
def random_reachability(rng: np.random.Generator, k: int) -> np.ndarray:
    adj = np.triu(rng.random((k, k)) < 0.35, 1)  # i -> j only for i < j: acyclic, often several parents
    r = np.eye(k, dtype=bool) | adj
    for _ in range(k):
        r = r | ((r.astype(int) @ r.astype(int)) > 0)
    return r.astype(np.uint8)


def test_target_matrices_on_random_dags():
    rng = np.random.default_rng(7)
    for _ in range(60):
        k = int(rng.integers(2, 12))
        r = random_reachability(rng, k)
        ancestors = r.T.astype(bool)  # [y, a]: a is y or an ancestor of y
        for t in (hxe_targets(r, float(rng.uniform(0, 2))), hace_targets(r, float(rng.uniform(0, 0.9)))):
            assert t.sum(axis=1) == pytest.approx(np.ones(k))
            assert np.all(t >= 0) and np.all(t[~ancestors] == 0)
        q = soft_label_targets(r, float(rng.uniform(0.5, 30)))
        assert q.sum(axis=1) == pytest.approx(np.ones(k))
        for y in range(k):
            assert np.allclose(q[y, r[y].astype(bool)], q[y].max())  # y and its subtypes on top


def test_aggregated_losses_never_exceed_hce_on_random_dags():
    rng = np.random.default_rng(8)
    for _ in range(60):
        k = int(rng.integers(2, 12))
        r = random_reachability(rng, k)
        z = torch.tensor(rng.uniform(-8, 8, (16, k)))
        y = torch.tensor(rng.integers(0, k, 16))
        hce = hce_stable(z, y, r, reduction="none")
        for t in (hxe_targets(r, 0.7), hace_targets(r, 0.4)):
            loss = aggregated_cross_entropy(z, y, torch.as_tensor(r).double(), t, reduction="none")
            assert torch.all(loss <= hce + 1e-9) and torch.all(loss >= -1e-9)


# -- end to end: the loop trains every loss with its settings -----------------------------------------------------
@pytest.mark.parametrize(
    ("name", "settings"),
    [("soft_labels", {"beta": 5.0}), ("hxe", {"alpha": 0.7}), ("hace", {"epsilon": 0.4})],
)
def test_the_loop_trains_it_and_logs_its_validation_loss(tmp_path, name, settings):
    store, hierarchy_dir = write_toy_store(tmp_path / "data")
    np.save(store / "class_weights.npy", np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32))
    entry = {"lr": 1e-12, "weight_decay": 0.0}  # the model stays at its initialisation: mixed predictions
    run = TrainSettings.from_config(
        {"batch_size": 64, "max_epochs": 1, "patience": 1, "device": "cpu"}, name, 0, loss_config=settings
    )
    train(store, hierarchy_dir, "linear", entry, run, tmp_path / "run")
    logged = pd.read_csv(tmp_path / "run" / "history.tsv", sep="\t")
    assert np.isfinite(logged[["train_loss", "val_loss"]].to_numpy()).all()

    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert ckpt["settings"]["loss"] == name and ckpt["settings"]["loss_settings"] == settings
    model = build_model("linear", entry, 40, 5)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    val = SplitData.open(store / "val", 40, ckpt["labels"])
    with torch.no_grad():
        z, _ = logits_and_aux(model(torch.from_numpy(val.x.toarray())))
    r = LabelHierarchy.load(hierarchy_dir).reachability
    targets = hierarchy_corrected_targets(torch.from_numpy(val.y), z.argmax(1), r)
    assert (targets != torch.from_numpy(val.y)).sum() > 5  # the correction matters in this case
    expected = make_loss(name, r, None, settings=settings)(z, targets).item()
    assert logged["val_loss"].item() == pytest.approx(expected, rel=1e-5)
    # the settings reached the loss: the defaults give another value
    assert make_loss(name, r, None)(z, targets).item() != pytest.approx(expected, rel=1e-3)
