"""hcebench.evaluation.propagation: propagation decoding by hand on the five-node DAG, τ chosen on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import A, B, D, E, five_node_dag
from hcebench.evaluation import propagation
from hcebench.evaluation.contract import check_predictions, contract_table
from hcebench.evaluation.propagation import (
    ROUNDING,
    LevelMaxima,
    choose_threshold,
    decode_propagated,
    decode_table,
    propagate,
)
from hcebench.hierarchy.labels import LabelHierarchy

# Depths on the DAG: A 0, B 1, C 1, D 2 (under B), E 3 (under B and C, both under A).
# Cell 0: probs A .0 B .1 C .2 D .3 E .4  ->  q = probs @ R.T: A 1.0, B .8, C .6, D .3, E .4
# Cell 1: probs A .0 B .0 C .1 D .5 E .4  ->  q:               A 1.0, B .9, C .5, D .5, E .4
# Cell 2: probs all on E                 ->  q:               A 1,   B 1,  C 1,  D 0,  E 1
PROBS = np.array(
    [
        [0.0, 0.1, 0.2, 0.3, 0.4],
        [0.0, 0.0, 0.1, 0.5, 0.4],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ],
    dtype=np.float32,
)
#: τ -> (decoded label, its propagated probability) per cell, by hand from the q above.
BY_HAND = {
    0.25: [(E, 0.4), (E, 0.4), (E, 1.0)],  # every label but D of cell 0 / all of cell 1 qualify: E is deepest
    0.35: [(E, 0.4), (E, 0.4), (E, 1.0)],
    0.45: [(B, 0.8), (D, 0.5), (E, 1.0)],  # cell 0: A, B, C qualify, B beats C (same depth) on q .8 > .6
    0.5: [(B, 0.8), (D, 0.5), (E, 1.0)],  # cell 1: q(D) = .5 reaches τ = .5 exactly
    0.55: [(B, 0.8), (B, 0.9), (E, 1.0)],
    0.85: [(A, 1.0), (B, 0.9), (E, 1.0)],
    0.95: [(A, 1.0), (A, 1.0), (E, 1.0)],
    1.0: [(A, 1.0), (A, 1.0), (E, 1.0)],  # the root's float32 mass may miss 1 by an ulp: still accepted
}


def obs_frame(labels) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            "soma_joinid": np.arange(n),
            "dataset_id": "d1",
            "donor_id": "x",
            "tissue": "blood",
            "tissue_general": "blood",
            "assay": "10x 3' v3",
            "disease": "normal",
            "label": list(labels),
        }
    )


def table_of(probs, truths, hierarchy=None) -> pd.DataFrame:
    h = hierarchy or five_node_dag()
    names = dict(zip(h.term_ids, h.names, strict=True))
    return contract_table(obs_frame([h.term_ids[t] for t in truths]), list(h.term_ids), probs, names)


@pytest.mark.parametrize("tau", sorted(BY_HAND))
def test_decode_table_by_hand(tau):
    h = five_node_dag()
    table = table_of(PROBS, [B, D, E])
    out = decode_table(table, h, tau)
    labels, probs = zip(*BY_HAND[tau], strict=True)
    assert out["pred_label"].tolist() == [h.term_ids[i] for i in labels]
    assert out["pred_label_name"].tolist() == [h.names[i] for i in labels]
    assert out["pred_prob"].to_numpy() == pytest.approx(probs, abs=1e-6)
    assert out["pred_prob"].dtype == np.float32
    # the model's probabilities and everything else are untouched, and the input table is not modified
    assert np.array_equal(np.stack(out["probs"]), PROBS)
    assert out.drop(columns=["pred_label", "pred_label_name", "pred_prob", "probs"]).equals(
        table.drop(columns=["pred_label", "pred_label_name", "pred_prob", "probs"])
    )
    assert table["pred_label"].tolist() == ["E", "D", "E"]  # still the argmax
    check_predictions(out)


def test_decoding_falls_back_to_the_root_with_most_mass():
    # A forest: X -> Y, and Z alone. Roots X and Z (depth 0), Y depth 1.
    r = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8)
    q = np.array([[0.1 + 0.3, 0.3, 0.6]])  # probs X .1, Y .3, Z .6 propagated
    pred, fell_back = decode_propagated(q, r.sum(axis=0) - 1, 0.7)
    # nothing reaches .7: the root with the most mass, Z
    assert pred.tolist() == [2] and fell_back.tolist() == [True]
    pred, fell_back = decode_propagated(q, r.sum(axis=0) - 1, 0.35)
    assert pred.tolist() == [2] and fell_back.tolist() == [False]  # X (.4) and Z (.6) reach it, Z the more
    pred, _ = decode_propagated(q, r.sum(axis=0) - 1, 0.3)
    assert pred.tolist() == [1]  # Y is deeper than X and Z


def rule_decoding(q: np.ndarray, depth: np.ndarray, tau: float) -> tuple[list[int], list[bool]]:
    """The decoding rule cell by cell, as the module states it: the deepest label with q >= tau, ties to the larger
    q and then the lower index; with none, the root-most label with the largest q."""
    preds, fell = [], []
    for row in q:
        candidates = [i for i in range(len(row)) if row[i] >= tau - ROUNDING]
        fell.append(not candidates)
        if not candidates:
            candidates = [i for i in range(len(row)) if depth[i] == depth.min()]
        preds.append(min(candidates, key=lambda i: (-depth[i], -row[i], i)))
    return preds, fell


def test_level_maxima_decode_every_tau_as_the_rule_does():
    # Random propagated probabilities on a random forest, rounded so that ties in q and in depth are common.
    rng = np.random.default_rng(3)
    k = 12
    parent = [-1, -1, *rng.integers(0, np.arange(2, k))]  # label i's parent comes before it: two roots
    r = np.eye(k, dtype=bool)
    for i in range(k):
        j = parent[i]
        while j >= 0:
            r[j, i] = True
            j = parent[j]
    probs = np.round(rng.dirichlet(np.full(k, 0.3), size=300), 1).astype(np.float32)
    q = propagate(probs, r)
    depth = r.sum(axis=0) - 1
    maxima = LevelMaxima(q, depth)
    for tau in (0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.5):
        pred, fell_back = maxima.decode(tau)
        expected, expected_fell = rule_decoding(q, depth, tau)
        assert pred.tolist() == expected, tau
        assert fell_back.tolist() == expected_fell, tau
        single, single_fell = decode_propagated(q, depth, tau)
        assert np.array_equal(single, pred) and np.array_equal(single_fell, fell_back)
    assert maxima.decode(1.5)[1].all() and not maxima.decode(0.05)[1].any()


def test_a_flat_label_set_decodes_to_the_argmax_at_every_tau():
    k = 6
    flat = LabelHierarchy(
        tuple(f"L{i}" for i in range(k)), tuple(f"l{i}" for i in range(k)), np.eye(k, dtype=np.uint8), "t"
    )
    probs = np.random.default_rng(0).dirichlet(np.ones(k), size=200).astype(np.float32)
    table = table_of(probs, [0] * 200, flat)
    for tau in (0.05, 0.3, 0.6, 1.0):
        assert decode_table(table, flat, tau)["pred_label"].tolist() == table["pred_label"].tolist()


def test_a_confident_argmax_is_kept_between_one_minus_m_and_m():
    """Module docstring: with top probability m, every τ in (1 − m, m] decodes to the argmax, leaf or not."""
    h = five_node_dag()
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(5, 0.3), size=2000).astype(np.float32)
    table = table_of(probs, [A] * len(probs))
    m = probs.max(axis=1)
    for tau in (0.55, 0.7, 0.9):
        decoded = decode_table(table, h, tau)["pred_label"].to_numpy()
        keep = (m >= tau + 1e-5) & (1 - m < tau - 1e-5)
        assert keep.sum() > 50
        assert (decoded[keep] == table["pred_label"].to_numpy()[keep]).all()
        # above the top probability the answer is never the argmax leaf D or E: it backs off
        above = m < tau - 1e-5
        assert not np.isin(decoded[above], ["D", "E"]).any()


def test_answers_only_get_coarser_as_tau_grows():
    h = five_node_dag()
    probs = np.random.default_rng(2).dirichlet(np.ones(5), size=500).astype(np.float32)
    table = table_of(probs, [A] * len(probs))
    depth = dict(zip(h.term_ids, h.depth(), strict=True))
    depths = [
        decode_table(table, h, tau)["pred_label"].map(depth).to_numpy() for tau in propagation.DEFAULT_GRID
    ]
    assert all((a >= b).all() for a, b in zip(depths, depths[1:], strict=False))
    assert (depths[-1] == 0).all()  # τ = 1: the root


def test_chunks_give_the_same_answer(monkeypatch):
    h = five_node_dag()
    probs = np.random.default_rng(3).dirichlet(np.ones(5), size=11).astype(np.float32)
    table = table_of(probs, [B] * 11)
    whole = decode_table(table, h, 0.4)
    monkeypatch.setattr(propagation, "CHUNK_CELLS", 3)
    chunked = decode_table(table, h, 0.4)
    pd.testing.assert_frame_equal(whole.drop(columns="probs"), chunked.drop(columns="probs"))
    tau_chunked, grid_chunked = choose_threshold(table, h, (0.3, 0.6))
    monkeypatch.setattr(propagation, "CHUNK_CELLS", 100)
    tau_whole, grid_whole = choose_threshold(table, h, (0.3, 0.6))
    assert tau_chunked == tau_whole
    pd.testing.assert_frame_equal(grid_chunked, grid_whole)


def test_choose_threshold_on_a_toy_validation_table():
    # truths B, D, E for the three cells of PROBS. Decoded (BY_HAND) and scored hierarchy-corrected:
    #  τ .35: E E E -> B ok (E is a B), D wrong, E ok; B F1 1, D 0, E 2·1/(2+1) -> macro (1 + 0 + 2/3)/3 = 5/9
    #  τ .45: B D E -> all right -> 1
    #  τ .95: A A E -> B 0, D 0, E 1 -> 1/3
    h = five_node_dag()
    table = table_of(PROBS, [B, D, E])
    tau, grid = choose_threshold(table, h, (0.35, 0.45, 0.95))
    assert tau == 0.45
    assert grid.columns.tolist() == propagation.THRESHOLD_COLUMNS
    assert grid["tau"].tolist() == [0.35, 0.45, 0.95]
    assert grid["macro_f1"].tolist() == pytest.approx([5 / 9, 1.0, 1 / 3])
    # exact match at .35: E thrice -> B 0, D 0, E 2/(3+1)
    assert grid["macro_f1_flat"].tolist() == pytest.approx([1 / 6, 1.0, 1 / 3])
    assert grid["mean_depth"].tolist() == pytest.approx([3.0, 2.0, 1.0])
    assert grid["fallback_fraction"].tolist() == [0.0, 0.0, 0.0]
    assert grid["selected"].tolist() == [False, True, False]
    assert (grid["n_cells"] == 3).all()
    # .45 and .5 decode alike (BY_HAND): the tie goes to the larger, more conservative τ
    assert choose_threshold(table, h, (0.45, 0.5))[0] == 0.5
    # the default grid reaches τ = 1
    _, default = choose_threshold(table, h)
    assert default["tau"].max() == 1.0 and default["selected"].sum() == 1


def test_errors_name_the_fix():
    h = five_node_dag()
    table = table_of(PROBS, [B, D, E])
    with pytest.raises(ValueError, match="save_probabilities: true"):
        decode_table(table.drop(columns="probs"), h, 0.5)
    with pytest.raises(ValueError, match="save_probabilities: true"):
        choose_threshold(table.drop(columns="probs"), h)
    short = table.assign(probs=[p[:4] for p in table["probs"]])
    with pytest.raises(ValueError, match="another hierarchy"):
        decode_table(short, h, 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        choose_threshold(table, h, (0.0, 0.5))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        decode_table(table, h, 1.5)
    with pytest.raises(ValueError, match="no cells"):
        choose_threshold(table.iloc[:0], h)
    with pytest.raises(ValueError, match="CL:9"):
        choose_threshold(table.assign(true_label=["CL:9", "B", "E"]), h)


def test_an_empty_table_decodes_to_an_empty_table():
    h = five_node_dag()
    out = decode_table(table_of(np.zeros((0, 5), np.float32), [], h), h, 0.5)
    assert len(out) == 0
    check_predictions(out)
