"""hcebench.data.build (and the reads, genes, shuffle and workers it uses): the training store in scTab's split
and cell order, written with bounded memory, in one process or several; and what that order does to the paper
loader's ghost batches."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hcebench import memory
from hcebench.config import load_config
from hcebench.data import reads, shuffle
from hcebench.data.build import build_training_store
from hcebench.data.census import open_census, read_obs, read_var
from hcebench.data.genes import gene_match_counts, resolve_genes
from hcebench.data.reads import CENSUS_COUNTS_FIX, CensusRead, census_count_checks
from hcebench.data.selection import obs_value_filter, select_from_census
from hcebench.data.shuffle import write_split_from_census
from hcebench.data.store import SplitData, SplitWriter
from hcebench.data.workers import write_split
from hcebench.errors import CensusError, DataError
from hcebench.settings import Filters, SelectionSettings, StoreSettings
from sctab_reference import SPLITS, notebook_order, notebook_split
from sim_fixtures import build_tiny_census, bundled_ontology

ROOT = Path(__file__).parents[1]
TRAIN = "2023-05-15"


def _config(**census):
    config = load_config(ROOT / "tests" / "data" / "tiny_config.yaml")  # filters sized for a small census
    config["census"].update(census)
    return config


def test_training_store_has_sctabs_split_and_cell_order(tiny_census, tmp_path):
    config = _config(chunk_size=150, build_workers=1)
    source = {"uri": str(tiny_census / "2023-05-15")}
    selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
    meta = build_training_store(
        source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "store"
    )
    assert meta["cell_order"] == "permuted" and meta["split_seed"] == 1
    checked = meta["data_checks"]  # every cell read was checked; the simulated counts have no all-zero cell
    assert (checked["cells"], checked["zero_cells"], checked["zero_cells_by_dataset"]) == (
        len(selection.cells),
        0,
        {},
    )

    # The reference, from the census alone: its cells in the order it returns them, those of the kept labels,
    # through the notebook's two cells (tests/sctab_reference.py).
    with open_census(source) as census:
        obs = read_obs(
            census,
            obs_value_filter(Filters.from_config(config)),
            ["dataset_id", "donor_id", "cell_type_ontology_term_id"],
        )
        obs = obs[obs["cell_type_ontology_term_id"].isin(selection.labels)].reset_index(drop=True)
        expected = notebook_order(notebook_split(obs["dataset_id"] + "_" + obs["donor_id"], seed=1))
        var = read_var(census).set_index("feature_id")
        genes = pd.read_parquet(tmp_path / "store" / "var.parquet")
        for name in SPLITS:
            written = pd.read_parquet(tmp_path / "store" / name / "obs.parquet")
            joinids = obs["soma_joinid"].to_numpy()[expected[name]]
            np.testing.assert_array_equal(written["soma_joinid"].to_numpy(), joinids)
            assert (written["split"] == name).all()
            # X row i is obs row i: the same cells written in soma_joinid order, then put in the store's order.
            in_joinid_order = written.sort_values("soma_joinid").reset_index(drop=True)
            read = CensusRead(
                var_joinids=var.loc[genes["feature_id"], "soma_joinid"].to_numpy(),
                columns=np.arange(len(genes)),
                n_genes=len(genes),
                target_sum=1e4,
                chunk_size=1000,
                organism="homo_sapiens",
            )
            write_split_from_census(census, in_joinid_order, read, tmp_path / f"sorted_{name}")
            store = SplitData.open(tmp_path / "store" / name, len(genes), selection.labels)
            plain = SplitData.open(tmp_path / f"sorted_{name}", len(genes), selection.labels)
            rank = np.searchsorted(plain.obs["soma_joinid"].to_numpy(), joinids)
            assert (store.x != plain.x[rank]).nnz == 0
            np.testing.assert_array_equal(store.y, plain.y[rank])
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "class_weights.npy",
        "meta.json",
        "test",
        "train",
        "val",
        "var.parquet",
    ]  # no bucket left behind


def _spy(monkeypatch):
    """Record the rows each step of a build holds at once: census reads, bucket records, buckets, writer appends."""
    held = {"read": [], "record_buckets": [], "bucket": [], "append": []}
    real_counts, real_append, real_read = reads.iter_counts, shuffle.append_bucket, shuffle.read_bucket

    def iter_counts(*args, **kwargs):
        for ids, x in real_counts(*args, **kwargs):
            held["read"].append(len(ids))
            yield ids, x

    def append_bucket(path, destinations, x):
        held["record_buckets"].append((path.name, set((destinations // 100).tolist())))
        return real_append(path, destinations, x)

    def read_bucket(paths):
        out = real_read(paths)
        held["bucket"].append(len(out[0]))
        return out

    real_writer_append = SplitWriter.append

    def writer_append(self, x, obs):
        held["append"].append(x.shape[0])
        return real_writer_append(self, x, obs)

    monkeypatch.setattr(reads, "iter_counts", iter_counts)
    monkeypatch.setattr(shuffle, "append_bucket", append_bucket)
    monkeypatch.setattr(shuffle, "read_bucket", read_bucket)
    monkeypatch.setattr(SplitWriter, "append", writer_append)
    return held


@pytest.mark.parametrize("permuted", [False, True], ids=["joinid_order", "permuted"])
def test_parallel_build_writes_the_same_split_as_one_process(tiny_census, tmp_path, monkeypatch, permuted):
    source = {"uri": str(tiny_census / "2023-05-15")}
    held = _spy(monkeypatch)
    monkeypatch.setattr(memory, "WORKER_BATCHES_MB", [])
    with open_census(source) as census:
        obs = read_obs(census, "is_primary_data == True", ["dataset_id", "cell_type_ontology_term_id"]).iloc[
            :700
        ]
        if permuted:  # the training store's case; in joinid order, the OOD set's
            obs = obs.iloc[np.random.default_rng(0).permutation(len(obs))]
        genes = read_var(census).sort_values("feature_id").reset_index(drop=True)
        read = CensusRead(
            var_joinids=genes["soma_joinid"].to_numpy(),
            columns=np.arange(len(genes)),
            n_genes=len(genes),
            target_sum=1e4,
            chunk_size=100,
            organism="homo_sapiens",
        )
        checks = {w: census_count_checks(TRAIN) for w in (1, 2, 3)}
        counts = {
            w: write_split(source, census, obs, read, tmp_path / f"w{w}", workers=w, checks=checks[w])
            for w in (1, 2, 3)
        }
    assert counts == {1: 700, 2: 700, 3: 700}
    # Every worker's tally of the count checks reaches the parent: the same as one process's.
    tally = checks[1].to_dict()
    assert sum(tally["cells"].values()) == 700
    assert tally["cells"] == obs.groupby("dataset_id").size().to_dict()
    assert checks[2].to_dict() == checks[3].to_dict() == tally
    for name in ("X.data.f32", "X.indices.i32", "X.indptr.i64", "obs.parquet"):
        one = (tmp_path / "w1" / name).read_bytes()
        assert one == (tmp_path / "w2" / name).read_bytes() == (tmp_path / "w3" / name).read_bytes(), name
    written = pd.read_parquet(tmp_path / "w1" / "obs.parquet")
    np.testing.assert_array_equal(written["soma_joinid"], obs["soma_joinid"])  # row i is obs row i
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1", "w2", "w3"]  # the buckets are gone
    # Each worker reported its own peak memory (an interpreter with numpy and tiledbsoma: over 50 MB); the job's
    # log counts the largest batch that ran at once, summed (the 3-worker build's).
    two, three = memory.WORKER_BATCHES_MB
    assert two > 2 * 50 and three > 3 * 50 and memory.worker_peak_mb() == max(two, three)

    # Bounded memory: no step ever held more than one chunk (100 cells) of rows.
    assert held["read"] and max(held["read"]) <= 100  # this process's census reads (the 1-worker build)
    assert held["append"] and max(held["append"]) <= 100
    # Buckets: the 1-worker build uses none in joinid order (rows are written as read); otherwise each of the
    # 7 buckets holds exactly the 100 rows bound for one chunk of the split.
    assert held["bucket"] == [100] * 7 * (3 if permuted else 2)
    assert all(len(chunks) == 1 and name == f"{chunks.pop()}.bin" for name, chunks in held["record_buckets"])
    assert bool(held["record_buckets"]) == permuted


def test_a_failed_worker_leaves_no_bucket_and_names_the_error(tiny_census, tmp_path):
    source = {"uri": str(tiny_census / "2023-05-15")}
    with open_census(source) as census:
        obs = read_obs(census, "is_primary_data == True", ["dataset_id"]).iloc[:300]
        obs = obs.iloc[::-1]
        genes = read_var(census)
        # The worker's own error, in one line: what a single process would have raised.
        with pytest.raises(
            CensusError, match=r"^store build worker [01] of 2: var joinid \d+ is out of range"
        ):
            read = CensusRead(
                var_joinids=genes["soma_joinid"].to_numpy() + 10**6,  # out of range: every worker fails
                columns=np.arange(len(genes)),
                n_genes=len(genes),
                target_sum=1e4,
                chunk_size=100,
                organism="homo_sapiens",
            )
            write_split(source, census, obs, read, tmp_path / "s", workers=2)
    assert not (tmp_path / ".s.buckets").exists()


@pytest.fixture(scope="module")
def many_tech_samples(tmp_path_factory):
    """A simulated census with > 200 tech_samples of ~200 cells: 150 datasets of 1-2 donors, 50 genes. As in the
    Census, a tech_sample's cells are neighbours in soma_joinid order, and a 128-row block is mostly one of them."""
    return build_tiny_census(
        tmp_path_factory.mktemp("wide") / "sim",
        seed=5,
        n_genes=50,
        n_genes_dropped=2,
        n_genes_added=2,
        n_train_datasets=150,
        donors_per_dataset=(1, 2),
        cells_per_dataset=(250, 350),
        n_ood_datasets=1,
        n_ood_smartseq_datasets=0,
        n_ood_duplicate_datasets=0,
    )


