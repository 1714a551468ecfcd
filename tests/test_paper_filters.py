"""The paper's filters reproduce scTab's 164 cell types on a census built to pass and fail them.

Offline stand-in for running config/paper.yaml on Census 2023-05-15: a census in the Census layout whose obs
holds every one of scTab's 164 types above the paper's thresholds (≥ 5,000 cells in > 30 tech_samples, primary,
10x), plus distractor types that each fail exactly one filter. Selection through the same code path as the
workflow (open_census → read_obs with the SOMA value filter → select_cells) must return exactly the 164.
"""

from importlib import resources

import numpy as np
import pandas as pd
import pytest
from hcebench.config import load_config
from hcebench.ontology import load_ontology
from hcebench.selection import select_from_census
from hcebench.simulate import OBS_SCHEMA, SUMMARY_SCHEMA, _create_release, _write_df

ROOT = resources.files("hcebench")


@pytest.fixture(scope="module")
def cl():
    return load_ontology("bundled:v2022-09-15")


def _types(cl):
    names = (ROOT / "data" / "sctab_cell_types_2023-05-15.txt").read_text().splitlines()
    return [cl.id_of(n) for n in names]


def _block(term, cells, tech_samples, *, primary=True, assay="10x 3' v3", dataset="ds"):
    per = np.full(tech_samples, cells // tech_samples)
    per[: cells - per.sum()] += 1
    donors = np.repeat([f"donor{i}" for i in range(tech_samples)], per)
    return pd.DataFrame({"cell_type_ontology_term_id": term, "donor_id": donors, "dataset_id": dataset,
                         "is_primary_data": primary, "assay": assay})


def write_obs_census(path, obs: pd.DataFrame, names: dict) -> None:
    """A census directory in the Census layout with this obs (and an empty X): enough for cell selection."""
    n = len(obs)
    _create_release(path, n, 1)
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
    _write_df(path / "census_data" / "homo_sapiens" / "obs", full, OBS_SCHEMA)
    summary = pd.DataFrame({"soma_joinid": [0], "label": ["census_build_date"], "value": ["2023-05-15"]})
    _write_df(path / "census_info" / "summary", summary, SUMMARY_SCHEMA)


def pa_is_number(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t)


def test_paper_filters_select_exactly_the_sctab_label_set(tmp_path, cl):
    config = load_config(resources.files("hcebench").parent.parent / "config" / "paper.yaml")
    wanted = _types(cl)
    rng = np.random.default_rng(0)
    blocks = [_block(t, 5000 + int(rng.integers(0, 300)), 31 + int(rng.integers(0, 5)), dataset=f"ds{i % 40}")
              for i, t in enumerate(wanted)]
    # Deep native-cell types outside scTab's set, to fail the count filters and the primary/assay filters.
    others = sorted(t for t in cl.names if t.startswith("CL:") and t not in wanted and t not in cl.obsolete
                    and cl.is_subtype(t, "CL:0000003") and len(cl.ancestors(t)) > 7)
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
