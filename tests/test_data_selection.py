"""scTab's cell selection on hand-built obs with real Cell Ontology terms, the split, class weights.

Below, the paper's filters reproduce scTab's 164 cell types on a census built to pass and fail them: an offline
stand-in for running config/paper.yaml on Census 2023-05-15: a census in the Census layout whose obs
holds every one of scTab's 164 types above the paper's thresholds (≥ 5,000 cells in > 30 tech_samples, primary,
10x), plus distractor types that each fail exactly one filter. Selection through the same code path as the
workflow (open_census → read_obs with the SOMA value filter → select_cells) must return exactly the 164, with the
filters alone and with the paper's pin (filters.pinned_labels), whose report lists what the filters would change.
"""

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from hcebench.config import load_config, schema_defaults
from hcebench.data.census import open_census, read_obs
from hcebench.data.selection import (
    OBS_COLUMNS,
    balanced_class_weights,
    label_indices,
    obs_value_filter,
    read_cells,
    resolve_pinned_labels,
    select_cells,
    select_from_census,
    split_tech_samples,
    store_order,
    tech_sample,
    write_cells,
)
from hcebench.data.simulate import OBS_SCHEMA, SUMMARY_SCHEMA, create_release, write_dataframe
from hcebench.errors import ConfigError, DataError, OntologyError
from hcebench.hierarchy.ontology import load_ontology
from hcebench.settings import Filters, SelectionSettings

CD8 = "CL:0000625"  # CD8-positive, alpha-beta T cell (deep)
B_CELL = "CL:0000236"  # B cell: 13 ancestors, deep enough
LEUKOCYTE = "CL:0000988"  # hematopoietic cell: too generic (5 ancestors)
CELL = "CL:0000000"  # cell: not a descendant of native cell
OBSOLETE = "CL:0000002"  # immortal cell line cell: obsolete in CL v2022-09-15
UNKNOWN = "CL:9999999"  # no such term
#: The limits the validated config always holds (their schema defaults), for filters built by hand.
LIMITS = {"max_unknown_label_fraction": 0.01}


def filters_of(values: dict) -> Filters:
    """Filters from hand-written ``values``, every other key at its schema default."""
    return Filters.from_params({**schema_defaults("filters"), **values})


def select(obs, ontology, values: dict):
    """``select_cells`` with filters written by hand (``filters_of``)."""
    return select_cells(obs, ontology, filters_of(values))


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
        min_cells_per_type=50, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7, **LIMITS
    )
    sel = select(obs, cl, filters)
    assert sel.labels == [CD8]
    assert set(sel.cells["label"]) == {CD8}
    assert len(sel.cells) == 100
    assert B_CELL in sel.report["dropped_types_counts"]
    assert LEUKOCYTE in sel.report["dropped_types_ontology"] and CELL in sel.report["dropped_types_ontology"]
    assert set(sel.cells["tech_sample"]) == {"d1_donor0", "d1_donor1", "d1_donor2", "d2_donor0", "d2_donor1"}


def test_min_cells_is_inclusive_and_tech_samples_strict(cl):
    obs = _obs([(CD8, "d1", 4, 25)])  # exactly 100 cells in exactly 4 tech_samples
    ok = dict(
        min_cells_per_type=100, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7, **LIMITS
    )
    assert select(obs, cl, ok).labels == [CD8]
    with pytest.raises(ValueError, match="min_tech_samples_per_type"):
        select(obs, cl, {**ok, "min_tech_samples_per_type": 4})


def test_split_keeps_tech_samples_whole_and_is_deterministic():
    ts = pd.Series([f"ts{i % 40}" for i in range(4000)])
    split = split_tech_samples(ts, seed=1, fractions=[0.7, 0.15, 0.15])
    per_ts = pd.DataFrame({"ts": ts, "split": split}).groupby("ts")["split"].nunique()
    assert (per_ts == 1).all()
    counts = pd.DataFrame({"ts": ts, "split": split}).drop_duplicates().groupby("split").size()
    assert counts.to_dict() == {"train": 28, "val": 6, "test": 6}
    assert split_tech_samples(ts, 1, [0.7, 0.15, 0.15]).equals(split)
    assert not split_tech_samples(ts, 2, [0.7, 0.15, 0.15]).equals(split)