def _ghost_batch_tech_samples(
    data: SplitData, tech_sample: np.ndarray, batch, block, ghost, seeds, *, sort: bool = False
) -> float:
    """Mean distinct tech_samples per ``ghost``-row chunk of the loader's full training batches (TabNet's
    ghost batches: consecutive rows of the batch as the model sees it), over epochs shuffled with ``seeds``.
    ``sort`` hands each batch's rows over sorted, as the loader did before it permuted them."""
    counts = []
    for seed in seeds:
        for rows in data.batch_order(batch, np.random.default_rng(seed), block):
            rows = np.sort(rows) if sort else rows
            if len(rows) == batch:
                counts += [len(set(tech_sample[rows[i : i + ghost]])) for i in range(0, batch, ghost)]
    return float(np.mean(counts))


def test_paper_loader_ghost_batches_mix_tech_samples(many_tech_samples, tmp_path):
    from scipy.stats import hypergeom

    paper = load_config(ROOT / "config" / "paper.yaml")
    batch = paper["training"]["batch_size"]
    block = paper["training"]["shuffle_block_rows"]
    ghost = paper["architectures"]["tabnet"]["virtual_batch_size"]
    config = _config(chunk_size=1000, build_workers=1)
    config["filters"].update(min_cells_per_type=1, min_tech_samples_per_type=0)
    source = {"uri": str(many_tech_samples / "2023-05-15")}
    selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
    assert selection.cells["tech_sample"].nunique() >= 200
    build_training_store(
        source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "store"
    )
    genes = pd.read_parquet(tmp_path / "store" / "var.parquet")
    permuted = SplitData.open(tmp_path / "store" / "train", len(genes))
    with open_census(source) as census:  # the same cells in soma_joinid order: the store before this change
        var = read_var(census).set_index("feature_id")
        read = CensusRead(
            var_joinids=var.loc[genes["feature_id"], "soma_joinid"].to_numpy(),
            columns=np.arange(len(genes)),
            n_genes=len(genes),
            target_sum=1e4,
            chunk_size=1000,
            organism="homo_sapiens",
        )
        write_split_from_census(
            census, permuted.obs.sort_values("soma_joinid"), read, tmp_path / "unpermuted"
        )
    unpermuted = SplitData.open(tmp_path / "unpermuted", len(genes))
    n = len(permuted)
    assert n >= 2 * batch
    seeds = range(5)
    stores = {"permuted": permuted, "unpermuted": unpermuted}
    got = {
        name: _ghost_batch_tech_samples(data, data.obs["tech_sample"].to_numpy(), batch, block, ghost, seeds)
        for name, data in stores.items()
    }
    sorted_batches = _ghost_batch_tech_samples(
        unpermuted, unpermuted.obs["tech_sample"].to_numpy(), batch, block, ghost, seeds, sort=True
    )
    # scTab's expectation: a uniformly random draw of `ghost` training cells (without replacement).
    sizes = permuted.obs["tech_sample"].value_counts().to_numpy()
    expected = float(sum(1 - hypergeom(n, size, ghost).pmf(0) for size in sizes))
    print(
        f"\ndistinct tech_samples per {ghost}-cell ghost batch (batch {batch}, shuffle_block_rows {block}, "
        f"{n} training cells of {len(sizes)} tech_samples): permuted store {got['permuted']:.1f}, "
        f"unpermuted store {got['unpermuted']:.1f} (with batches handed over sorted: {sorted_batches:.1f}), "
        f"uniformly random draw {expected:.1f}"
    )
    assert got["permuted"] >= 0.95 * expected
    assert got["unpermuted"] <= 0.35 * expected
    assert sorted_batches <= got["unpermuted"]


