"""The authors' checkpoints as models (hcebench.training.imported): Lightning checkpoints written here in the layout
of scTab's cellnet classifiers (the exact key names of cellnet/models.py and cellnet/tabnet/tab_network.py), read
safely, mapped onto hcebench's networks with logits bit-identical to the reference forward pass, and scored by
``evaluate`` into summary.tsv like a trained model.

Linear and MLP: the reference forward pass is restated below (``RefMLP``: scTab's ``MLP`` class, the same module
names, hence the same state_dict keys). TabNet: the reference network is not restated; hcebench's TabNet is
bit-identical to scTab's given the same weights (an earlier audit ran both), so the test writes an hcebench TabNet's
weights under scTab's key names (``sctab_tabnet_state``, the names of tab_network.py) and checks the import puts
every tensor back where it came from: equal logits then mean the mapping is exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hcebench.errors import CheckpointError
from hcebench.evaluation.model_evaluation import EvaluationFiles, evaluate_model
from hcebench.evaluation.predict import load_model
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.models import build_model
from hcebench.report.aggregate import aggregate_runs
from hcebench.training.imported import import_checkpoint, read_lightning_checkpoint
from torch import nn

N_GENES, N_LABELS = 40, 5


class RefMLP(nn.Module):
    """scTab's cellnet.models.MLP restated: n_hidden × (Linear, BatchNorm1d, SiLU, Dropout) as ``encoder``, then
    ``linear``."""

    def __init__(self, input_dim, output_dim, hidden_size, n_hidden, dropout):
        super().__init__()
        modules, width = [], input_dim
        for _ in range(n_hidden):
            modules += [
                nn.Linear(width, hidden_size),
                nn.BatchNorm1d(hidden_size),
                nn.SiLU(),
                nn.Dropout(dropout),
            ]
            width = hidden_size
        self.encoder = nn.Sequential(*modules)
        self.linear = nn.Linear(hidden_size, output_dim)

    def forward(self, x):
        return self.linear(self.encoder(x))


def randomise(module: nn.Module, seed: int) -> None:
    """Every parameter and batch-norm statistic drawn at random, so evaluation mode uses all of them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(17)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)


def sctab_tabnet_state(model, n_shared: int, n_independent: int, n_steps: int) -> dict:
    """An hcebench TabNet's tensors under scTab's TabNet key names (tab_network.py: TabNet.encoder (TabNetEncoder):
    initial_bn, initial_splitter and feat_transformers.<s> (FeatTransformer: shared / specifics GLU_Block,
    glu_layers.<i>.fc, glu_layers.<i>.bn.bn (GBN), the shared block also holding shared_layers.<i>),
    att_transformers.<s> (fc, bn.bn); final_mapping)."""
    ours = model.state_dict()
    out = {}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for name in bn:
        out[f"encoder.initial_bn.{name}"] = ours[f"input_bn.{name}"]
    for t, prefix in enumerate(
        ["encoder.initial_splitter"] + [f"encoder.feat_transformers.{s}" for s in range(n_steps)]
    ):
        for b in range(n_shared + n_independent):
            block = (
                f"{prefix}.shared.glu_layers.{b}"
                if b < n_shared
                else f"{prefix}.specifics.glu_layers.{b - n_shared}"
            )
            out[f"{block}.fc.weight"] = ours[f"transformers.{t}.blocks.{b}.fc.weight"]
            if b < n_shared:
                out[f"{prefix}.shared.shared_layers.{b}.weight"] = ours[
                    f"transformers.{t}.blocks.{b}.fc.weight"
                ]
            for name in bn:
                out[f"{block}.bn.bn.{name}"] = ours[f"transformers.{t}.blocks.{b}.bn.bn.{name}"]
    for s in range(n_steps):
        out[f"encoder.att_transformers.{s}.fc.weight"] = ours[f"attention.{s}.fc.weight"]
        for name in bn:
            out[f"encoder.att_transformers.{s}.bn.bn.{name}"] = ours[f"attention.{s}.bn.bn.{name}"]
    out["final_mapping.weight"] = ours["head.weight"]
    return out


