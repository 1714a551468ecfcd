"""hcebench.evaluation.contract: the gate every predictions file passes before it is scored.

Each failure kind gets its own test, asserting that the message names the rows (count, row numbers, cell ids)
and says how to fix the file. The split is the toy store's test split (150 cells, five-node DAG labels).
"""

import logging
import re

import numpy as np
import pandas as pd
import pytest
from hcebench.errors import PredictionsError
from hcebench.evaluation.contract import (
    PROBS_SUM_TOLERANCE,
    check_predictions,
    contract_table,
    predictions_metadata,
    read_predictions,
    scored_table,
    write_predictions,
)
from hcebench.hierarchy.labels import LabelHierarchy


@pytest.fixture(scope="module")
def split(toy):
    """(obs of the toy test split, labels, label names)."""
    store, hierarchy_dir = toy
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    obs = pd.read_parquet(store / "test" / "obs.parquet")
    return obs, list(hierarchy.term_ids), dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))


def predictions(split, seed=0) -> pd.DataFrame:
    """Our own contract table of the split, from random probability vectors."""
    obs, labels, names = split
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(labels)), size=len(obs))
    return contract_table(obs, labels, probs, names)


def refusal(table, split) -> str:
    obs, labels, names = split
    with pytest.raises(PredictionsError) as caught:
        scored_table(
            table, obs, labels, label_names=names, source="method.parquet", split_source="test/obs.parquet"
        )
    message = str(caught.value)
    assert message.startswith("method.parquet breaks the predictions contract")
    return message


def test_our_own_table_passes_and_keeps_its_predictions(split):
    obs, labels, names = split
    table = predictions(split)
    scored = scored_table(table, obs, labels, label_names=names)
    assert scored["cell_id"].tolist() == obs["soma_joinid"].tolist()
    assert scored["true_label"].tolist() == obs["label"].tolist()
    assert scored["pred_label"].tolist() == table["pred_label"].tolist()
    assert np.allclose(scored["pred_prob"], table["pred_prob"])
    assert all(np.array_equal(a, b) for a, b in zip(scored["probs"], table["probs"], strict=True))
    assert scored["pred_label_name"].tolist() == [names[t] for t in table["pred_label"]]


def test_an_external_file_in_its_own_shape_passes_with_the_suites_strata(split, caplog):
    """Columns in another order, unknown extra columns, rows shuffled, probs as float64 lists, strata of its own."""
    obs, labels, names = split
    ours = predictions(split)
    theirs = ours.drop(columns=["true_label_name", "pred_label_name", "donor_id"]).assign(
        dataset_id="my_dataset",
        tissue="my tissue",
        assay=ours["assay"].str.upper(),
        tissue_general=None,
        runtime_s=1.5,
        tool_version="9.9",
        probs=[list(p.astype(np.float64)) for p in ours["probs"]],
    )
    theirs = theirs[list(reversed(theirs.columns))].sample(frac=1.0, random_state=0).reset_index(drop=True)
    with caplog.at_level(logging.WARNING, logger="hcebench.evaluation.contract"):
        scored = scored_table(theirs, obs, labels, source="method.parquet")
    for column in ("dataset_id", "tissue", "assay", "tissue_general", "donor_id", "disease"):
        assert scored[column].tolist() == obs[column].tolist(), column
    assert scored["pred_label"].tolist() == ours["pred_label"].tolist()  # back in the split's order
    assert "runtime_s" not in scored.columns
    assert "dataset_id differs from the split's on 150 of 150 cells" in caplog.text
    assert "disease differs" not in caplog.text


def test_missing_cells_are_named(split):
    table = predictions(split).drop(index=[3, 140]).reset_index(drop=True)
    message = refusal(table, split)
    cells = split[0]["soma_joinid"].to_numpy()
    assert f"2 of the split's 150 cells have no row (cell_id {cells[3]}, {cells[140]})" in message
    assert "predict every cell of test/obs.parquet" in message


def test_extra_cells_are_named(split):
    table = predictions(split)
    table.loc[7, "cell_id"] = 10_007
    message = refusal(table, split)
    assert "1 row(s) have a cell_id that is not a cell of the split (row 7 (cell_id 10007))" in message
    assert "write soma_joinid, not row numbers" in message