# -- genes: scTab matched its list by feature_name and kept the Census order ---------------------------------------
# A gene list (indexed by Ensembl id, symbols in gene_names as scTab's features.parquet) against a release whose var
# (in soma_joinid order) has: G3's id changed (ENSG3 -> ENSG3b, same symbol), G4 renamed (same id, symbol G4x), and
# a second id for the symbol G2 (ENSG2b). G9 is not in the list.
GENE_LIST = pd.DataFrame({"gene_names": ["G4", "G1", "G2", "G3"]}, index=["ENSG4", "ENSG1", "ENSG2", "ENSG3"])
VAR = pd.DataFrame(
    {
        "soma_joinid": [0, 1, 2, 3, 4, 5],
        "feature_id": ["ENSG9", "ENSG1", "ENSG3b", "ENSG2b", "ENSG2", "ENSG4"],
        "feature_name": ["G9", "G1", "G3", "G2", "G2", "G4x"],
    }
)


@pytest.mark.parametrize(
    ("match", "order", "expected"),
    [
        ("feature_id", "list", ["ENSG4", "ENSG1", "ENSG2"]),  # the list's order; G3's new id is missed
        ("feature_id", "census", ["ENSG1", "ENSG2", "ENSG4"]),
        # By symbol: G4x (renamed) is missed; G2's two ids are both kept, each its own column, so ids stay unique.
        ("feature_name", "list", ["ENSG1", "ENSG2b", "ENSG2", "ENSG3b"]),
        ("feature_name", "census", ["ENSG1", "ENSG3b", "ENSG2b", "ENSG2"]),  # scTab: the Census's order
    ],
)
def test_resolve_genes_by_id_or_by_name(tmp_path, match, order, expected):
    path = tmp_path / "genes.parquet"
    GENE_LIST.to_parquet(path)
    genes = resolve_genes(str(path), VAR, match=match, order=order)
    assert genes["feature_id"].tolist() == expected
    assert genes["feature_id"].is_unique
    names = VAR.set_index("feature_id")["feature_name"]
    assert genes["feature_name"].tolist() == names.loc[expected].tolist()