def _tech_samples(seed: int, n: int = 37) -> pd.Series:
    """Cells of ``n`` tech_samples of uneven sizes, first appearing in an order unlike their sorted order."""
    rng = np.random.default_rng(seed)
    names = [f"ds{rng.integers(100)}_donor{i}" for i in rng.permutation(n)]
    cells = np.repeat(names, rng.integers(1, 30, n))
    return pd.Series(cells[rng.permutation(len(cells))])


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fractions", [[0.7, 0.15, 0.15], [0.8, 0.1, 0.1], [0.5, 0.25, 0.25]])
def test_split_is_the_notebooks_split(seed, fractions):
    from sctab_reference import SPLITS, notebook_split

    ts = _tech_samples(seed)
    split = split_tech_samples(ts, seed, fractions)
    expected = notebook_split(ts, seed, val=fractions[1], test=fractions[2])
    for name in SPLITS:
        np.testing.assert_array_equal(np.flatnonzero(split.to_numpy() == name), expected[name])
    # Order of first appearance counts: the same cells in reverse order give the notebook's split of that order,
    # which puts some cells in another split than the forward order did.
    backwards = ts[::-1].reset_index(drop=True)
    expected = notebook_split(backwards, seed, val=fractions[1], test=fractions[2])
    got = split_tech_samples(backwards, seed, fractions).to_numpy()
    for name in SPLITS:
        np.testing.assert_array_equal(np.flatnonzero(got == name), expected[name])
    assert (got != split.to_numpy()[::-1]).any()


def test_split_sizes_round_val_and_test_up():
    ts = pd.Series([f"ts{i}" for i in range(30)])  # 0.15 · 30 = 4.5: 5 each for val and test, 20 for train
    split = split_tech_samples(ts, 1, [0.7, 0.15, 0.15])
    assert split.value_counts().to_dict() == {"train": 20, "val": 5, "test": 5}


def test_store_order_is_the_notebooks_permutation():
    from sctab_reference import SPLITS, notebook_order, notebook_split

    ts = _tech_samples(3, n=60)
    split = split_tech_samples(ts, 1, [0.7, 0.15, 0.15])
    expected = notebook_order(notebook_split(ts, 1))
    order = store_order(split, 1)
    for name in SPLITS:
        np.testing.assert_array_equal(order[name], expected[name])
        assert sorted(order[name]) == sorted(np.flatnonzero(split.to_numpy() == name))
    assert not np.array_equal(store_order(split, 2)["train"], order["train"])


def test_split_too_small_is_an_error():
    with pytest.raises(ValueError, match="split.fractions"):
        split_tech_samples(pd.Series(["a", "b"]), 1, [0.7, 0.15, 0.15])


def test_balanced_class_weights_by_hand():
    y = np.array([0, 0, 0, 1])  # n=4, k=3 -> class 0: 4/(3*3), class 1: 4/(3*1), class 2 absent: 0
    np.testing.assert_allclose(balanced_class_weights(y, 3), [4 / 9, 4 / 3, 0.0], rtol=1e-6)


def test_value_filter_text():
    f = obs_value_filter(filters_of({"is_primary_data": True, "assays": ["10x 3' v3"]}), ["ds1"])
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


PAPER_CONFIG = ROOT.parent.parent / "config" / "paper.yaml"


