"""scTab's cell selection on hand-built obs with real Cell Ontology terms, the split, class weights."""

import numpy as np
import pandas as pd
import pytest
from hcebench.ontology import load_ontology
from hcebench.selection import balanced_class_weights, obs_value_filter, select_cells, split_tech_samples

CD8 = "CL:0000625"  # CD8-positive, alpha-beta T cell (deep)
B_CELL = "CL:0000236"  # B cell: 13 ancestors, deep enough
LEUKOCYTE = "CL:0000988"  # hematopoietic cell: too generic (5 ancestors)
CELL = "CL:0000000"  # cell: not a descendant of native cell


@pytest.fixture(scope="module")
def cl():
    return load_ontology("bundled:v2022-09-15")


def _obs(rows):
    frames = []
    joinid = 0
    for term, dataset, donors, per_donor in rows:
        for d in range(donors):
            n = per_donor
            frames.append(pd.DataFrame({
                "soma_joinid": np.arange(joinid, joinid + n),
                "dataset_id": dataset, "donor_id": f"donor{d}", "cell_type_ontology_term_id": term,
                "cell_type": term, "assay": "10x 3' v3", "tissue": "blood", "tissue_general": "blood",
                "disease": "normal", "is_primary_data": True,
            }))
            joinid += n
    return pd.concat(frames, ignore_index=True)


def test_filters_drop_generic_terms_and_rare_types(cl):
    assert len(cl.ancestors(B_CELL)) > 7 and len(cl.ancestors(LEUKOCYTE)) <= 7
    obs = _obs([
        (CD8, "d1", 3, 20), (CD8, "d2", 2, 20),  # 100 cells in 5 tech_samples: kept
        (B_CELL, "d1", 2, 40),  # 80 cells in 2 tech_samples: too few tech_samples
        (LEUKOCYTE, "d1", 5, 50),  # generic
        (CELL, "d2", 5, 50),  # not under native cell
    ])
    filters = dict(min_cells_per_type=50, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7)
    sel = select_cells(obs, cl, filters)
    assert sel.labels == [CD8]
    assert set(sel.cells["label"]) == {CD8}
    assert len(sel.cells) == 100
    assert B_CELL in sel.report["dropped_types_counts"]
    assert LEUKOCYTE in sel.report["dropped_types_ontology"] and CELL in sel.report["dropped_types_ontology"]
    assert set(sel.cells["tech_sample"]) == {"d1_donor0", "d1_donor1", "d1_donor2", "d2_donor0", "d2_donor1"}


def test_min_cells_is_inclusive_and_tech_samples_strict(cl):
    obs = _obs([(CD8, "d1", 4, 25)])  # exactly 100 cells in exactly 4 tech_samples
    ok = dict(min_cells_per_type=100, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7)
    assert select_cells(obs, cl, ok).labels == [CD8]
    with pytest.raises(ValueError, match="min_tech_samples_per_type"):
        select_cells(obs, cl, {**ok, "min_tech_samples_per_type": 4})


def test_split_keeps_tech_samples_whole_and_is_deterministic():
    ts = pd.Series([f"ts{i % 40}" for i in range(4000)])
    split = split_tech_samples(ts, seed=1, fractions=[0.7, 0.15, 0.15])
    per_ts = pd.DataFrame({"ts": ts, "split": split}).groupby("ts")["split"].nunique()
    assert (per_ts == 1).all()
    counts = pd.DataFrame({"ts": ts, "split": split}).drop_duplicates().groupby("split").size()
    assert counts.to_dict() == {"train": 28, "val": 6, "test": 6}
    # Row order does not matter, only the set of tech_samples.
    shuffled = ts.sample(frac=1, random_state=0)
    assert split_tech_samples(shuffled, 1, [0.7, 0.15, 0.15]).loc[ts.index].equals(split)
    assert not split_tech_samples(ts, 2, [0.7, 0.15, 0.15]).equals(split)


def test_split_too_small_is_an_error():
    with pytest.raises(ValueError, match="split.fractions"):
        split_tech_samples(pd.Series(["a", "b"]), 1, [0.7, 0.15, 0.15])


def test_balanced_class_weights_by_hand():
    y = np.array([0, 0, 0, 1])  # n=4, k=3 -> class 0: 4/(3*3), class 1: 4/(3*1), class 2 absent: 0
    np.testing.assert_allclose(balanced_class_weights(y, 3), [4 / 9, 4 / 3, 0.0], rtol=1e-6)


def test_value_filter_text():
    f = obs_value_filter({"is_primary_data": True, "assays": ["10x 3' v3"]}, ["ds1"])
    assert f == "is_primary_data == True and assay in [\"10x 3' v3\"] and dataset_id in ['ds1']"