def test_gene_match_counts_records_both_rules(tmp_path):
    wanted = pd.DataFrame({"feature_id": GENE_LIST.index, "feature_name": GENE_LIST["gene_names"].to_numpy()})
    counts = gene_match_counts(wanted, VAR)
    assert counts["feature_id"] == 3 and counts["feature_name"] == 4
    assert counts["id_not_name"] == ["ENSG4"]  # renamed symbol
    assert counts["name_not_id"] == ["ENSG2b", "ENSG3b"]  # changed id; a second id of a listed symbol


def test_a_gene_list_the_census_barely_holds_is_refused(tmp_path):
    # 2 of 200 listed genes in the census would build a 2-gene store and score nonsense: below half, an error.
    ids = ["ENSG1", "ENSG2"] + [f"ENSX{i}" for i in range(198)]
    path = tmp_path / "other_space.parquet"
    pd.DataFrame({"gene_names": [f"X{i}" for i in range(200)]}, index=pd.Index(ids)).to_parquet(path)
    with pytest.raises(
        ValueError, match=r"only 2 of the 200 genes of genes.source .* are in the census var \(1\.0%"
    ):
        resolve_genes(str(path), VAR)


def test_matching_by_name_needs_a_symbol_column(tmp_path):
    path = tmp_path / "ids_only.parquet"
    pd.DataFrame(index=pd.Index(["ENSG1", "ENSG2"])).to_parquet(path)
    with pytest.raises(ValueError, match="genes.match"):
        resolve_genes(str(path), VAR, match="feature_name")
    with pytest.raises(ValueError, match="genes.order"):
        resolve_genes(str(path), VAR, order="alphabetical")