def lightning_checkpoint(path, network: dict, hyper_parameters: dict, reachability: np.ndarray) -> None:
    """A checkpoint as Lightning writes one of scTab's classifiers: the network under ``classifier.``, the module's
    buffers, the hyperparameters with the optimiser and scheduler classes, and the trainer's state."""
    state = {f"classifier.{k}": v.clone() for k, v in network.items()}
    state["class_weights"] = torch.ones(N_LABELS)
    state["child_lookup"] = torch.from_numpy(reachability.astype("f4"))
    state["child_lookup_transposed"] = state["child_lookup"].T.contiguous()
    hp = {
        "gene_dim": N_GENES,
        "type_dim": N_LABELS,
        "train_set_size": 600,
        "val_set_size": 150,
        "batch_size": 2048,
        "learning_rate": 0.002,
        "weight_decay": 0.05,
        "optimizer": torch.optim.AdamW,
        "lr_scheduler": torch.optim.lr_scheduler.StepLR,
        "lr_scheduler_kwargs": {"step_size": 1, "gamma": 0.9},
        **hyper_parameters,
    }
    torch.save(
        {
            "epoch": 7,
            "global_step": 700,
            "pytorch-lightning_version": "2.1.0",
            "state_dict": state,
            "hyper_parameters": hp,
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.002}]}],
            "lr_schedulers": [{"step_size": 1, "gamma": 0.9, "last_epoch": 7}],
        },
        path,
    )


TABNET = {"n_d": 8, "n_a": 4, "n_steps": 2, "n_independent": 2, "n_shared": 2, "virtual_batch_size": 16}


def reference(kind: str):
    """(the reference network in scTab's layout, its logits function, checkpoint hyperparameters, the entry)."""
    if kind == "linear":
        ref = nn.Linear(N_GENES, N_LABELS)
        randomise(ref, 1)
        return ref.state_dict(), ref, {}, {"model": "linear"}
    if kind == "mlp":
        ref = RefMLP(N_GENES, N_LABELS, hidden_size=16, n_hidden=3, dropout=0.2)
        randomise(ref, 2)
        hp = {"hidden_size": 16, "n_hidden": 3, "dropout": 0.2, "augment_training_data": True}
        return ref.state_dict(), ref, hp, {"model": "mlp"}
    ours = build_model("tabnet", {"lr": 1.0, "weight_decay": 0.0, **TABNET, "gamma": 1.5}, N_GENES, N_LABELS)
    randomise(ours, 3)
    ours.eval()
    hp = {
        **TABNET,
        "gamma": 1.5,
        "epsilon": 1e-15,
        "momentum": 0.02,
        "mask_type": "entmax",
        "lambda_sparse": 1e-5,
    }
    state = sctab_tabnet_state(ours, TABNET["n_shared"], TABNET["n_independent"], TABNET["n_steps"])
    return state, lambda x: ours(x)[0], hp, {"model": "tabnet"}


@pytest.mark.parametrize("kind", ["linear", "mlp", "tabnet"])
@pytest.mark.parametrize("loss", ["ce", "hce"])
def test_imported_checkpoint_gives_the_reference_logits_bit_for_bit(toy, tmp_path, kind, loss):
    store, hierarchy_dir = toy
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    network, forward, hp, entry = reference(kind)
    if isinstance(forward, nn.Module):
        forward.eval()
    ckpt = tmp_path / f"{loss}.ckpt"
    lightning_checkpoint(
        ckpt, network, {**hp, "use_hierarchical_loss": loss == "hce"}, hierarchy.reachability
    )
    genes = [f"ENSG{i:011d}" for i in range(N_GENES)]
    summary = import_checkpoint(
        ckpt,
        tmp_path / "model",
        architecture=f"paper_{kind}",
        entry=entry,
        loss=loss,
        seed=0,
        hierarchy=hierarchy,
        genes=genes,
    )
    assert summary["reference_architecture"] == kind and summary["best_epoch"] == 7
    assert summary["child_matrix_vs_R_disagreements"] == 0
    model, recorded = load_model(tmp_path / "model" / "model.pt", torch.device("cpu"))
    assert recorded["settings"]["loss"] == loss and recorded["architecture"] == f"paper_{kind}"
    x = torch.rand(64, N_GENES, generator=torch.Generator().manual_seed(9)) * 3
    with torch.no_grad():
        expected = forward(x)
        got = model(x)
    got = got[0] if isinstance(got, tuple) else got
    assert torch.equal(got, expected)
    assert not torch.equal(got, torch.zeros_like(got))


