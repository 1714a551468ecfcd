"""Models beyond linear/MLP: entmax-1.5 against its limits, TabNet's masks and regulariser, the transformer's padding."""

import numpy as np
import pytest
import torch
from hcebench.errors import ConfigError
from hcebench.models import build_model, check_hyperparameters, logits_and_aux
from hcebench.models.entmax import entmax15, entmax_bisect


def sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the simplex (α = 2), written out independently of the module."""
    srt, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cumsum = srt.cumsum(-1)
    support = (1 + k * srt > cumsum).sum(-1, keepdim=True)
    tau = (cumsum.gather(-1, support - 1) - 1) / support
    return torch.clamp(z - tau, min=0)


@pytest.fixture
def scores():
    return torch.randn(32, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3


def test_entmax15_is_a_sparse_distribution(scores):
    p = entmax15(scores)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(32, dtype=torch.float64))
    assert (p == 0).any(dim=-1).all()  # scores spread over ±9 leave most entries outside the support


def test_entmax15_matches_bisection_and_a_hand_case(scores):
    torch.testing.assert_close(entmax15(scores), entmax_bisect(scores, 1.5, n_iter=80))
    # Two scores 2 apart: x/2 = (0, -1), τ = -1 leaves (1, 0); equal scores give (½, ½).
    torch.testing.assert_close(entmax15(torch.tensor([[2.0, 0.0]])), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(entmax15(torch.tensor([[0.5, 0.5]])), torch.tensor([[0.5, 0.5]]))


def test_entmax15_beyond_the_partial_sort():
    # 1,000 near-equal scores: the support exceeds the top-k shortcut, so the full sort must take over.
    z = torch.randn(4, 1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e-3
    p = entmax15(z)
    assert ((p > 0).sum(-1) > 128).all()
    torch.testing.assert_close(p, entmax_bisect(z, 1.5, n_iter=80))


def test_entmax15_sorts_only_the_rows_beyond_the_partial_sort():
    # A batch of sharp rows (support of a few) with two flat ones (support > 128) among them, along either axis:
    # each row equals entmax of that row alone, so the flat rows no longer change how the sharp ones are solved.
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(6, 1000, generator=gen, dtype=torch.float64) * 3
    z[[1, 4]] *= 1e-3
    p = entmax15(z)
    support = (p > 0).sum(-1)
    assert (support[[1, 4]] > 128).all() and (support[[0, 2, 3, 5]] < 128).all()
    for row in range(6):
        torch.testing.assert_close(p[row], entmax15(z[row : row + 1])[0], rtol=0, atol=0)
    torch.testing.assert_close(p, entmax_bisect(z, 1.5, n_iter=80))
    torch.testing.assert_close(entmax15(z.T.contiguous(), dim=0), p.T, rtol=0, atol=0)
    # Batched over a leading dimension too (rows picked across two axes).
    torch.testing.assert_close(entmax15(z.view(2, 3, 1000)), p.view(2, 3, 1000), rtol=0, atol=0)


def test_entmax15_sorts_wide_rows_a_block_at_a_time(monkeypatch):
    # Seven flat rows among sharp ones, sorted in full two rows at a time: the transient of the full sort is set by
    # the block, not by how many rows the trained weights make wide, and every row's answer is unchanged.
    from hcebench.models import entmax

    gen = torch.Generator().manual_seed(3)
    z = torch.randn(10, 1000, generator=gen, dtype=torch.float64) * 3
    wide = [0, 2, 3, 5, 6, 8, 9]
    z[wide] *= 1e-3
    whole = entmax15(z)
    widths = []
    solve = entmax._tau15_sorted

    def spy(srt, dim):
        widths.append(tuple(srt.movedim(dim, -1).shape))
        return solve(srt, dim)

    monkeypatch.setattr(entmax, "_WIDE_ROWS", 2)
    monkeypatch.setattr(entmax, "_tau15_sorted", spy)
    p = entmax15(z)
    assert widths == [(10, 128), (2, 1000), (2, 1000), (2, 1000), (1, 1000)]
    torch.testing.assert_close(p, whole, rtol=0, atol=0)
    for row in range(10):
        torch.testing.assert_close(p[row], entmax15(z[row : row + 1])[0], rtol=0, atol=0)
    torch.testing.assert_close(entmax15(z.view(2, 5, 1000)), p.view(2, 5, 1000), rtol=0, atol=0)


def test_entmax_limits_are_softmax_and_sparsemax(scores):
    torch.testing.assert_close(
        entmax_bisect(scores, 1.0001, n_iter=100), torch.softmax(scores, -1), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(entmax_bisect(scores, 2.0, n_iter=80), sparsemax(scores))
    # Sparsity orders softmax < 1.5-entmax < sparsemax.
    nnz = [(p > 0).sum().item() for p in (torch.softmax(scores, -1), entmax15(scores), sparsemax(scores))]
    assert nnz[0] > nnz[1] > nnz[2]


def test_entmax15_gradient(scores):
    z = scores[:4, :8].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(entmax15, (z,))


def test_entmax15_bf16_input_computes_in_float32():
    p = entmax15(torch.randn(3, 20).bfloat16())
    assert p.dtype == torch.float32
    torch.testing.assert_close(p.sum(-1), torch.ones(3))


TABNET = {
    "lr": 0.01,
    "weight_decay": 0.0,
    "n_d": 8,
    "n_a": 8,
    "n_steps": 2,
    "n_shared": 1,
    "n_independent": 1,
    "virtual_batch_size": 16,
    "lambda_sparse": 1e-3,
}


def test_tabnet_returns_logits_and_sparsity_term():
    torch.manual_seed(0)
    model = build_model("tabnet", TABNET, 30, 5)
    logits, aux = logits_and_aux(model(torch.rand(40, 30)))
    assert logits.shape == (40, 5)
    # aux is λ × mean mask entropy: positive, and at most λ log(n_genes).
    assert 0 < aux.item() <= TABNET["lambda_sparse"] * np.log(30) + 1e-9
    aux.backward()
    assert model.attention[0].fc.weight.grad.abs().sum() > 0


def test_tabnet_scTab_defaults_build():
    model = build_model("tabnet", {"lr": 5e-3, "weight_decay": 0.05}, 200, 7)
    assert model.hp.n_d == 128 and model.hp.n_a == 64 and model.hp.gamma == 1.3
    assert len(model.transformers[0].blocks) == 3 + 5
    # The shared blocks are the same Linear objects in every step.
    assert model.transformers[0].blocks[0].fc is model.transformers[1].blocks[0].fc


def _std(fan_in: int, fan_out: int, gain: float) -> float:
    """The std of torch's xavier-normal: gain · √(2 / (fan_in + fan_out))."""
    return gain * np.sqrt(2.0 / (fan_in + fan_out))