# -- data checks: bad raw counts, all-zero cells ----------------------------------------------------------
def _raw_counts(uri: str):
    """X/raw of a release as a scipy CSR matrix, read straight from SOMA (independently of the build)."""
    import scipy.sparse as sp
    import tiledbsoma

    with tiledbsoma.open(f"{uri}/census_data/homo_sapiens/ms/RNA/X/raw") as x:
        t = x.read().tables().concat()
        shape = x.shape
    rows, cols = t["soma_dim_0"].to_numpy(), t["soma_dim_1"].to_numpy()
    return sp.csr_matrix((t["soma_data"].to_numpy(), (rows, cols)), shape=shape)


@pytest.fixture(scope="module")
def corrupted_census(tiny_census, tmp_path_factory):
    """A copy of the tiny census whose training release holds bad raw counts: three (NaN, negative, fractional)
    in one cell of dataset A and an infinite one in a cell of dataset B, both cells in one read chunk."""
    import shutil

    import pyarrow as pa
    import tiledbsoma

    root = tmp_path_factory.mktemp("corrupted") / "sim"
    shutil.copytree(tiny_census, root)
    source = {"uri": str(root / TRAIN)}
    config = _config(chunk_size=150, build_workers=1)
    cells = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology()).cells
    # Two neighbours in the train split's read order (soma_joinid) from different datasets, in one 150-cell chunk.
    train = cells[cells["split"] == "train"].sort_values("soma_joinid").reset_index(drop=True)
    edge = next(
        i
        for i in range(len(train) - 1)
        if train.dataset_id[i] != train.dataset_id[i + 1] and i // 150 == (i + 1) // 150
    )
    a, b = train.iloc[edge], train.iloc[edge + 1]
    x = _raw_counts(source["uri"])
    genes_a = x[int(a.soma_joinid)].indices[:3]
    genes_b = x[int(b.soma_joinid)].indices[:1]
    with tiledbsoma.open(f"{source['uri']}/census_data/homo_sapiens/ms/RNA/X/raw", mode="w") as raw:
        raw.write(  # a later fragment: its values replace the stored ones on read
            pa.table(
                {
                    "soma_dim_0": pa.array([a.soma_joinid] * 3 + [b.soma_joinid], pa.int64()),
                    "soma_dim_1": pa.array([*genes_a, *genes_b], pa.int64()),
                    "soma_data": pa.array([np.nan, -2.0, 0.5, np.inf], pa.float32()),
                }
            )
        )
    return {"source": source, "cells": cells, "a": a.dataset_id, "b": b.dataset_id}


def test_bad_raw_counts_are_an_error_naming_the_datasets_and_counts(corrupted_census, tmp_path):
    config = _config(chunk_size=150, build_workers=1)
    cells = corrupted_census["cells"]
    labels = sorted(set(cells["label"]))
    with pytest.raises(DataError) as err:
        build_training_store(
            corrupted_census["source"], cells, labels, StoreSettings.from_config(config), tmp_path / "store"
        )
    a, b = corrupted_census["a"], corrupted_census["b"]
    assert str(err.value) == (
        f"census {TRAIN} X/raw: 4 value(s) that are not non-negative integer counts in 2 dataset(s): "
        f"{a} (1 NaN, 1 negative, 1 non-integer), {b} (1 infinite). {CENSUS_COUNTS_FIX}"
    )
    assert not (tmp_path / "store").exists()  # nothing half-built survives


def test_bad_raw_counts_found_by_a_worker_are_the_same_one_line_error(corrupted_census, tmp_path):
    config = _config(chunk_size=150, build_workers=2)
    cells = corrupted_census["cells"]
    with pytest.raises(DataError) as err:
        build_training_store(
            corrupted_census["source"],
            cells,
            sorted(set(cells["label"])),
            StoreSettings.from_config(config),
            tmp_path / "s",
        )
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"store build worker 0 of 2: census {TRAIN} X/raw: 4 value(s) that are not ")
    assert f"{corrupted_census['a']} (1 NaN, 1 negative, 1 non-integer)" in message
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".*buckets"))