@pytest.fixture(scope="module")
def sctab_census(tmp_path_factory, cl):
    """The census above: scTab's 164 types (5,000-5,299 cells in 31-35 tech_samples each), distractors that
    each fail one filter, and non-primary cells of one of the 164 (which no selection may keep)."""
    wanted = _types(cl)
    rng = np.random.default_rng(0)
    sizes = {t: (5000 + int(rng.integers(0, 300)), 31 + int(rng.integers(0, 5))) for t in wanted}
    blocks = [_block(t, n, ts, dataset=f"ds{i % 40}") for i, (t, (n, ts)) in enumerate(sizes.items())]
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
    blocks.append(_block(wanted[0], 500, 5, primary=False, dataset="dsdup"))  # a pinned type's duplicates
    obs = pd.concat(blocks, ignore_index=True)
    path = tmp_path_factory.mktemp("sctab_census") / "census"
    write_obs_census(path, obs, cl.names)
    return {
        "source": {"uri": str(path)},
        "obs": obs,
        "wanted": wanted,
        "sizes": sizes,
        "fails": fails,
        "short": short,
    }


def test_paper_filters_select_exactly_the_sctab_label_set(sctab_census, cl):
    config = load_config(PAPER_CONFIG)
    config["filters"]["pinned_labels"] = None  # the filters alone
    wanted, obs = sctab_census["wanted"], sctab_census["obs"]
    selection = select_from_census(sctab_census["source"], SelectionSettings.from_config(config), cl)
    assert sorted(selection.labels) == sorted(wanted)
    assert len(selection.labels) == 164
    dropped = {**selection.report["dropped_types_ontology"], **selection.report["dropped_types_counts"]}
    assert set(dropped) == set(sctab_census["fails"])
    assert selection.report["cells_after_primary_assay"] == len(obs) - 18500
    assert "filters_vs_pinned" not in selection.report


def test_paper_config_pins_the_sctab_labels_and_keeps_only_their_primary_10x_cells(sctab_census, cl):
    config = load_config(PAPER_CONFIG)
    assert config["filters"]["pinned_labels"] == "bundled:sctab_2023-05-15"
    wanted, sizes = sctab_census["wanted"], sctab_census["sizes"]
    selection = select_from_census(sctab_census["source"], SelectionSettings.from_config(config), cl)
    assert sorted(selection.labels) == sorted(wanted)
    # Every primary 10x cell of the pinned types, and nothing else: not wanted[0]'s 500 non-primary cells.
    assert len(selection.cells) == sum(n for n, _ in sizes.values())
    assert selection.cells.groupby("label", observed=True).size().to_dict() == {
        t: n for t, (n, _) in sizes.items()
    }
    pin = selection.report["pinned_labels"]
    assert (pin["n_pinned"], pin["n_present"], pin["absent"]) == (164, 164, {})
    # On this census the paper's filters agree with the pin.
    versus = selection.report["filters_vs_pinned"]
    assert versus == {"n_labels_filters_keep": 164, "would_add": {}, "would_drop": {}}


def test_pin_report_lists_the_types_the_filters_would_add_and_drop(sctab_census, cl):
    config = load_config(PAPER_CONFIG)
    with open_census(sctab_census["source"]) as census:
        obs = read_obs(census, obs_value_filter(Filters.from_config(config)), OBS_COLUMNS)
    # Thresholds under which the filters admit `short` (4,999 cells in 40 tech_samples) and reject the pinned
    # types that have exactly 31 tech_samples.
    filters = {**config["filters"], "min_cells_per_type": 4999, "min_tech_samples_per_type": 31}
    selection = select(obs, cl, filters)
    short, sizes = sctab_census["short"], sctab_census["sizes"]
    assert sorted(selection.labels) == sorted(sctab_census["wanted"])  # the pin decides
    assert short not in set(selection.cells["label"])
    versus = selection.report["filters_vs_pinned"]
    assert versus["would_add"] == {short: {"name": cl.name(short), "n_cells": 4999, "n_tech_samples": 40}}
    thin = {t for t, (_, ts) in sizes.items() if ts == 31}
    assert thin and set(versus["would_drop"]) == thin
    for t in thin:
        entry = versus["would_drop"][t]
        assert entry["name"] == cl.name(t)
        assert (entry["n_cells"], entry["n_tech_samples"]) == (sizes[t][0], 31)
        assert entry["reason"] == f"{sizes[t][0]} cells in 31 tech_samples"
    assert versus["n_labels_filters_keep"] == 164 - len(thin) + 1


