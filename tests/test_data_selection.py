"""scTab's cell selection on hand-built obs with real Cell Ontology terms, the split, class weights.

Below, the paper's filters reproduce scTab's 164 cell types on a census built to pass and fail them: an offline
stand-in for running config/paper.yaml on Census 2023-05-15: a census in the Census layout whose obs
holds every one of scTab's 164 types above the paper's thresholds (≥ 5,000 cells in > 30 tech_samples, primary,
10x), plus distractor types that each fail exactly one filter. Selection through the same code path as the
workflow (open_census → read_obs with the SOMA value filter → select_cells) must return exactly the 164.
"""

from importlib import resources

import numpy as np
import pandas as pd
import pytest
from hcebench.config import load_config
from hcebench.data.selection import (
    balanced_class_weights,
    obs_value_filter,
    select_cells,
    select_from_census,
    split_tech_samples,
)
from hcebench.data.simulate import OBS_SCHEMA, SUMMARY_SCHEMA, create_release, write_dataframe
from hcebench.hierarchy.ontology import load_ontology

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
            frames.append(
                pd.DataFrame(
                    {
                        "soma_joinid": np.arange(joinid, joinid + n),
                        "dataset_id": dataset,
                        "donor_id": f"donor{d}",
                        "cell_type_ontology_term_id": term,
                        "cell_type": term,
                        "assay": "10x 3' v3",
                        "tissue": "blood",
                        "tissue_general": "blood",
                        "disease": "normal",
                        "is_primary_data": True,
                    }
                )
            )
            joinid += n
    return pd.concat(frames, ignore_index=True)


def test_filters_drop_generic_terms_and_rare_types(cl):
    assert len(cl.ancestors(B_CELL)) > 7 and len(cl.ancestors(LEUKOCYTE)) <= 7
    obs = _obs(
        [
            (CD8, "d1", 3, 20),
            (CD8, "d2", 2, 20),  # 100 cells in 5 tech_samples: kept
            (B_CELL, "d1", 2, 40),  # 80 cells in 2 tech_samples: too few tech_samples
            (LEUKOCYTE, "d1", 5, 50),  # generic
            (CELL, "d2", 5, 50),  # not under native cell
        ]
    )
    filters = dict(
        min_cells_per_type=50, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7
    )
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


# -- the paper's filters on a census built to pass and fail them ----------------------------------------
ROOT = resources.files("hcebench")


def _types(cl):
    names = (ROOT / "resources" / "sctab_cell_types_2023-05-15.txt").read_text().splitlines()
    return [cl.id_of(n) for n in names]


def _block(term, cells, tech_samples, *, primary=True, assay="10x 3' v3", dataset="ds"):
    per = np.full(tech_samples, cells // tech_samples)
    per[: cells - per.sum()] += 1
    donors = np.repeat([f"donor{i}" for i in range(tech_samples)], per)
    return pd.DataFrame(
        {
            "cell_type_ontology_term_id": term,
            "donor_id": donors,
            "dataset_id": dataset,
            "is_primary_data": primary,
            "assay": assay,
        }
    )


def write_obs_census(path, obs: pd.DataFrame, names: dict) -> None:
    """A census directory in the Census layout with this obs (and an empty X): enough for cell selection."""
    n = len(obs)
    create_release(path, n, 1)
    full = pd.DataFrame({"soma_joinid": np.arange(n, dtype=np.int64)})
    for field in OBS_SCHEMA:
        if field.name == "soma_joinid":
            continue
        if field.name in obs:
            full[field.name] = obs[field.name].to_numpy()
        elif field.name == "cell_type":
            full[field.name] = obs["cell_type_ontology_term_id"].map(names).to_numpy()
        elif pa_is_number(field.type):
            full[field.name] = np.zeros(n, dtype=field.type.to_pandas_dtype())
        else:
            full[field.name] = "unknown"
    write_dataframe(path / "census_data" / "homo_sapiens" / "obs", full, OBS_SCHEMA)
    summary = pd.DataFrame({"soma_joinid": [0], "label": ["census_build_date"], "value": ["2023-05-15"]})
    write_dataframe(path / "census_info" / "summary", summary, SUMMARY_SCHEMA)


def pa_is_number(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t)


def test_paper_filters_select_exactly_the_sctab_label_set(tmp_path, cl):
    config = load_config(resources.files("hcebench").parent.parent / "config" / "paper.yaml")
    wanted = _types(cl)
    rng = np.random.default_rng(0)
    blocks = [
        _block(t, 5000 + int(rng.integers(0, 300)), 31 + int(rng.integers(0, 5)), dataset=f"ds{i % 40}")
        for i, t in enumerate(wanted)
    ]
    # Deep native-cell types outside scTab's set, to fail the count filters and the primary/assay filters.
    others = sorted(
        t
        for t in cl.names
        if t.startswith("CL:")
        and t not in wanted
        and t not in cl.obsolete
        and cl.is_subtype(t, "CL:0000003")
        and len(cl.ancestors(t)) > 7
    )
    short, few, duplicated, plate = others[:4]
    fails = {
        "CL:0000000": dict(cells=9000, tech_samples=40),  # "cell": not a native cell
        "CL:0000988": dict(cells=9000, tech_samples=40),  # hematopoietic cell: 5 is_a ancestors
        "CL:0000057": dict(cells=9000, tech_samples=40),  # fibroblast: 6 ancestors
        short: dict(cells=4999, tech_samples=40),  # one cell short of 5,000
        few: dict(cells=9000, tech_samples=30),  # 30 tech_samples, not more than 30
    }
    for term, kw in fails.items():
        assert term not in wanted
        blocks.append(_block(term, **kw))
    # Types that would pass every type filter, but whose cells are non-primary or from a non-10x assay.
    blocks.append(_block(duplicated, 9000, 40, primary=False))
    blocks.append(_block(plate, 9000, 40, assay="Smart-seq2"))
    obs = pd.concat(blocks, ignore_index=True)
    write_obs_census(tmp_path / "census", obs, cl.names)
    selection = select_from_census({"uri": str(tmp_path / "census")}, config, cl)
    assert sorted(selection.labels) == sorted(wanted)
    assert len(selection.labels) == 164
    dropped = {**selection.report["dropped_types_ontology"], **selection.report["dropped_types_counts"]}
    assert set(dropped) == set(fails)
    assert selection.report["cells_after_primary_assay"] == len(obs) - 18000