def test_tabnet_initialisation_is_sctabs():
    torch.manual_seed(0)
    model = build_model("tabnet", {"lr": 5e-3, "weight_decay": 0.05}, 3000, 60)  # scTab's widths and blocks
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.bias is None for m in linears)  # no bias anywhere, the final mapping included
    glu = {id(block.fc) for t in model.transformers for block in t.blocks}
    checked = set()
    for m in linears:
        fan_in, fan_out = m.in_features, m.out_features
        if id(m) in glu:  # fan_out counts the GLU's doubled width (scTab: initialize_glu(fc, in, 2 · out))
            assert fan_out == 2 * (128 + 64)
            gain = np.sqrt((fan_in + fan_out) / np.sqrt(fan_in))
        else:  # attentive transformer (64 → genes) and final mapping (128 → classes)
            gain = np.sqrt((fan_in + fan_out) / np.sqrt(4 * fan_in))
        w = m.weight.detach().double()
        expected = _std(fan_in, fan_out, gain)
        assert abs(w.std().item() / expected - 1) < (0.02 if w.numel() > 50_000 else 0.05), (fan_in, fan_out)
        assert abs(w.mean().item()) < 3 * expected / np.sqrt(w.numel())
        checked.add((fan_in, fan_out, id(m) in glu))
    # Shared first layer (genes → 384), the other GLU layers (192 → 384), attention (64 → genes), head (128 → 60).
    assert checked == {(3000, 384, True), (192, 384, True), (64, 3000, False), (128, 60, False)}
    # The closed forms: std √2 · fan_in^(−1/4) for GLU layers, fan_in^(−1/4) otherwise.
    assert model.transformers[0].blocks[0].fc.weight.std().item() == pytest.approx(
        np.sqrt(2) * 3000**-0.25, rel=0.02
    )
    assert model.attention[0].fc.weight.std().item() == pytest.approx(64**-0.25, rel=0.02)