def test_bundled_sctab_pin_is_164_distinct_live_cl_terms(cl):
    names = (ROOT / "resources" / "sctab_cell_types_2023-05-15.txt").read_text().splitlines()
    ids = resolve_pinned_labels("bundled:sctab_2023-05-15", cl)
    assert len(ids) == len(set(ids)) == 164
    assert cl.release == "v2022-09-15"
    assert all(t in cl.names and t not in cl.obsolete for t in ids)
    assert [cl.name(t) for t in ids] == names  # name -> id -> the same name


def test_pin_file_of_names_and_ids_with_an_absent_type(tmp_path, cl):
    CD4, T_CELL = "CL:0000624", "CL:0000084"
    pin = tmp_path / "labels.txt"
    pin.write_text(f"# my label set\n{CD8}\nB cell\n\nT cell\n")
    obs = _obs(
        [
            (CD8, "d1", 5, 20),  # 100 cells in 5 tech_samples: passes the filters
            (B_CELL, "d1", 2, 40),  # pinned, but the filters would drop it: too few tech_samples
            (CD4, "d2", 5, 20),  # not pinned, but the filters would keep it
            (LEUKOCYTE, "d1", 5, 50),  # neither
        ]
    )
    filters = dict(
        min_cells_per_type=50,
        min_tech_samples_per_type=3,
        root_term="CL:0000003",
        min_ancestors=7,
        pinned_labels=str(pin),
        **LIMITS,
    )
    sel = select(obs, cl, filters)
    assert sel.labels == [B_CELL, CD8]  # ordered by name
    assert sel.cells.groupby("label").size().to_dict() == {B_CELL: 80, CD8: 100}
    assert sel.report["pinned_labels"]["absent"] == {T_CELL: "T cell"}
    versus = sel.report["filters_vs_pinned"]
    assert versus["would_add"] == {CD4: {"name": cl.name(CD4), "n_cells": 100, "n_tech_samples": 5}}
    assert versus["would_drop"][B_CELL] == {
        "name": "B cell",
        "n_cells": 80,
        "n_tech_samples": 2,
        "reason": "80 cells in 2 tech_samples",
    }
    assert versus["would_drop"][T_CELL]["n_cells"] == 0
    assert set(versus["would_drop"]) == {B_CELL, T_CELL}


def test_pin_errors_name_every_entry_that_does_not_resolve(tmp_path, cl):
    pin = tmp_path / "labels.txt"
    pin.write_text("B cell\nno such cell\nimmortal cell line cell\nCL:0000236\nCL:9999999\n")
    with pytest.raises(OntologyError) as err:
        resolve_pinned_labels(str(pin), cl)
    message = str(err.value)
    assert "filters.pinned_labels" in message and "4 of 5 entries" in message
    assert "'no such cell' is not a term name" in message
    assert "'immortal cell line cell' is obsolete (CL:0000002; replaced by: CLO:0000019)" in message
    assert "CL:0000236 (B cell) is listed twice" in message
    assert "'CL:9999999' is not a term id" in message
    with pytest.raises(ConfigError, match="bundled:sctab_2023-05-15"):
        resolve_pinned_labels("bundled:sctab_1999", cl)
    with pytest.raises(ConfigError, match="is not a file"):
        resolve_pinned_labels(str(tmp_path / "missing.txt"), cl)


# -- data checks: labels outside the ontology, the root term ---------------------------------------------
def _with_off_ontology_labels(obsolete_cells: int, unknown_cells: int) -> pd.DataFrame:
    obs = _obs([(CD8, "d1", 5, 100), (OBSOLETE, "d2", 1, obsolete_cells), (UNKNOWN, "d3", 1, unknown_cells)])
    obs.loc[obs["cell_type_ontology_term_id"] == UNKNOWN, "cell_type"] = "brand-new cell"
    return obs