def test_checkpoint_of_another_loss_or_shape_is_refused(toy, tmp_path):
    store, hierarchy_dir = toy
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    network, _, hp, entry = reference("mlp")
    ckpt = tmp_path / "m.ckpt"
    lightning_checkpoint(ckpt, network, {**hp, "use_hierarchical_loss": True}, hierarchy.reachability)
    genes = [f"ENSG{i:011d}" for i in range(N_GENES)]
    run = dict(architecture="paper_mlp", entry=entry, seed=0, hierarchy=hierarchy)
    with pytest.raises(CheckpointError, match=r"use_hierarchical_loss=True \(hce\), not ce"):
        import_checkpoint(ckpt, tmp_path / "a", loss="ce", genes=genes, **run)
    with pytest.raises(CheckpointError, match="it reads 40 genes, the run's store has 39"):
        import_checkpoint(ckpt, tmp_path / "b", loss="hce", genes=genes[:-1], **run)
    with pytest.raises(CheckpointError, match="set its model: mlp"):
        import_checkpoint(
            ckpt, tmp_path / "c", loss="hce", genes=genes, **{**run, "entry": {"model": "linear"}}
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class Payload:
    def __reduce__(self):
        return (print, ("ran code",))


def test_a_checkpoint_holding_other_objects_is_refused_unread(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {"classifier.weight": torch.ones(2, 2)}, "hyper_parameters": {"x": Payload()}}, path
    )
    with pytest.raises(CheckpointError, match=r"refused: it holds Python objects \['builtins.print'\]"):
        read_lightning_checkpoint(path)
    (tmp_path / "broken.ckpt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.ckpt"):
        read_lightning_checkpoint(tmp_path / "broken.ckpt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.ones(1)}, plain)
    with pytest.raises(CheckpointError, match="has no state_dict"):
        read_lightning_checkpoint(plain)
    ok = tmp_path / "ok.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"optimizer": torch.optim.AdamW}}, ok)
    read = read_lightning_checkpoint(ok)["hyper_parameters"]["optimizer"]
    assert read is not torch.optim.AdamW and read.qualified_name == "torch.optim.adamw.AdamW"


def test_imported_model_is_evaluated_and_appears_in_the_summary(toy, tmp_path):
    store, hierarchy_dir = toy
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    network, _, hp, entry = reference("linear")
    genes = [f"ENSG{i:011d}" for i in range(N_GENES)]
    metrics, histories = [], []
    for loss in ("ce", "hce"):
        ckpt = tmp_path / f"{loss}.ckpt"
        lightning_checkpoint(
            ckpt, network, {**hp, "use_hierarchical_loss": loss == "hce"}, hierarchy.reachability
        )
        out = tmp_path / "models" / "paper_linear" / loss / "seed0"
        import_checkpoint(
            ckpt,
            out,
            architecture="paper_linear",
            entry=entry,
            loss=loss,
            seed=0,
            hierarchy=hierarchy,
            genes=genes,
        )
        files = EvaluationFiles(
            predictions=[str(tmp_path / f"pred_{loss}.parquet")],
            metrics=[str(tmp_path / f"metrics/paper_linear/{loss}/seed0/test.tsv")],
            decoded=[],
            decoded_metrics=[],
            decoder=None,
        )
        (tmp_path / f"metrics/paper_linear/{loss}/seed0").mkdir(parents=True)
        evaluate_model(
            out / "model.pt",
            hierarchy_dir,
            {"test": str(store / "test")},
            ["test"],
            files,
            architecture="paper_linear",
            loss=loss,
            seed=0,
            device=torch.device("cpu"),
        )
        metrics += files.metrics
        histories.append(str(out / "history.tsv"))
    summary = aggregate_runs(
        metrics, histories, tmp_path / "metrics.tsv", tmp_path / "summary.tsv", tmp_path / "histories.tsv"
    )
    written = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert written[["architecture", "loss"]].values.tolist() == [
        ["paper_linear", "ce"],
        ["paper_linear", "hce"],
    ]
    # The same weights under both losses: the same score, which is the weights' own (not a constant model's).
    assert written["id_macro_f1_mean"].nunique() == 1 and 0 < written["id_macro_f1_mean"].iloc[0] < 1
    assert summary["id_macro_f1_mean"].tolist() == written["id_macro_f1_mean"].tolist()
