"""hcebench.data.build: the training store in scTab's split and cell order, written with bounded memory, in one
process or several; and what that order does to the paper loader's ghost batches."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hcebench.config import load_config
from hcebench.data import build
from hcebench.data.build import (
    build_training_store,
    gene_match_counts,
    resolve_genes,
    write_split,
    write_split_from_census,
)
from hcebench.data.census import open_census, read_obs, read_var
from hcebench.data.selection import obs_value_filter, select_from_census
from hcebench.data.store import SplitData, SplitWriter
from sctab_reference import SPLITS, notebook_order, notebook_split
from sim_fixtures import build_tiny_census, bundled_ontology

ROOT = Path(__file__).parents[1]


def _config(**census):
    config = load_config(ROOT / "tests" / "data" / "tiny_config.yaml")  # filters sized for a small census
    config["census"].update(census)
    return config


def test_training_store_has_sctabs_split_and_cell_order(tiny_census, tmp_path):
    config = _config(chunk_size=150, build_workers=1)
    source = {"uri": str(tiny_census / "2023-05-15")}
    selection = select_from_census(source, config, bundled_ontology())
    meta = build_training_store(source, selection.cells, selection.labels, config, tmp_path / "store")
    assert meta["cell_order"] == "permuted" and meta["split_seed"] == 1

    # The reference, from the census alone: its cells in the order it returns them, those of the kept labels,
    # through the notebook's two cells (tests/sctab_reference.py).
    with open_census(source) as census:
        obs = read_obs(
            census,
            obs_value_filter(config["filters"]),
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
            write_split_from_census(
                census,
                in_joinid_order,
                var.loc[genes["feature_id"], "soma_joinid"].to_numpy(),
                np.arange(len(genes)),
                len(genes),
                tmp_path / f"sorted_{name}",
                target_sum=1e4,
                chunk_size=1000,
                organism="homo_sapiens",
            )
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
    real_counts, real_append, real_read = build.iter_counts, build.append_bucket, build.read_bucket

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

    monkeypatch.setattr(build, "iter_counts", iter_counts)
    monkeypatch.setattr(build, "append_bucket", append_bucket)
    monkeypatch.setattr(build, "read_bucket", read_bucket)
    monkeypatch.setattr(SplitWriter, "append", writer_append)
    return held


@pytest.mark.parametrize("permuted", [False, True], ids=["joinid_order", "permuted"])
def test_parallel_build_writes_the_same_split_as_one_process(tiny_census, tmp_path, monkeypatch, permuted):
    source = {"uri": str(tiny_census / "2023-05-15")}
    held = _spy(monkeypatch)
    with open_census(source) as census:
        obs = read_obs(census, "is_primary_data == True", ["dataset_id", "cell_type_ontology_term_id"]).iloc[
            :700
        ]
        if permuted:  # the training store's case; in joinid order, the OOD set's
            obs = obs.iloc[np.random.default_rng(0).permutation(len(obs))]
        genes = read_var(census).sort_values("feature_id").reset_index(drop=True)
        args = (obs, genes["soma_joinid"].to_numpy(), np.arange(len(genes)), len(genes))
        kwargs = dict(target_sum=1e4, chunk_size=100, organism="homo_sapiens")
        counts = {
            w: write_split(source, census, *args, tmp_path / f"w{w}", workers=w, **kwargs) for w in (1, 2, 3)
        }
    assert counts == {1: 700, 2: 700, 3: 700}
    for name in ("X.data.f32", "X.indices.i32", "X.indptr.i64", "obs.parquet"):
        one = (tmp_path / "w1" / name).read_bytes()
        assert one == (tmp_path / "w2" / name).read_bytes() == (tmp_path / "w3" / name).read_bytes(), name
    written = pd.read_parquet(tmp_path / "w1" / "obs.parquet")
    np.testing.assert_array_equal(written["soma_joinid"], obs["soma_joinid"])  # row i is obs row i
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1", "w2", "w3"]  # the buckets are gone

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
        with pytest.raises(RuntimeError, match=r"store build worker\(s\)"):
            write_split(
                source,
                census,
                obs,
                genes["soma_joinid"].to_numpy() + 10**6,  # out of range: every worker fails
                np.arange(len(genes)),
                len(genes),
                tmp_path / "s",
                target_sum=1e4,
                chunk_size=100,
                organism="homo_sapiens",
                workers=2,
            )
    assert not (tmp_path / ".s.buckets").exists()


def test_progress_reports_cells_rate_and_time_left(caplog, monkeypatch):
    clock = iter([0.0, 30.0, 61.0, 90.0, 100.0])
    monkeypatch.setattr(build.time, "monotonic", lambda: next(clock))
    progress = build.Progress("train: read", 1000)  # started at 0 s
    with caplog.at_level("INFO", logger="hcebench.data.build"):
        progress.update(100)  # 30 s: under a minute since the start, quiet
        progress.update(610)  # 61 s: 10 cells/s, 39 s left
        progress.update(900)  # 90 s: under a minute since the last line, quiet
        progress.update(1000)  # done: always reported
    assert [r.getMessage() for r in caplog.records] == [
        "train: read: 610 of 1,000 cells (10 cells/s, about 39 s left)",
        "train: read: 1,000 of 1,000 cells (10 cells/s, about 0 s left)",
    ]


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
    selection = select_from_census(source, config, bundled_ontology())
    assert selection.cells["tech_sample"].nunique() >= 200
    build_training_store(source, selection.cells, selection.labels, config, tmp_path / "store")
    genes = pd.read_parquet(tmp_path / "store" / "var.parquet")
    permuted = SplitData.open(tmp_path / "store" / "train", len(genes))
    with open_census(source) as census:  # the same cells in soma_joinid order: the store before this change
        var = read_var(census).set_index("feature_id")
        write_split_from_census(
            census,
            permuted.obs.sort_values("soma_joinid"),
            var.loc[genes["feature_id"], "soma_joinid"].to_numpy(),
            np.arange(len(genes)),
            len(genes),
            tmp_path / "unpermuted",
            target_sum=1e4,
            chunk_size=1000,
            organism="homo_sapiens",
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


def test_matching_by_name_needs_a_symbol_column(tmp_path):
    path = tmp_path / "ids_only.parquet"
    pd.DataFrame(index=pd.Index(["ENSG1", "ENSG2"])).to_parquet(path)
    with pytest.raises(ValueError, match="genes.match"):
        resolve_genes(str(path), VAR, match="feature_name")
    with pytest.raises(ValueError, match="genes.order"):
        resolve_genes(str(path), VAR, order="alphabetical")