def test_all_zero_cells_are_counted_per_dataset_and_fail_past_the_limit(tiny_census, tmp_path, caplog):
    source = {"uri": str(tiny_census / TRAIN)}
    config = _config(chunk_size=150, build_workers=1)
    selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
    with open_census(source) as census:
        var = read_var(census)
    # One gene, detected in about half the cells: the other half are all-zero over the store's genes.
    x = _raw_counts(source["uri"])[selection.cells["soma_joinid"].to_numpy()]
    detected = np.asarray((x > 0).mean(axis=0)).ravel()
    gene = int(np.argmin(np.abs(detected - 0.5)))
    genes = var.set_index("soma_joinid").loc[[gene], ["feature_id", "feature_name"]]
    pd.DataFrame({"gene_names": genes["feature_name"].to_numpy()}, index=genes["feature_id"]).to_parquet(
        tmp_path / "one_gene.parquet"
    )
    zero = np.asarray(x[:, gene].todense()).ravel() == 0
    expected = selection.cells.loc[zero].groupby("dataset_id", observed=True).size().to_dict()
    fraction = zero.mean()
    assert 0.2 < fraction < 0.8

    config["genes"] = {"source": str(tmp_path / "one_gene.parquet"), "match": "feature_id", "order": "list"}
    config["filters"]["max_zero_cell_fraction"] = 0.9
    with caplog.at_level("WARNING", logger="hcebench.data.checks"):
        meta = build_training_store(
            source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "store"
        )
    checked = meta["data_checks"]
    assert (checked["cells"], checked["zero_cells"]) == (len(selection.cells), int(zero.sum()))
    assert checked["zero_cell_fraction"] == pytest.approx(fraction)
    assert checked["zero_cells_by_dataset"] == expected and checked["max_zero_cell_fraction"] == 0.9
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"{int(zero.sum()):,} of {len(selection.cells):,} cells" in warning and "within" in warning

    config["filters"]["max_zero_cell_fraction"] = 0.1
    with pytest.raises(DataError) as err:
        build_training_store(
            source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "store2"
        )
    message = str(err.value)
    worst = max(expected, key=lambda d: (expected[d], d))
    assert f"census {TRAIN} X/raw: all-zero cells (no count on any of the store's genes)" in message
    assert (
        f"more than filters.max_zero_cell_fraction: 0.1; datasets: {worst} ({expected[worst]:,} of "
        in message
    )
    assert "genes.source" in message and "\n" not in message
    assert not (tmp_path / "store2").exists()


