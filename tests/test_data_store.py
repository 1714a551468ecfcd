"""hcebench.data.store: normalisation by hand, the write/read round trip, shuffled and prefetched batches."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hcebench.data.store import SplitData, SplitWriter, normalise


def test_normalise_by_hand():
    counts = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 0, 2]], dtype=np.float32))
    x = normalise(counts, 100).toarray()
    np.testing.assert_allclose(x[0], np.log1p([25, 75, 0]), rtol=1e-6)
    np.testing.assert_allclose(x[1], 0)  # an empty cell stays empty (row sum 0 treated as 1)
    np.testing.assert_allclose(x[2], np.log1p([50, 0, 50]), rtol=1e-6)
    assert x.dtype == np.float32


def test_split_writer_roundtrip_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.3, (57, 11)).astype(np.float32)
    writer = SplitWriter(tmp_path / "s", 11)
    for start in range(0, 57, 20):  # uneven chunks
        rows = slice(start, min(start + 20, 57))
        writer.append(sp.csr_matrix(dense[rows]), pd.DataFrame({"label": ["a"] * len(dense[rows])}))
    assert writer.close() == 57
    data = SplitData.open(tmp_path / "s", 11, labels=["a"])
    np.testing.assert_array_equal(data.x.toarray(), dense)
    assert (data.y == 0).all()
    batches = list(data.batches(16, rng=np.random.default_rng(1)))
    assert sum(len(y) for _, y in batches) == 57
    np.testing.assert_array_equal(
        np.sort(np.concatenate([b.sum(1) for b, _ in batches])), np.sort(dense.sum(1))
    )


def test_obs_held_as_categoricals_is_written_as_the_strings_would_be(tmp_path):
    # Builders hold millions of cells' obs as categoricals; the split's obs file is the same bytes either way.
    obs = pd.DataFrame(
        {"label": ["b", "a", "b", "c"] * 5, "dataset_id": ["d1", "d2"] * 10, "label_index": np.arange(20)}
    )
    x = sp.csr_matrix(np.ones((20, 3), dtype=np.float32))
    for name, frame in (
        ("plain", obs),
        ("categorical", obs.astype({"label": "category", "dataset_id": "category"})),
    ):
        writer = SplitWriter(tmp_path / name, 3)
        for start in (0, 7, 14):
            writer.append(x[start : start + 7], frame.iloc[start : start + 7])
        writer.close()
        SplitWriter(tmp_path / f"{name}_empty", 3).close(empty_obs=frame)
    for suffix in ("", "_empty"):
        written = [
            (tmp_path / f"{name}{suffix}" / "obs.parquet").read_bytes() for name in ("plain", "categorical")
        ]
        assert written[0] == written[1]
    assert SplitData.open(tmp_path / "categorical", 3).obs["label"].dtype == object


def test_obs_is_read_lazily_and_by_column_in_chunks_of_any_size(tmp_path, monkeypatch):
    whole_reads = []
    real = pd.read_parquet
    monkeypatch.setattr(
        pd, "read_parquet", lambda *a, **kw: (whole_reads.append(kw.get("columns")), real(*a, **kw))[1]
    )
    _, data = _random_split(tmp_path)  # 103 cells in row groups of 25
    assert len(data) == 103 and None not in whole_reads  # opening read the footer and the label columns only
    for size in (10, 25, 40, 200):
        chunks = list(data.obs_chunks(size, ["row"]))
        assert [len(c) for c in chunks] == [min(size, 103 - i) for i in range(0, 103, size)]
        assert all(list(c.columns) == ["row"] for c in chunks)
        np.testing.assert_array_equal(pd.concat(chunks)["row"], np.arange(103))
    assert data.read_obs(["row"])["row"].tolist() == list(range(103))
    assert None not in whole_reads
    assert (
        data.obs["label"].tolist() == ["a"] * 103 and whole_reads[-1] is None
    )  # the whole table, on first use
    # An empty split gives one empty chunk with the asked-for columns, so writers still write their table.
    SplitWriter(tmp_path / "e", 9).close(
        pd.DataFrame({"label": pd.Series(dtype=str), "row": pd.Series(dtype=int)})
    )
    empty = SplitData.open(tmp_path / "e", 9, labels=["a"])
    (chunk,) = list(empty.obs_chunks(10, ["row", "label"]))
    assert len(chunk) == 0 and list(chunk.columns) == ["row", "label"]


def _random_split(tmp_path, n=103, genes=9, seed=0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, genes)) < 0.6, 0, rng.random((n, genes))).astype(np.float32)
    writer = SplitWriter(tmp_path / "s", genes)
    for start in range(0, n, 25):
        chunk = dense[start : start + 25]
        writer.append(
            sp.csr_matrix(chunk),
            pd.DataFrame({"label": ["a"] * len(chunk), "row": np.arange(start, start + len(chunk))}),
        )
    writer.close()
    return dense, SplitData.open(tmp_path / "s", genes, labels=["a"])


def test_to_dense_into_a_reused_tensor_overwrites_the_last_batch(tmp_path):
    dense, data = _random_split(tmp_path)
    out = torch.full(
        (50, dense.shape[1]), 7.0
    )  # stale values everywhere: each batch must zero what it does not set
    for rows in (np.arange(50), np.array([9, 2, 70]), np.arange(60, 100)):
        x = data.sparse_rows(rows).to_dense(out=out)
        np.testing.assert_array_equal(x.numpy(), dense[rows])
        assert x.data_ptr() == out.data_ptr() and len(x) == len(rows)  # a view of out, no new tensor
    with pytest.raises(ValueError, match=r"needs float32 \(≥ 60"):
        data.sparse_rows(np.arange(60)).to_dense(out=out)  # too few rows
    with pytest.raises(ValueError, match="needs float32"):
        data.sparse_rows(np.arange(3)).to_dense(out=torch.zeros((50, dense.shape[1]), dtype=torch.float64))


def test_sparse_rows_match_the_matrix(tmp_path):
    dense, data = _random_split(tmp_path)
    rows = np.array([0, 3, 4, 50, 102])
    batch = data.sparse_rows(rows)
    np.testing.assert_array_equal(batch.to_numpy(), dense[rows])
    np.testing.assert_array_equal(batch.to_dense().numpy(), dense[rows])
    np.testing.assert_array_equal(data.dense_rows(rows[::-1]), dense[rows[::-1]])  # any order works
    assert data.obs["row"].tolist() == list(range(103))  # obs streamed chunk by chunk, in order


@pytest.mark.parametrize("block_rows", [1, 8, 200])
def test_shuffled_batches_cover_every_row_once_and_are_reproducible(tmp_path, block_rows):
    dense, data = _random_split(tmp_path)
    order = data.batch_order(16, np.random.default_rng(5), block_rows)
    rows = np.concatenate(order)
    assert sorted(rows.tolist()) == list(range(103))
    again = data.batch_order(16, np.random.default_rng(5), block_rows)
    assert all(np.array_equal(a, b) for a, b in zip(order, again, strict=True))
    seen = np.concatenate(
        [b.to_numpy() for b in data.sparse_batches(16, rng=np.random.default_rng(5), block_rows=block_rows)]
    )
    np.testing.assert_array_equal(seen, dense[rows])  # rows in the order batch_order gave them
    # The model sees each batch's rows in random order, not sorted and not as whole blocks of neighbours.
    full = [b for b in order if len(b) == 16]
    assert sum((np.diff(b) > 0).all() for b in full) == 0
    assert np.mean([np.mean(np.abs(np.diff(b)) == 1) for b in full]) < 0.5
    assert [np.array_equal(b, np.arange(b[0], b[0] + len(b))) for b in data.batch_order(16, None)] == [
        True
    ] * 7


def test_batch_rows_are_permuted_within_the_batch_by_the_same_generator(tmp_path):
    _, data = _random_split(tmp_path)
    rng = np.random.default_rng(9)
    order = data.batch_order(32, rng, 8)
    state = rng.bit_generator.state
    rng = np.random.default_rng(9)
    blocks = rng.permutation(13)  # ceil(103 / 8) blocks, as batch_order draws them first
    rows = (blocks[:, None] * 8 + np.arange(8)).ravel()
    rows = rows[rows < 103]
    for k, batch in enumerate(order):
        expected = rows[32 * k : 32 * k + 32]
        np.testing.assert_array_equal(batch, expected[rng.permutation(len(expected))])
    assert rng.bit_generator.state == state  # nothing else drawn: a rewound generator replays the epoch


def test_unsorted_rows_are_read_sorted_and_come_back_in_the_order_asked(tmp_path):
    from hcebench.data.store import BufferRing

    dense, data = _random_split(tmp_path)
    data.y = np.arange(103)  # labels that name the row
    rows = np.random.default_rng(2).permutation(103)[:40]
    ring = BufferRing(1)
    for buffers in (None, ring, ring):
        batch = data.sparse_rows(rows, buffers)
        # Read in ascending order: the CSR arrays hold the rows sorted, `order` puts them in the order asked.
        np.testing.assert_array_equal(np.diff(batch.indptr), (dense[np.sort(rows)] != 0).sum(1))
        np.testing.assert_array_equal(np.sort(rows)[batch.order], rows)
        np.testing.assert_array_equal(batch.y, rows)
        np.testing.assert_array_equal(batch.to_numpy(), dense[rows])
        np.testing.assert_array_equal(batch.to_scipy().toarray(), dense[rows])
        np.testing.assert_array_equal(batch.to_dense().numpy(), dense[rows])
    repeated = np.concatenate([rows, rows[:3]])  # repeats: read by a gather, still in the order asked
    np.testing.assert_array_equal(data.sparse_rows(repeated).to_dense().numpy(), dense[repeated])
    assert data.sparse_rows(np.sort(rows)).order is None  # sorted rows need no reordering


@pytest.mark.parametrize("block_rows", [1, 8])  # gathers and run copies
def test_reused_buffers_give_the_same_batches_and_are_recycled(tmp_path, block_rows):
    dense, data = _random_split(tmp_path)
    order = data.batch_order(10, np.random.default_rng(1), block_rows)
    for prefetch in (0, 2):
        batches = data.read_batches(order, prefetch=prefetch, reuse_buffers=True)
        held = []
        for rows, batch in zip(order, batches, strict=True):
            np.testing.assert_array_equal(
                batch.to_numpy(), dense[rows]
            )  # valid while it is the current batch
            held.append(batch.values)
        ring = prefetch + 2 if prefetch else 1
        # The ring hands the same memory out again every `ring` batches, and never to neighbours.
        assert np.shares_memory(held[0], held[ring])
        assert ring == 1 or not np.shares_memory(held[0], held[1])


def test_unshuffled_batches_are_in_order_and_prefetch_is_transparent(tmp_path):
    dense, data = _random_split(tmp_path)
    for prefetch in (0, 3):
        got = np.concatenate([x for x, _ in data.batches(10, prefetch=prefetch)])
        np.testing.assert_array_equal(got, dense)


def test_prefetch_passes_errors_to_the_consumer():
    from hcebench.data.store import prefetched

    def items():
        yield 1
        raise RuntimeError("disk gone")

    out = []
    with pytest.raises(RuntimeError, match="disk gone"):
        for item in prefetched(items(), 2):
            out.append(item)
    assert out == [1]


def test_a_missing_or_cut_row_index_file_is_named_with_the_fix(tmp_path):
    """A store file deleted, or the row offsets cut short (a copy or a write interrupted), is an error naming it."""
    _random_split(tmp_path)
    split = tmp_path / "s"
    indptr = split / "X.indptr.i64"
    whole = indptr.read_bytes()
    indptr.write_bytes(whole[: len(whole) // 2 // 8 * 8])  # whole offsets, half of them
    with pytest.raises(ValueError, match=r"s: \d+ rows of X but 103 obs rows; rebuild the store"):
        SplitData.open(split, 9)
    indptr.write_bytes(whole)
    (split / "X.indices.i32").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"X\.indices\.i32 is missing: the store is incomplete; delete .* to"
    ):
        SplitData.open(split, 9)


@pytest.mark.parametrize("name", ["X.data.f32", "X.indices.i32"])
def test_a_cut_value_file_is_named_when_the_split_is_opened(tmp_path, name):
    _random_split(tmp_path)
    path = tmp_path / "s" / name
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2 // 4 * 4])  # whole values, half of them
    with pytest.raises(ValueError, match=name):
        SplitData.open(tmp_path / "s", 9)


@pytest.mark.parametrize("name", ["X.data.f32", "X.indices.i32", "X.indptr.i64"])
def test_a_file_cut_mid_value_is_named_with_the_fix(tmp_path, name):
    # Cut anywhere, not only on a value boundary: numpy's own message names neither the file nor the fix.
    _random_split(tmp_path)
    path = tmp_path / "s" / name
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(name)} holds [\d,]+ bytes, not a whole number of .* values: "
        rf"the file was cut short or overwritten; delete .* to rebuild",
    ):
        SplitData.open(tmp_path / "s", 9)


def test_a_stores_arrays_refuse_pickles_and_name_the_file(tmp_path):
    from hcebench.data.store import Store, StoreWriter

    writer = StoreWriter(tmp_path / "store")
    writer.write_meta({"n_genes": 9, "labels": ["CL:0000001"]})
    np.save(
        tmp_path / "store" / "class_weights.npy", np.array([{"run": "code"}], dtype=object), allow_pickle=True
    )
    with pytest.raises(
        ValueError, match=r"class_weights\.npy cannot be read as a plain \.npy array .*pickled objects"
    ):
        _ = Store(tmp_path / "store").class_weights


@pytest.mark.parametrize("block_rows", [1, 8])
def test_drop_last_leaves_out_only_a_short_last_batch(tmp_path, block_rows):
    _, data = _random_split(tmp_path)  # 103 rows
    kept = data.batch_order(16, np.random.default_rng(5), block_rows, drop_last=True)
    every = data.batch_order(16, np.random.default_rng(5), block_rows)
    assert [len(b) for b in kept] == [16] * 6 and len(every) == 7 and len(every[-1]) == 7
    assert all(np.array_equal(a, b) for a, b in zip(kept, every[:6], strict=True))
    assert [len(b) for b in data.batch_order(103, np.random.default_rng(5), block_rows, drop_last=True)] == [
        103
    ]


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_reading_a_split_keeps_only_a_bounded_part_of_it_mapped(tmp_path, monkeypatch):
    """A job reading a split larger than memory is charged (resident memory) for MAPPED_BYTES_LIMIT of it, not
    for every page it has read; the rows read are the same."""
    from hcebench.data.store import split as split_module
    from hcebench.data.store.split import resident_mapped_bytes

    dense, data = _random_split(tmp_path, n=6000, genes=400)
    values = data.dir / "X.data.f32"
    assert values.stat().st_size > 3 * 2**20
    monkeypatch.setattr(split_module, "MAPPED_BYTES_LIMIT", 512 * 2**10)
    for start in range(0, 6000, 100):
        rows = np.arange(start, start + 100)
        np.testing.assert_array_equal(data.dense_rows(rows), dense[rows])
        assert resident_mapped_bytes(values) // 1024 <= 512 + 200, start  # the limit and one batch of ~64 KB
    whole = SplitData.open(tmp_path / "s", 400, labels=["a"])  # without the limit: every page read stays
    monkeypatch.setattr(split_module, "MAPPED_BYTES_LIMIT", 2**40)
    for start in range(0, 6000, 100):
        whole.dense_rows(np.arange(start, start + 100))
    assert resident_mapped_bytes(values) // 1024 > 3 * 1024


def test_the_page_limit_a_measurement_sets_is_a_positive_number_of_mb():
    from hcebench.data.store.split import mapped_bytes_setting

    assert mapped_bytes_setting(None) == mapped_bytes_setting("") == 256 * 2**20
    assert mapped_bytes_setting("16") == 16 * 2**20
    for bad in ("0", "-5", "16M", "1.5"):
        with pytest.raises(
            ValueError, match=rf"^HCEBENCH_MAPPED_MB='{re.escape(bad)}': give a positive number"
        ):
            mapped_bytes_setting(bad)
