"""Streaming with tiledbsoma-ml yields the same normalised cells as the store, in a shuffled order."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tiledbsoma_ml")

from hcebench.data.census import open_census, read_obs, read_var  # noqa: E402
from hcebench.data.reads import CensusRead  # noqa: E402
from hcebench.data.shuffle import write_split_from_census  # noqa: E402
from hcebench.data.soma_stream import SomaStream  # noqa: E402
from hcebench.data.store import SplitData  # noqa: E402


def test_stream_matches_the_store(tiny_census, tmp_path):
    source = {"uri": str(tiny_census / "2023-05-15")}
    with open_census(source) as census:
        obs = read_obs(census, "is_primary_data == True", ["dataset_id"]).iloc[:300]
        var = read_var(census)
        genes = var.sort_values("feature_id").reset_index(drop=True)  # store order differs from joinid order
        read = CensusRead(
            var_joinids=genes["soma_joinid"].to_numpy(),
            columns=np.arange(len(genes)),
            n_genes=len(genes),
            target_sum=1e4,
            chunk_size=100,
            organism="homo_sapiens",
        )
        write_split_from_census(census, obs, read, tmp_path / "s")
    store = SplitData.open(tmp_path / "s", len(genes))
    expected = pd.DataFrame(store.x.toarray(), index=store.obs["soma_joinid"].to_numpy())
    cells = obs.assign(label_index=np.arange(len(obs)) % 5)
    stream = SomaStream(source, cells, genes["feature_id"], shuffle_chunk_size=16, io_batch_size=128)
    seen, order = [], []
    for x, y in stream.batches(64, seed=1, epoch=0):
        seen.append(x)
        order.append(y)
    x = np.concatenate(seen)
    y = np.concatenate(order)
    assert x.shape == (300, len(genes))
    # Labels identify the cells: (label, row) pairs must match the store's rows for those cells.
    rows = {}
    for row in x:
        match = np.flatnonzero(np.isclose(expected.to_numpy(), row, atol=1e-5).all(axis=1))
        assert len(match) >= 1
        rows.setdefault(tuple(match), 0)
    assert len(rows) >= 290  # (a few cells can share an identical profile, e.g. empty ones)
    assert sorted(np.bincount(y, minlength=5)) == sorted(np.bincount(cells["label_index"], minlength=5))
    again = np.concatenate([b for b, _ in stream.batches(64, seed=1, epoch=0)])
    np.testing.assert_array_equal(again, x)  # same seed and epoch, same order
    other = np.concatenate([b for b, _ in stream.batches(64, seed=1, epoch=1)])
    assert not np.array_equal(other, x)  # a new epoch reshuffles