FILTERS = dict(min_cells_per_type=50, min_tech_samples_per_type=3, root_term="CL:0000003", min_ancestors=7)


def test_labels_outside_the_ontology_are_a_counted_warning_under_the_limit(cl, caplog):
    obs = _with_off_ontology_labels(obsolete_cells=3, unknown_cells=2)  # 5 of 505 cells: 0.99 %
    with caplog.at_level("WARNING", logger="hcebench.data.checks"):
        sel = select(obs, cl, {**FILTERS, "max_unknown_label_fraction": 0.01})
    assert sel.labels == [CD8] and len(sel.cells) == 500
    report = sel.report["labels_outside_ontology"]
    assert (report["n_cells"], report["max_fraction"]) == (5, 0.01)
    assert report["fraction"] == pytest.approx(5 / 505)
    assert report["labels"] == {
        OBSOLETE: {
            "name": "obsolete immortal cell line cell",
            "n_cells": 3,
            "why": "obsolete in Cell Ontology v2022-09-15 (replaced by: CLO:0000019)",
        },
        UNKNOWN: {"name": "brand-new cell", "n_cells": 2, "why": "not in Cell Ontology v2022-09-15"},
    }
    [warning] = [r.getMessage() for r in caplog.records]
    assert "5 of 505 cells (0.99%, within filters.max_unknown_label_fraction: 0.01)" in warning
    assert f"{OBSOLETE} 'obsolete immortal cell line cell' (3 cells;" in warning


def test_labels_outside_the_ontology_past_the_limit_are_an_error_naming_them(cl):
    obs = _with_off_ontology_labels(obsolete_cells=4, unknown_cells=2)  # 6 of 506 cells: 1.19 %
    with pytest.raises(DataError) as err:
        select(obs, cl, {**FILTERS, "max_unknown_label_fraction": 0.01})
    message = str(err.value)
    assert "\n" not in message
    assert "6 of 506 cells (1.19%), more than filters.max_unknown_label_fraction: 0.01" in message
    assert f"{OBSOLETE} 'obsolete immortal cell line cell' (4 cells; obsolete" in message
    assert f"{UNKNOWN} 'brand-new cell' (2 cells; not in Cell Ontology v2022-09-15)" in message
    assert "ontology.source" in message


def test_none_outside_the_ontology_is_reported_as_zero(cl):
    sel = select(_obs([(CD8, "d1", 5, 20)]), cl, {**FILTERS, **LIMITS})
    assert sel.report["labels_outside_ontology"] == {
        "n_cells": 0,
        "fraction": 0.0,
        "max_fraction": 0.01,
        "labels": {},
    }


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("CL:9999999", "filters.root_term 'CL:9999999' is not a term of Cell Ontology v2022-09-15"),
        (OBSOLETE, "filters.root_term 'CL:0000002' .* is obsolete in Cell Ontology v2022-09-15"),
    ],
)
def test_a_root_term_the_ontology_lacks_is_an_error_before_the_census_is_read(cl, tmp_path, root, message):
    config = load_config(PAPER_CONFIG)
    config["filters"]["root_term"] = root
    # The census does not exist: the error must come before any attempt to open it.
    with pytest.raises(ConfigError, match=message):
        select_from_census({"uri": str(tmp_path / "no census")}, SelectionSettings.from_config(config), cl)
    with pytest.raises(ConfigError, match=message):
        select(_obs([(CD8, "d1", 5, 20)]), cl, {**FILTERS, **LIMITS, "root_term": root})


def test_settings_without_the_limit_say_which_key_is_missing(cl):
    values = {**schema_defaults("filters"), **FILTERS}
    del values["max_unknown_label_fraction"]
    with pytest.raises(ConfigError, match="filters.max_unknown_label_fraction is missing"):
        Filters.from_params(values)