def test_tabnet_torch_init_keeps_pytorchs_default_and_bad_schemes_are_named():
    torch.manual_seed(0)
    model = build_model("tabnet", {"lr": 5e-3, "weight_decay": 0.05, "init": "torch"}, 3000, 60)
    first = model.transformers[0].blocks[0].fc.weight
    # nn.Linear's default: uniform(±1/√fan_in), std 1/√(3·fan_in), far below scTab's √2 · fan_in^(−1/4).
    assert first.std().item() == pytest.approx(1 / np.sqrt(3 * 3000), rel=0.02)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))  # scTab's structure
    with pytest.raises(ValueError, match="init"):
        build_model("tabnet", {"lr": 5e-3, "weight_decay": 0.05, "init": "xavier"}, 30, 5)


def test_ghost_batch_norm_chunks_like_sctab():
    from hcebench.models.tabnet import GhostBatchNorm

    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)) * 4 + 1
    gbn = GhostBatchNorm(3, virtual_batch_size=16, momentum=0.02).train()
    # 50 // 16 = 3 chunks, as torch.chunk cuts them: 17, 17 and 16 cells, each normalised by its own statistics.
    expected = torch.cat([torch.nn.functional.batch_norm(c, None, None, training=True) for c in x.split(17)])
    torch.testing.assert_close(gbn(x), expected)
    torch.testing.assert_close(gbn(x[:20]), torch.nn.functional.batch_norm(x[:20], None, None, training=True))


TRANSFORMER = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "top_k": 6,
    "d_model": 16,
    "n_heads": 2,
    "n_layers": 1,
    "dropout": 0.0,
}


def test_transformer_ignores_unexpressed_genes():
    torch.manual_seed(0)
    model = build_model("transformer", TRANSFORMER, 30, 4).eval()
    x = torch.zeros(2, 30)
    x[0, [3, 7]] = torch.tensor([2.0, 1.0])  # two expressed genes: four of six tokens are padding
    x[1, [3, 7, 9]] = torch.tensor([2.0, 1.0, 0.5])
    before = model(x)
    with torch.no_grad():  # perturb the embeddings of every gene these cells do not express
        unexpressed = torch.ones(30, dtype=torch.bool)
        unexpressed[[3, 7, 9]] = False
        model.gene.weight[unexpressed] += 5.0
    torch.testing.assert_close(model(x), before)
    logits = model(torch.rand(5, 30))
    assert logits.shape == (5, 4) and torch.isfinite(logits).all()


def _demo_config() -> dict:
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())


def test_an_architecture_entrys_unknown_loss_is_named():
    """The schema cannot list loss names (the registry owns them); the model layer's check names the entry."""
    from hcebench.config import load_config
    from hcebench.errors import ConfigError
    from hcebench.models import check_architectures

    config = _demo_config()
    config["architectures"]["mlp"]["losses"] = ["ce", "focal"]
    loaded = load_config(config)  # the schema passes it
    with pytest.raises(
        ConfigError,
        match=r"architectures\.mlp\.losses: unknown loss\(es\) \['focal'\]; choose from \['ce', 'hce'",
    ):
        check_architectures(loaded)


@pytest.mark.parametrize("name", ["celltypist", "control_random"])
def test_an_architecture_named_like_an_external_method_is_refused(name):
    """Its results would land in the external method's (or a control's) directories and overwrite them."""
    from hcebench.config import load_config
    from hcebench.errors import ConfigError
    from hcebench.models import check_architectures

    config = _demo_config()
    config["architectures"][name] = {"model": "linear", "lr": 0.001, "weight_decay": 0.0}
    with pytest.raises(ConfigError, match=rf"architectures\.{name}: the name is taken by an external method"):
        check_architectures(load_config(config))


@pytest.mark.parametrize(
    "key, value, wanted",
    [("n_layers", "8", "int"), ("n_layers", 8.5, "int"), ("dropout", "x", "float"), ("hidden", True, "int")],
)
def test_a_hyperparameter_of_the_wrong_type_is_named_before_anything_runs(key, value, wanted):
    """Dataclasses do not check types: the entry's values are checked against the annotations, so a string for an
    int stops the plan instead of a training job."""
    entry = {"lr": 0.002, "weight_decay": 0.05, key: value}
    with pytest.raises(ConfigError, match=rf"architectures.mlp.{key}: .* is not of type {wanted}"):
        check_hyperparameters("mlp", entry)
    check_hyperparameters(
        "mlp", {"lr": 1, "weight_decay": 0, "n_layers": 2}
    )  # an int where a float is wanted
