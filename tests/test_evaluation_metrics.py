"""Hierarchy-corrected scoring against hand-computed values on the paper's five-node DAG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dag_fixtures import R_DAG, A, B, C, D, E, five_node_dag
from hcebench.evaluation.metrics import f1_summary, hierarchy_correct, metrics_table, per_class_f1
from sklearn.metrics import f1_score, precision_recall_fscore_support

# A tiny annotated set. Corrected: B<-D yes, B<-A no (ancestor), C<-E yes, D<-B no, E<-E, A<-C yes.
Y_TRUE = np.array([B, B, C, D, E, A])
Y_PRED = np.array([D, A, E, B, E, C])
Y_CORR = np.array([B, A, C, B, E, A])


def test_hierarchy_correct_on_the_dag():
    assert hierarchy_correct([B], [D], R_DAG).tolist() == [B]  # subtype of the truth: correct
    assert hierarchy_correct([B], [A], R_DAG).tolist() == [A]  # ancestor: stays wrong
    assert hierarchy_correct([C], [E], R_DAG).tolist() == [C]  # E is a C through its second parent
    assert hierarchy_correct([D], [E], R_DAG).tolist() == [E]  # sibling: wrong
    assert hierarchy_correct([E], [C], R_DAG).tolist() == [C]  # parent of a leaf: wrong
    assert hierarchy_correct(Y_TRUE, Y_PRED, R_DAG).tolist() == Y_CORR.tolist()
    # a negative prediction means "outside the label set": always wrong, never an index
    assert hierarchy_correct([A, E], [-1, -1], R_DAG).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="equal length"):
        hierarchy_correct([A, B], [A], R_DAG)


def test_f1_by_hand():
    # corrected per class: A tp1 fp1 -> 2/3; B tp1 fp1 fn1 -> 1/2; C 1; D 0; E 1
    s = f1_summary(Y_TRUE, Y_PRED, R_DAG)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1 + 0 + 1) / 5)
    assert s["micro_f1"] == pytest.approx(4 / 6)
    assert s["weighted_f1"] == pytest.approx((2 / 3 + 2 * 1 / 2 + 1 + 0 + 1) / 6)
    # exact match: only E is ever right (tp1 fp1 -> 2/3)
    flat = f1_summary(Y_TRUE, Y_PRED)
    assert flat["macro_f1"] == pytest.approx((2 / 3) / 5)
    assert flat["micro_f1"] == pytest.approx(1 / 6)
    assert flat["weighted_f1"] == pytest.approx((2 / 3) / 6)


def test_labels_absent_from_truth_are_not_scored():
    # labels present: D, E. D: tp1 of 2, predicted once -> P1 R1/2 F2/3; E: F0.
    # B and A are predicted but absent from y_true: nobody's false positive.
    y_true, y_pred = [D, D, E], [D, B, A]
    s = f1_summary(y_true, y_pred)
    assert s["macro_f1"] == pytest.approx(1 / 3)
    assert s["micro_f1"] == pytest.approx(2 * 1 / (1 + 3))
    for avg in ("macro", "micro", "weighted"):
        assert s[f"{avg}_f1"] == pytest.approx(
            f1_score(y_true, y_pred, labels=[D, E], average=avg, zero_division=0)
        )


def test_per_class_by_hand():
    df = per_class_f1(Y_TRUE, Y_PRED, R_DAG)
    assert df.columns.tolist() == ["label", "f1", "precision", "recall", "support"]
    assert df["label"].tolist() == [A, B, C, D, E]
    assert df["f1"].tolist() == pytest.approx([2 / 3, 1 / 2, 1, 0, 1])
    assert df["precision"].tolist() == pytest.approx([1 / 2, 1 / 2, 1, 0, 1])
    assert df["recall"].tolist() == pytest.approx([1, 1 / 2, 1, 0, 1])
    assert df["support"].tolist() == [1, 2, 1, 1, 1]
    # only labels present in y_true appear
    assert per_class_f1([D, D], [A, D])["label"].tolist() == [D]


def predictions_frame() -> pd.DataFrame:
    t = np.array(five_node_dag().term_ids, dtype=object)
    return pd.DataFrame(
        {
            "true_label": t[Y_TRUE],
            "pred_label": t[Y_PRED],
            "dataset_id": ["d1", "d1", "d1", "d2", "d2", None],
            "assay": pd.Categorical(["10x 3' v3"] * 6),
        }
    )


def test_metrics_table_by_hand():
    table = metrics_table(predictions_frame(), five_node_dag())
    assert table.columns.tolist() == ["stratum_type", "stratum", "metric", "value"]
    # absent strata columns (tissue, disease, ...) are skipped
    assert set(table["stratum_type"]) == {"all", "dataset_id", "assay", "cell_type"}
    v = table.set_index(["stratum_type", "stratum", "metric"])["value"]

    assert v["all", "all", "macro_f1"] == pytest.approx(19 / 30)
    assert v["all", "all", "micro_f1"] == pytest.approx(2 / 3)
    assert v["all", "all", "weighted_f1"] == pytest.approx(11 / 18)
    assert v["all", "all", "macro_f1_flat"] == pytest.approx(2 / 15)
    assert v["all", "all", "micro_f1_flat"] == pytest.approx(1 / 6)
    assert v["all", "all", "n_cells"] == 6
    assert v["all", "all", "accuracy"] == pytest.approx(4 / 6)
    assert v["assay", "10x 3' v3", "macro_f1"] == pytest.approx(19 / 30)

    # d1 = cells 0-2: truth B B C, corrected B A C -> B: P1 R1/2 F2/3; C: 1 (A absent from truth)
    assert v["dataset_id", "d1", "macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert v["dataset_id", "d1", "micro_f1"] == pytest.approx(2 * 2 / (2 + 3))
    assert v["dataset_id", "d1", "n_cells"] == 3
    # d2 = cells 3-4: truth D E, corrected B E -> D 0, E 1
    assert v["dataset_id", "d2", "macro_f1"] == pytest.approx(1 / 2)
    assert v["dataset_id", "NA", "n_cells"] == 1  # missing dataset_id

    assert v["cell_type", "A", "f1"] == pytest.approx(2 / 3)
    assert v["cell_type", "B", "precision"] == pytest.approx(1 / 2)
    assert v["cell_type", "B", "support"] == 2
    assert v["cell_type", "D", "recall"] == 0
    assert v["cell_type", "E", "f1_flat"] == pytest.approx(2 / 3)
    assert v["cell_type", "A", "f1_flat"] == 0
    per_stratum = {"macro_f1", "micro_f1", "weighted_f1", "macro_f1_flat", "micro_f1_flat",
                   "weighted_f1_flat", "n_cells", "accuracy"}  # fmt: skip
    assert set(table.loc[table.stratum_type == "dataset_id", "metric"]) == per_stratum
    assert set(table.loc[table.stratum_type == "cell_type", "metric"]) == {
        "f1",
        "precision",
        "recall",
        "support",
        "f1_flat",
    }
    assert not table.duplicated(["stratum_type", "stratum", "metric"]).any()


def test_metrics_table_label_checks():
    pred = predictions_frame()
    pred.loc[0, "true_label"] = "CL:9999999"
    with pytest.raises(ValueError, match="CL:9999999"):
        metrics_table(pred, five_node_dag())
    # a prediction outside the label set is wrong and nobody's false positive
    pred = predictions_frame()
    pred.loc[0, "pred_label"] = "unassigned"  # was D for truth B (correct): now wrong
    v = metrics_table(pred, five_node_dag()).set_index(["stratum_type", "stratum", "metric"])["value"]
    assert v["all", "all", "accuracy"] == pytest.approx(3 / 6)
    assert v["cell_type", "B", "recall"] == 0
    assert v["cell_type", "B", "precision"] == 0  # its one B prediction (cell 3) is wrong


def test_metrics_table_strata_agree_with_subsets():
    rng = np.random.default_rng(0)
    n = 400
    y_true = rng.integers(0, 5, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, 5, n))
    t = np.array(five_node_dag().term_ids, dtype=object)
    tissue = rng.choice(["lung", "blood", "gut"], n)
    table = metrics_table(pd.DataFrame({"true_label": t[y_true], "pred_label": t[y_pred], "tissue": tissue}),
                          five_node_dag())  # fmt: skip
    v = table.set_index(["stratum_type", "stratum", "metric"])["value"]
    for name in ("lung", "blood", "gut"):
        m = tissue == name
        s, flat = f1_summary(y_true[m], y_pred[m], R_DAG), f1_summary(y_true[m], y_pred[m])
        for key in s:
            assert v["tissue", name, key] == pytest.approx(s[key])
            assert v["tissue", name, f"{key}_flat"] == pytest.approx(flat[key])
        assert v["tissue", name, "n_cells"] == m.sum()


# -- agreement with sklearn ---------------------------------------------------------------------
def check_against_sklearn(y_true, y_pred):
    labels = np.unique(y_true)
    s = f1_summary(y_true, y_pred)
    for avg in ("macro", "micro", "weighted"):
        expected = f1_score(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        assert s[f"{avg}_f1"] == pytest.approx(expected, abs=1e-12)
    p, r, f, sup = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    df = per_class_f1(y_true, y_pred)
    assert df["label"].tolist() == labels.tolist()
    np.testing.assert_allclose(df["precision"], p, atol=1e-12)
    np.testing.assert_allclose(df["recall"], r, atol=1e-12)
    np.testing.assert_allclose(df["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(df["support"], sup)


def test_matches_sklearn_on_seeded_random_labels():
    rng = np.random.default_rng(1)
    for _ in range(100):
        k, n = int(rng.integers(1, 12)), int(rng.integers(1, 60))
        check_against_sklearn(rng.integers(0, k, n), rng.integers(0, k + 2, n))


try:  # hypothesis is optional: the seeded test above covers the same ground without it
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 9)), min_size=1, max_size=60))
    def test_hypothesis_matches_sklearn(pairs):
        y_true, y_pred = map(np.array, zip(*pairs, strict=True))
        check_against_sklearn(y_true, y_pred)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
    def test_hypothesis_correction_only_helps(pairs):
        y_true, y_pred = map(np.array, zip(*pairs, strict=True))
        corr = hierarchy_correct(y_true, y_pred, R_DAG)
        # a correction only ever turns a wrong prediction into the truth
        assert np.all((corr == y_pred) | (corr == y_true))
        assert np.all((corr == y_true) >= (y_pred == y_true))
        assert np.all((corr == y_true) == R_DAG[y_true, y_pred].astype(bool))


def test_union_and_subset_macro_f1_are_the_papers_classification_report():
    """hce-classification's model_evaluation_sctab.py (restated in tests/sctab_reference.py): classification_report
    without labels (the union of true and predicted labels) and with the subset's labels."""
    from hcebench.evaluation.metrics import macro_f1_over, macro_f1_union
    from sctab_reference import classification_report_macro_f1, torchmetrics_macro_f1

    rng = np.random.default_rng(3)
    k = 12
    y_true = rng.integers(0, 8, 400)  # labels 8..11 never true
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, k, 400))
    reach = np.eye(k, dtype=np.uint8)
    reach[0, 1:4] = 1  # 1-3 are subtypes of 0
    y_corr = hierarchy_correct(y_true, y_pred, reach)
    union = macro_f1_union(y_true, y_pred, reach)
    assert union == pytest.approx(classification_report_macro_f1(y_true, y_corr), abs=1e-12)
    assert union == pytest.approx(torchmetrics_macro_f1(y_true, y_corr, k), abs=1e-12)
    assert union < f1_summary(y_true, y_pred, reach)["macro_f1"]  # predicted-only labels count 0
    subset = [0, 2, 5, 9]  # 9 is never true: scores 0
    assert macro_f1_over(y_true, y_pred, subset, reach) == pytest.approx(
        classification_report_macro_f1(y_true, y_corr, labels=subset), abs=1e-12
    )
    # Only-true labels: the union is the suite's average over the labels present.
    assert macro_f1_union(Y_TRUE, Y_TRUE) == f1_summary(Y_TRUE, Y_TRUE)["macro_f1"] == 1.0


def test_metrics_table_holds_the_union_macro_f1():
    from hcebench.evaluation.metrics import macro_f1_union

    h = five_node_dag()
    pred = pd.DataFrame(
        {"true_label": [h.term_ids[i] for i in Y_TRUE], "pred_label": [h.term_ids[i] for i in Y_PRED]}
    )
    table = metrics_table(pred, h)
    row = table[(table["stratum_type"] == "all") & (table["metric"] == "macro_f1_union")]
    assert row["value"].tolist() == [macro_f1_union(Y_TRUE, Y_PRED, h.reachability)]