def test_a_census_that_leaves_one_label_stops_the_selection(cl, monkeypatch):
    # One label scores every model 1.0: the selection refuses it rather than building a benchmark of nothing.
    import contextlib

    from hcebench.data import selection as module

    config = load_config(PAPER_CONFIG)
    config["filters"].update(min_cells_per_type=1, min_tech_samples_per_type=0, pinned_labels=None)
    monkeypatch.setattr(module, "open_census", lambda source: contextlib.nullcontext())
    monkeypatch.setattr(module, "census_release", lambda source, census: "2023-05-15")
    monkeypatch.setattr(module, "read_obs", lambda *args, **kwargs: _obs([(CD8, "d1", 5, 20)]))
    with pytest.raises(
        ValueError, match=r"the filters leave 1 cell type \(CL:0000625\): a benchmark of one label"
    ):
        select_from_census({"uri": "a census"}, SelectionSettings.from_config(config), cl)


def test_sctab_label_order_is_the_pandas_categorical_order_of_scTabs_names(cl):
    from hcebench.data.selection import order_labels
    from sctab_reference import categorical_label_order

    names = (ROOT / "resources" / "sctab_cell_types_2023-05-15.txt").read_text().splitlines()
    ids = resolve_pinned_labels("bundled:sctab_2023-05-15", cl)
    name_of = dict(zip(ids, names, strict=True))
    sctab = [name_of[t] for t in order_labels(ids, name_of, "sctab")]
    assert sctab == categorical_label_order(names)
    casefold = [name_of[t] for t in order_labels(ids, name_of, "casefold")]
    assert casefold == sorted(names, key=str.lower)
    assert sum(a != b for a, b in zip(sctab, casefold, strict=True)) == 156  # the count
    with pytest.raises(ConfigError, match="filters.label_order"):
        order_labels(ids, name_of, "alphabetical")


def test_select_cells_orders_labels_by_the_census_names_under_sctab_order(cl):
    obs = _obs([(CD8, "d1", 5, 20), (B_CELL, "d1", 5, 20)])
    # Names as a census spells them: a lower-case first letter sorts after "B cell" case-sensitively only.
    obs["cell_type"] = obs["cell_type_ontology_term_id"].map({CD8: "a CD8 T cell", B_CELL: "B cell"})
    values = {"min_cells_per_type": 1, "min_tech_samples_per_type": 0, "min_ancestors": 0}
    assert select(obs, cl, {**values, "label_order": "sctab"}).labels == [B_CELL, CD8]
    obs["cell_type"] = obs["cell_type_ontology_term_id"].map({CD8: "A CD8 T cell", B_CELL: "b cell"})
    assert select(obs, cl, {**values, "label_order": "sctab"}).labels == [CD8, B_CELL]
    # casefold keeps the ontology's names ("B cell" < "CD8-positive, ..."), whatever the census spells.
    assert select(obs, cl, {**values, "label_order": "casefold"}).labels == [B_CELL, CD8]


@pytest.mark.parametrize("row_multiple", [1, 7, 16])
def test_store_order_truncates_each_split_as_scTabs_merlin_store(row_multiple):
    """03_write_store_merlin.ipynb keeps (n // 1024) * 1024 rows of each split, the head of its permuted order;
    restated in tests/sctab_reference.py (merlin_rows) with the row group as a parameter."""
    from sctab_reference import SPLITS, merlin_rows, notebook_order, notebook_split

    ts = _tech_samples(3, n=60)
    split = split_tech_samples(ts, 1, [0.7, 0.15, 0.15])
    expected = notebook_order(notebook_split(ts, 1))
    order = store_order(split, 1, row_multiple)
    for name in SPLITS:
        np.testing.assert_array_equal(order[name], merlin_rows(expected[name], row_multiple))
        assert len(order[name]) % row_multiple == 0
        assert len(expected[name]) - len(order[name]) < row_multiple
    with pytest.raises(ConfigError, match="split.row_multiple"):
        store_order(split, 1, 10_000)


