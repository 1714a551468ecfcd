"""CE and HCE against hand-computed values on the paper's five-node DAG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dag_fixtures import R_DAG, A, B, C, D, E, five_node_dag
from hcebench.training.losses import (
    CrossEntropyLoss,
    HierarchicalCrossEntropyLoss,
    cross_entropy,
    hce_paper,
    hce_stable,
    hierarchy_corrected_targets,
    make_loss,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    # Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine every OpenMP
    # barrier can wait out a scheduler time slice (tens of ms per op).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# softmax(log p) == p because p sums to 1: probabilities can be written down directly.
P = torch.tensor([0.10, 0.20, 0.30, 0.15, 0.25], dtype=torch.float64)
LOGITS = torch.log(P)
R = torch.as_tensor(R_DAG)
EYE = torch.eye(5)


def batch(*targets: int, logits: torch.Tensor = LOGITS) -> tuple[torch.Tensor, torch.Tensor]:
    return logits.expand(len(targets), -1).clone(), torch.tensor(targets)


def test_paper_form_matches_hand_computation():
    # subtree(B) = {B, D, E}: 0.20 + 0.15 + 0.25 = 0.60
    z, y = batch(B)
    assert hce_paper(z, y, R).item() == pytest.approx(-math.log(0.60 + 1e-6), abs=1e-12)
    assert hce_paper(z, y, R).item() == pytest.approx(0.5108239571, abs=1e-9)
    # subtree(C) = {C, E}: 0.30 + 0.25 = 0.55
    z, y = batch(C)
    assert hce_paper(z, y, R).item() == pytest.approx(0.5978351826, abs=1e-9)
    # subtree(A) = everything: the paper form dips just below zero, -log(1 + eps)
    z, y = batch(A)
    assert hce_paper(z, y, R).item() == pytest.approx(-math.log(1 + 1e-6), abs=1e-15)
    assert hce_stable(z, y, R).item() == pytest.approx(0.0, abs=1e-15)
    # mean over a batch
    z, y = batch(B, C, D)
    expected = (-math.log(0.60 + 1e-6) - math.log(0.55 + 1e-6) - math.log(0.15 + 1e-6)) / 3
    assert hce_paper(z, y, R).item() == pytest.approx(expected, abs=1e-12)


def test_ce_matches_hand_computation():
    z, y = batch(B, E)
    assert cross_entropy(z, y).item() == pytest.approx((-math.log(0.20) - math.log(0.25)) / 2, abs=1e-12)


def test_class_weighted_mean():
    # weights of A..E = 1..5; targets B, C, E carry 2, 3, 5: sum_i w l_i / sum_i w = (...) / 10
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    z, y = batch(B, C, E)
    assert hce_paper(z, y, R, w).item() == pytest.approx(0.9746605268, abs=1e-9)
    assert hce_stable(z, y, R, w).item() == pytest.approx(
        (2 * -math.log(0.60) + 3 * -math.log(0.55) + 5 * -math.log(0.25)) / 10, abs=1e-12
    )
    assert cross_entropy(z, y, w).item() == pytest.approx(
        (2 * -math.log(0.20) + 3 * -math.log(0.30) + 5 * -math.log(0.25)) / 10, abs=1e-12
    )
    # same normalisation as torch's weighted CE
    assert cross_entropy(z, y, w).item() == pytest.approx(F.cross_entropy(z, y, weight=w).item(), abs=1e-12)
    # per-sample values are weighted, "sum" is their plain sum
    per = hce_stable(z, y, R, w, reduction="none")
    assert per.tolist() == pytest.approx([2 * -math.log(0.60), 3 * -math.log(0.55), 5 * -math.log(0.25)])
    assert hce_stable(z, y, R, w, reduction="sum").item() == pytest.approx(per.sum().item())


def test_identity_reachability_gives_ce():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 5, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (64,), generator=g)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    ce = cross_entropy(z, y, w)
    assert hce_stable(z, y, EYE, w).item() == pytest.approx(ce.item(), abs=1e-12)
    # the paper form differs from CE only through eps in the log: -log(p_y + eps)
    p_y = torch.softmax(z, dim=1)[torch.arange(64), y]
    expected = (w[y] * -torch.log(p_y + 1e-6)).sum() / w[y].sum()
    assert hce_paper(z, y, EYE, w).item() == pytest.approx(expected.item(), abs=1e-12)
    assert hce_paper(z, y, EYE, w, eps=1e-300).item() == pytest.approx(ce.item(), abs=1e-12)


def test_leaf_labels_give_ce():
    # D and E have no subtypes: R[y] is one-hot, so HCE is CE for these cells.
    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([D, E] * 16)
    ce = cross_entropy(z, y, reduction="none")
    assert torch.allclose(hce_stable(z, y, R, reduction="none"), ce, atol=1e-12)
    assert torch.allclose(hce_paper(z, y, R, eps=1e-300, reduction="none"), ce, atol=1e-12)
    assert torch.allclose(hce_paper(z, y, R, reduction="none"), ce, atol=1e-4)


@pytest.mark.parametrize(
    "as_r",
    [
        lambda r: r,
        lambda r: r.astype(bool),
        torch.as_tensor,
        lambda r: torch.as_tensor(r).bool(),
        lambda r: torch.as_tensor(r).double(),
    ],
)
def test_any_reachability_dtype(as_r):
    z, y = batch(A, B, C, D, E)
    assert hce_paper(z, y, as_r(R_DAG)).item() == pytest.approx(hce_paper(z, y, R).item(), abs=1e-12)
    assert hce_stable(z, y, as_r(R_DAG)).item() == pytest.approx(hce_stable(z, y, R).item(), abs=1e-12)


def test_hce_never_exceeds_ce():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(500, 5, generator=g) * 5
    y = torch.randint(0, 5, (500,), generator=g)
    ce = cross_entropy(z, y, reduction="none")
    assert (hce_stable(z, y, R, reduction="none") <= ce + 1e-6).all()
    assert (hce_paper(z, y, R, reduction="none") <= ce + 1e-6).all()


def test_stable_matches_paper_away_from_zero():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (200,), generator=g)
    stable = hce_stable(z, y, R, reduction="none")
    paper = hce_paper(z, y, R, reduction="none")
    # -log(m + eps) = -log(m) - log(1 + eps/m): the gap is below eps / m
    mass = torch.exp(-stable)
    assert (mass > 1e-3).all()
    assert torch.all((stable - paper) >= 0)
    assert torch.all(stable - paper <= 1e-6 / mass)


def test_stable_stays_finite_where_paper_saturates():
    # D holds ~exp(-200) of the mass: the paper form is stuck at -log(eps) with no gradient.
    z = torch.tensor([[200.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([D])
    paper = hce_paper(z, y, R)
    assert paper.item() == pytest.approx(-math.log(1e-6), rel=1e-5)
    (g_paper,) = torch.autograd.grad(paper, z)
    assert g_paper.abs().max() < 1e-6

    stable = hce_stable(z, y, R)
    assert torch.isfinite(stable)
    assert stable.item() == pytest.approx(200.0, rel=1e-6)
    (g_stable,) = torch.autograd.grad(stable, z)
    assert torch.isfinite(g_stable).all()
    # d/dz of logsumexp(z) - z_D: softmax(z) - onehot(D) ~ (+1 at A, -1 at D)
    assert g_stable[0, A].item() == pytest.approx(1.0, abs=1e-6)
    assert g_stable[0, D].item() == pytest.approx(-1.0, abs=1e-6)

    # extreme float32 logits: still finite
    z = torch.tensor([[1e4, -1e4, 0.0, -1e4, 3e3]])
    assert torch.isfinite(hce_stable(z, torch.tensor([D]), R))


@pytest.mark.parametrize("form", ["paper", "stable"])
def test_gradcheck(form):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([A, B, C, D, E, B])
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5], dtype=torch.float64)
    loss = hce_paper if form == "paper" else hce_stable
    assert torch.autograd.gradcheck(lambda x: loss(x, y, R, w), (z,))
    assert torch.autograd.gradcheck(lambda x: loss(x, y, R, reduction="none"), (z,))


def test_bf16_logits_computed_in_float32():
    g = torch.Generator().manual_seed(5)
    z = (torch.randn(16, 5, generator=g) * 4).to(torch.bfloat16)
    y = torch.randint(0, 5, (16,), generator=g)
    for fn in (lambda x: hce_paper(x, y, R), lambda x: hce_stable(x, y, R), lambda x: cross_entropy(x, y)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(z)
        assert out.dtype == torch.float32
        assert out.item() == pytest.approx(fn(z.float()).item(), abs=1e-6)


def test_modules_hold_buffers_and_match_functional():
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    hce = HierarchicalCrossEntropyLoss(five_node_dag(), weight=w, form="stable")
    assert set(dict(hce.named_buffers())) == {"reachability", "weight"}
    assert hce.reachability.dtype == torch.bool  # the stable form masks logits with it
    assert torch.equal(hce.reachability, R.bool())
    assert "reachability" in hce.state_dict()
    z, y = batch(B, C, E, logits=LOGITS.float())
    assert hce(z, y).item() == pytest.approx(hce_stable(z, y, R, torch.tensor(w)).item(), abs=1e-6)

    paper = HierarchicalCrossEntropyLoss(R_DAG)
    assert paper(z, y).item() == pytest.approx(hce_paper(z, y, R).item(), abs=1e-6)
    assert dict(paper.named_buffers()).keys() == {"reachability"}  # no weights: no buffer
    assert paper.reachability.dtype == torch.float32  # the paper form multiplies probabilities by it

    ce = CrossEntropyLoss(torch.tensor(w))
    assert ce(z, y).item() == pytest.approx(cross_entropy(z, y, torch.tensor(w)).item(), abs=1e-6)
    # .to() moves and casts the floating buffers with the module
    assert paper.to(torch.float64).reachability.dtype == torch.float64
    assert hce.to(torch.float64).weight.dtype == torch.float64


def test_module_validation():
    with pytest.raises(ValueError, match="reflexive"):
        HierarchicalCrossEntropyLoss(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="square"):
        HierarchicalCrossEntropyLoss(np.ones((3, 4)))
    with pytest.raises(ValueError, match="length 5"):
        HierarchicalCrossEntropyLoss(R_DAG, weight=np.ones(4))
    with pytest.raises(ValueError, match="form"):
        HierarchicalCrossEntropyLoss(R_DAG, form="exact")
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        hce_paper(torch.zeros(2, 4), torch.tensor([0, 1]), R)


def test_make_loss():
    assert isinstance(make_loss("ce", None), CrossEntropyLoss)
    hce = make_loss("hce", R_DAG, class_weights=np.ones(5), hce_form="stable")
    assert isinstance(hce, HierarchicalCrossEntropyLoss) and hce.form == "stable"
    assert make_loss("hce", R_DAG).form == "paper"
    with pytest.raises(ValueError, match=r"training\.losses.*'focal'"):
        make_loss("focal", R_DAG)
    with pytest.raises(ValueError, match=r"training\.hce_form.*'exact'"):
        make_loss("hce", R_DAG, hce_form="exact")


def test_hierarchy_corrected_targets_by_hand():
    # True B, predicted D (a subtype): the target becomes D. True C, predicted B (not one): stays C.
    # True A (the root), predicted E: E. True D, predicted B (an ancestor): stays D. True E, predicted E: E.
    y = torch.tensor([B, C, A, D, E])
    pred = torch.tensor([D, B, E, B, E])
    assert hierarchy_corrected_targets(y, pred, R_DAG).tolist() == [D, C, E, D, E]
    assert hierarchy_corrected_targets(y, pred, np.eye(5)).tolist() == [B, C, A, D, E]  # flat: truth


def test_unweighted_validation_loss_on_corrected_targets_by_hand():
    # The paper's validation loss: the loss without class weights on the corrected targets [D, C, E] of
    # truths [B, C, A]; every cell has p = (0.10, 0.20, 0.30, 0.15, 0.25), so the predictions are set by hand.
    z, y = batch(B, C, A)
    targets = hierarchy_corrected_targets(y, torch.tensor([D, B, E]), R_DAG)
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # training's class weights: must not enter
    ce = make_loss("ce", R_DAG, class_weights=None)(z, targets).item()
    assert ce == pytest.approx((-math.log(0.15) - math.log(0.30) - math.log(0.25)) / 3, abs=1e-12)
    hce = make_loss("hce", R_DAG, class_weights=None)(z, targets).item()
    # desc(D) = {D}; desc(C) = {C, E}: 0.55; desc(E) = {E}.
    expected = -(math.log(0.15 + 1e-6) + math.log(0.55 + 1e-6) + math.log(0.25 + 1e-6)) / 3
    assert hce == pytest.approx(expected, abs=1e-7)
    # The weighted loss (the training loss) differs: weights 4, 3, 5 on D, C, E.
    weighted = make_loss("hce", R_DAG, class_weights=weights)(z, targets).item()
    assert weighted != pytest.approx(hce, abs=1e-3)


# -- properties on random DAGs -------------------------------------------------------------------
def random_dag_batch(rng: np.random.Generator, k: int, b: int, scale: float = 10.0):
    """A random reflexive, transitive R over k labels with a batch of logits and targets."""
    adj = np.triu(rng.random((k, k)) < 0.4, 1)  # i -> j only for i < j: acyclic
    return closure_batch(adj, rng.uniform(-scale, scale, (b, k)), rng.integers(0, k, b))


def closure_batch(adj, z, y):
    k = adj.shape[0]
    r = np.eye(k, dtype=bool) | adj
    for _ in range(k):  # transitive closure by repeated squaring of paths
        r = r | ((r.astype(int) @ r.astype(int)) > 0)
    return torch.tensor(r, dtype=torch.float32), torch.tensor(z, dtype=torch.float64), torch.tensor(y)


def check_hce_properties(r, z, y):
    ce = cross_entropy(z, y, reduction="none")
    stable = hce_stable(z, y, r, reduction="none")
    paper = hce_paper(z, y, r, reduction="none")
    assert torch.all(stable <= ce + 1e-9)
    assert torch.all(paper <= ce + 1e-9)
    assert torch.all(stable >= -1e-12)
    # paper = -log(exp(-stable) + eps): the two forms are one function of the subtree mass
    assert torch.allclose(paper, -torch.log(torch.exp(-stable) + 1e-6), atol=1e-9)
    # stable = -log(subtree mass), exactly
    mass = (torch.softmax(z, dim=1) * r[y].double()).sum(dim=1)
    ok = mass > 1e-200
    assert torch.allclose(stable[ok], -torch.log(mass[ok]), atol=1e-9)
    # labels without subtypes: HCE is CE
    leaf = r[y].sum(dim=1) == 1
    assert torch.allclose(stable[leaf], ce[leaf], atol=1e-9)


def test_properties_on_seeded_random_dags():
    rng = np.random.default_rng(6)
    for _ in range(200):
        check_hce_properties(*random_dag_batch(rng, int(rng.integers(2, 10)), int(rng.integers(1, 20))))


try:  # hypothesis is optional: without it the seeded test above still covers the properties
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @st.composite
    def dag_batches(draw):
        k = draw(st.integers(2, 8))
        adj = np.triu(
            np.array(draw(st.lists(st.booleans(), min_size=k * k, max_size=k * k))).reshape(k, k), 1
        )
        b = draw(st.integers(1, 16))
        z = np.array(draw(st.lists(st.floats(-30, 30), min_size=b * k, max_size=b * k))).reshape(b, k)
        y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
        return closure_batch(adj, z, y)

    @settings(max_examples=200, deadline=None)
    @given(dag_batches())
    def test_hypothesis_hce_properties(data):
        check_hce_properties(*data)