#: A store build stand-in: starts one worker (its code, argv[1]) with its own pid, prints the worker's pid, waits.
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""
#: A worker stand-in: what run_part_job does first, then a long read.
WORKER = """
import os, sys, time
from hcebench.data.workers import die_with_parent
die_with_parent(int(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_a_worker_dies_with_its_killed_parent(tmp_path):
    # SIGKILL runs no cleanup in the store build: its workers must not go on reading the census, re-parented to init.
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, WORKER], stdout=subprocess.PIPE, text=True, env=env
    )
    worker = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"  # the worker has set its death signal and sleeps
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its killed parent"


def test_a_worker_whose_parent_is_already_gone_stops_before_reading():
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, "1"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1 and "ready" not in done.stdout
    assert "store build worker: its parent process 1 is gone; stopping" in done.stderr


def test_a_worker_that_failed_writing_its_error_is_reported_by_its_stderr(tmp_path):
    # A full disk can cut the worker's own error file short: the parent reports the worker's last words, not a
    # JSONDecodeError of its half-written file.
    from hcebench.data.workers import worker_failure

    (tmp_path / "error0.json").write_text('{"type": "DataErr')
    (tmp_path / "stderr0.txt").write_text("Traceback ...\nOSError: [Errno 28] No space left on device\n")
    err = worker_failure(tmp_path, [0], [1, 0], 2)
    assert isinstance(err, RuntimeError)
    assert "store build worker(s) [0] of 2 failed (exit 1)" in str(err) and "No space left on device" in str(
        err
    )


def test_row_multiple_keeps_the_head_of_each_splits_order_and_weights_count_every_training_cell(
    tiny_census, tmp_path
):
    """split.row_multiple (scTab's 1,024-row cut, here 64 on the tiny census): each split written is the head of
    the full store's order; the class weights are the full training split's, as scTab computed them before its cut."""
    from hcebench.data.store import Store

    source = {"uri": str(tiny_census / "2023-05-15")}
    config = _config(chunk_size=400, build_workers=1)
    selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
    full = build_training_store(
        source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "full"
    )
    config["split"]["row_multiple"] = 64
    cut = build_training_store(
        source, selection.cells, selection.labels, StoreSettings.from_config(config), tmp_path / "cut"
    )
    assert "row_multiple" not in full  # a store that keeps every cell has the meta it always had
    for name in SPLITS:
        n = full["n_cells"][name]
        assert cut["n_cells"][name] == (n // 64) * 64 and cut["cells_dropped_by_row_multiple"][name] == n % 64
        head = Store(tmp_path / "full").obs(name)["soma_joinid"].to_numpy()[: cut["n_cells"][name]]
        np.testing.assert_array_equal(Store(tmp_path / "cut").obs(name)["soma_joinid"].to_numpy(), head)
    np.testing.assert_array_equal(
        Store(tmp_path / "cut").class_weights, Store(tmp_path / "full").class_weights
    )


# -- a store build that survives a failure ------------------------------------------------------------------------
_KILLED_BUILD = """
import sys, time
from hcebench.config import load_config
from hcebench.data import workers
from hcebench.data.build import build_training_store
from hcebench.data.selection import select_from_census
from hcebench.settings import SelectionSettings, StoreSettings
from sim_fixtures import bundled_ontology

census, out, config_path = sys.argv[1:4]
config = load_config(config_path)
config["census"].update(chunk_size=50, build_workers=int(sys.argv[4]))
source = {"uri": census}
selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
real = workers.write_segment
def slow(*args, **kwargs):  # one segment at a time, slowly: the test kills the build part-way through
    real(*args, **kwargs)
    time.sleep(0.5)
workers.write_segment = slow
build_training_store(source, selection.cells, selection.labels, StoreSettings.from_config(config), out)
"""


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_killed_store_build_resumes_and_writes_the_same_bytes(
    tiny_census, tmp_path, monkeypatch, n_workers
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from hcebench.data import workers

    config = _config(chunk_size=50, build_workers=n_workers)
    source = {"uri": str(tiny_census / "2023-05-15")}
    selection = select_from_census(source, SelectionSettings.from_config(config), bundled_ontology())
    settings = StoreSettings.from_config(config)
    build_training_store(source, selection.cells, selection.labels, settings, tmp_path / "whole")
    assert not (tmp_path / "whole.partial").exists()  # an uninterrupted build keeps nothing behind

    # The build in its own process, killed outright (SIGKILL: no cleanup runs) once segments are kept.
    out, partial = tmp_path / "resumed", tmp_path / "resumed.partial"
    script = tmp_path / "build.py"
    script.write_text(_KILLED_BUILD)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, str(script), source["uri"], str(out), str(ROOT / "tests/data/tiny_config.yaml")]
    proc = subprocess.Popen([*args, str(n_workers)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (
        len(list(partial.glob("train/seg?????"))) < 3 and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    kept = sorted(p.name for p in partial.glob("train/seg?????"))
    assert len(kept) >= 3 and not out.exists()

    # The rerun reads only the segments that were not kept, and writes the bytes of the uninterrupted build.
    read_again = []
    real = workers.write_segment

    def spy(census, resume, k, *args, **kwargs):
        read_again.append((resume.name, k))
        real(census, resume, k, *args, **kwargs)

    monkeypatch.setattr(workers, "write_segment", spy)
    build_training_store(source, selection.cells, selection.labels, settings, out)
    if n_workers == 1:  # with workers the reads happen in other processes, out of the spy's sight
        again = {k for split, k in read_again if split == "train"}
        assert again and not again & {int(name[3:]) for name in kept}
    for path in sorted((tmp_path / "whole").rglob("*")):
        if path.is_file():
            twin = out / path.relative_to(tmp_path / "whole")
            assert twin.read_bytes() == path.read_bytes(), path.relative_to(tmp_path / "whole")
    assert not partial.exists()  # the kept work is removed once the store is whole