def test_duplicated_cell_ids_are_named(split):
    table = predictions(split)
    table = pd.concat([table, table.iloc[[4]]], ignore_index=True)
    message = refusal(table, split)
    assert f"1 cell_id(s) appear more than once (cell_id {table['cell_id'][4]} at rows 4, 150)" in message
    assert "write one row per cell" in message


def test_labels_given_as_names_get_the_term_id_hint(split):
    obs, labels, names = split
    table = predictions(split)
    table["pred_label"] = table["pred_label"].map(names)  # "A", "B", ... instead of T:000000x
    message = refusal(table, split)
    assert "150 row(s) have a pred_label outside the 5 labels of hierarchy/labels.tsv" in message
    first = table["pred_label"][0]
    assert f"row 0 (cell_id {table['cell_id'][0]}): {first!r}" in message
    assert "looks like a name: write the term id (CL:xxxxxxx)" in message
    by_name = {n: t for t, n in names.items()}
    assert f"({first!r} → {by_name[first]!r})" in message


def test_underscore_ids_get_the_colon_hint(split):
    table = predictions(split)
    table.loc[[2, 9], "pred_label"] = "T_0000004"
    message = refusal(table, split)
    assert "2 row(s) have a pred_label outside" in message
    assert f"row 2 (cell_id {table['cell_id'][2]}): 'T_0000004'" in message
    assert "looks like an underscore id: write CL:xxxxxxx with a colon ('T_0000004' → 'T:0000004')" in message


def test_term_ids_outside_the_label_set_and_empty_labels_are_named(split):
    table = predictions(split)
    table.loc[5, "pred_label"] = "CL:0000084"
    table.loc[6, "pred_label"] = None
    message = refusal(table, split)
    assert "2 row(s) have a pred_label outside" in message
    assert "row 5" in message and "row 6" in message
    assert "'CL:0000084' is a term id outside the label set: predict only the 5 labels" in message
    assert "rows without a pred_label" in message


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (np.nan, "a missing or NaN pred_prob"),
        (np.inf, "an infinite pred_prob"),
        (1.5, "a pred_prob outside [0, 1]"),
    ],
)
def test_a_pred_prob_that_is_no_probability_is_named(split, value, kind):
    table = predictions(split)
    table["pred_prob"] = table["pred_prob"].astype(np.float64)
    table.loc[[11, 12], "pred_prob"] = value
    message = refusal(table, split)
    cells = table["cell_id"]
    assert f"2 row(s) have {kind} (row 11 (cell_id {cells[11]}): {value}, row 12" in message
    assert "a number in [0, 1]" in message


@pytest.mark.parametrize(
    ("vector", "kind", "fix"),
    [
        (
            [0.5, 0.5],
            "a probs vector of the wrong length (row 20 (cell_id {}): 2",
            "write 5 probabilities, one per",
        ),
        ([np.nan, 0.0, 0.0, 0.0, 1.0], "a probs vector with NaN, infinite or non-numeric values", "finite"),
        ([-0.2, 0.2, 0.0, 0.0, 1.0], "a probs vector with a negative value", "in [0, 1]"),
        (
            [0.9] * 5,
            "a probs vector that does not sum to 1 within 0.001 (sum shown) (row 20 (cell_id {}): 4.5",
            "normalise",
        ),
    ],
)
def test_malformed_probs_vectors_are_named(split, vector, kind, fix):
    table = predictions(split)
    table.at[20, "probs"] = np.asarray(vector, dtype=np.float32)
    message = refusal(table, split)
    assert f"1 row(s) have {kind.format(table['cell_id'][20])}" in message
    assert fix in message


def test_the_sum_tolerance_is_the_documented_one(split):
    obs, labels, _ = split
    table = predictions(split)
    inside = np.array([0.2, 0.2, 0.2, 0.2, 0.2 + PROBS_SUM_TOLERANCE / 2])
    table.at[0, "probs"] = inside
    scored_table(table, obs, labels)
    table.at[0, "probs"] = np.array([0.2, 0.2, 0.2, 0.2, 0.2 + 2 * PROBS_SUM_TOLERANCE])
    assert "does not sum to 1" in refusal(table, split)