def test_tech_sample_of_categoricals_is_the_strings_as_a_categorical():
    # What the OOD build reads (categoricals) names every cell's tech_sample as the plain strings do, two pairs
    # that join to one name included, with a few bytes per cell instead of a new string each.
    obs = pd.DataFrame(
        {
            "dataset_id": ["a_b", "a", "x", "x", "x", "a_b"] * 1000,
            "donor_id": ["c", "b_c", "2", "1", "2", "c"] * 1000,
        }
    )
    plain = tech_sample(obs)
    categorical = tech_sample(obs.astype("category"))
    assert isinstance(categorical.dtype, pd.CategoricalDtype)
    assert categorical.astype(str).tolist() == plain.tolist()
    assert categorical.cat.categories.tolist() == ["a_b_c", "x_1", "x_2"]  # string order, each name once
    assert categorical.memory_usage(deep=True) < plain.memory_usage(deep=True) / 10


def test_the_cells_table_reads_back_as_categoricals_with_its_values(tmp_path):
    cells = pd.DataFrame(
        {
            "soma_joinid": np.arange(6, dtype=np.int64),
            "label": ["CL:2", "CL:1", "CL:2", "CL:3", "CL:1", "CL:2"],
            "split": ["train", "val", "train", "test", "train", "val"],
        }
    )
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    read = read_cells(tmp_path / "cells.parquet")
    assert isinstance(read["label"].dtype, pd.CategoricalDtype) and read["soma_joinid"].dtype == np.int64
    pd.testing.assert_frame_equal(read.astype({"label": object, "split": object}), cells)
    assert list(read_cells(tmp_path / "cells.parquet", ["label"]).columns) == ["label"]
    labels = ["CL:1", "CL:2", "CL:3"]
    expected = np.array([1, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(label_indices(read["label"], labels, "the cells"), expected)
    np.testing.assert_array_equal(label_indices(cells["label"], labels, "the cells"), expected)
    with pytest.raises(
        DataError, match=r"the cells: 2 cells carry labels outside the 2 labels \(\['CL:1'\]\)"
    ):
        label_indices(read["label"], labels[1:], "the cells")


def test_a_selection_from_categoricals_is_the_selection_from_strings(sctab_census, cl, tmp_path):
    # select_from_census reads obs as categoricals (a code per cell): the cells, labels and report, its key order
    # included, are those of the same obs read as strings, and the cells file is the same bytes. Thresholds
    # under which some types are dropped by counts, so the report lists them.
    config = load_config(PAPER_CONFIG)
    filters = {**config["filters"], "min_cells_per_type": 4999, "min_tech_samples_per_type": 31}
    with open_census(sctab_census["source"]) as census:
        strings = read_obs(census, obs_value_filter(Filters.from_config(config)), OBS_COLUMNS)
        codes = read_obs(census, obs_value_filter(Filters.from_config(config)), OBS_COLUMNS, plain=False)
    assert isinstance(codes["dataset_id"].dtype, pd.CategoricalDtype)
    plain, categorical = select(strings, cl, filters), select(codes, cl, filters)
    assert categorical.labels == plain.labels
    assert json.dumps(categorical.report) == json.dumps(plain.report)
    assert plain.report["dropped_types_counts"] and plain.report["filters_vs_pinned"]["would_drop"]
    assert isinstance(categorical.cells["label"].dtype, pd.CategoricalDtype)
    fractions = [0.7, 0.15, 0.15]
    assert (
        split_tech_samples(categorical.cells["tech_sample"], 1, fractions).tolist()
        == split_tech_samples(plain.cells["tech_sample"], 1, fractions).tolist()
    )
    write_cells(categorical.cells, tmp_path / "categorical.parquet", row_group=10_000)
    plain.cells.to_parquet(tmp_path / "plain.parquet", index=False, row_group_size=10_000)
    assert (tmp_path / "categorical.parquet").read_bytes() == (tmp_path / "plain.parquet").read_bytes()
    pd.testing.assert_frame_equal(
        read_cells(tmp_path / "categorical.parquet"), read_cells(tmp_path / "plain.parquet")
    )
    assert len(categorical.cells) > 10_000  # several row groups