def test_a_methods_own_truth_is_refused(split):
    table = predictions(split)
    obs = split[0]
    truth = obs["label"]
    other = truth[truth != truth[0]].iloc[0]
    table.loc[0, "true_label"] = other
    message = refusal(table, split)
    assert (
        f"1 row(s) have a true_label that differs from the split's truth (row 0 (cell_id {obs['soma_joinid'][0]}): "
        in message
    )
    assert f"{other!r}, the split's {truth[0]!r}" in message
    assert "write that as true_label (contract_table does)" in message


def test_ood_novel_truth_is_the_nearest_trained_ancestor(split):
    """A method that writes the novel type as the truth is told what ood_novel's truth is."""
    obs, labels, names = split
    novel = obs.assign(novel_label="T:0000099", novel_label_name="new type")
    table = predictions(split)
    scored = scored_table(table, novel, labels)
    assert (
        scored["novel_label"].eq("T:0000099").all() and scored["true_label"].tolist() == obs["label"].tolist()
    )
    table["true_label"] = "T:0000099"
    with pytest.raises(PredictionsError, match="150 row\\(s\\) have a true_label that differs") as caught:
        scored_table(table, novel, labels)
    assert "in ood_novel the truth is each cell's nearest trained ancestor" in str(caught.value)


def test_cell_ids_as_text_are_refused(split):
    table = predictions(split)
    table["cell_id"] = "cell" + table["cell_id"].astype(str)
    message = refusal(table, split)
    assert "cell_id has dtype object (first values 'cell" in message
    assert "write integers; cell_id is the split's soma_joinid (test/obs.parquet)" in message


def test_every_problem_of_a_file_is_listed_at_once(split):
    table = predictions(split).iloc[1:].reset_index(drop=True)
    table.loc[0, "pred_label"] = "B cell"
    table.loc[1, "pred_prob"] = -1.0
    message = refusal(table, split)
    assert message.count("\n- ") == 3
    assert "pred_label outside" in message and "pred_prob outside" in message and "have no row" in message


def test_an_empty_split_takes_only_an_empty_file(split):
    obs, labels, _ = split
    empty_obs, table = obs.iloc[:0], predictions(split)
    scored = scored_table(table.iloc[:0], empty_obs, labels)
    assert len(scored) == 0 and {"cell_id", "true_label", "pred_label"} <= set(scored.columns)
    with pytest.raises(
        PredictionsError, match="150 row\\(s\\) have a cell_id that is not a cell of the split"
    ):
        scored_table(table, empty_obs, labels)


def test_the_file_alone_is_checked_when_written_and_read(split, tmp_path):
    table = predictions(split)
    table.loc[3, "pred_prob"] = np.nan
    with pytest.raises(PredictionsError, match=r"1 row\(s\) have a missing or NaN pred_prob \(row 3 "):
        write_predictions(table, tmp_path / "p.parquet", {})
    assert not (tmp_path / "p.parquet").exists()
    table = predictions(split)
    table.at[8, "probs"] = np.ones(3, dtype=np.float32) / 3
    table.to_parquet(tmp_path / "p.parquet")
    with pytest.raises(
        PredictionsError, match=r"row 8 \(cell_id \d+\): 3; .*write 5 probabilities \(the length"
    ):
        read_predictions(tmp_path / "p.parquet")
    check_predictions(predictions(split), "ours", n_labels=5)
    with pytest.raises(PredictionsError, match="misses contract column"):
        check_predictions(table.drop(columns=["pred_prob"]), "theirs")


def test_predictions_metadata_records_the_run_the_label_set_and_the_release(toy, tmp_path):
    store, hierarchy_dir = toy
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    meta = predictions_metadata(
        hierarchy, store / "test", architecture="mlp", loss="hce", seed=3, split="test"
    )
    assert meta == {
        "architecture": "mlp",
        "loss": "hce",
        "seed": 3,
        "split": "test",
        "labels": ",".join(hierarchy.term_ids),
        "reachability_hash": hierarchy.content_hash,
        "census_release": "toy",
    }


def test_the_chunk_size_a_measurement_sets_is_a_positive_number_of_cells():
    from hcebench.evaluation.contract import chunk_cells_setting

    assert chunk_cells_setting(None) == chunk_cells_setting("") == 65_536
    assert chunk_cells_setting("2048") == 2048
    for bad in ("0", "-5", "2k", "1.5"):
        with pytest.raises(
            ValueError, match=rf"^HCEBENCH_CHUNK_CELLS='{re.escape(bad)}': give a positive number"
        ):
            chunk_cells_setting(bad)
