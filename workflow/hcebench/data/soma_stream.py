"""Training minibatches streamed straight from SOMA with tiledbsoma-ml: the alternative to the store.

No store is written: each epoch, tiledbsoma-ml reads shuffled chunks of the selected cells' raw counts from the
census (``shuffle_chunk_size`` consecutive cells per chunk, ``io_batch_size`` cells per read), and every batch
is normalised on the fly exactly as the store is (the store's genes in its order, counts scaled to
``target_sum`` over those genes, log1p). It trades disk for I/O and CPU on every epoch; the store is usually
much faster (benchmarks/data_path.py), but streaming needs no copy of the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from hcebench.data.census import open_census, read_var


class SomaStream:
    """Shuffled (dense batch, label index) pairs of ``cells`` read from ``source`` with tiledbsoma-ml.

    ``cells`` needs ``soma_joinid`` and ``label_index``; ``genes`` the store's ``feature_id`` order.
    """

    def __init__(
        self,
        source: dict,
        cells: pd.DataFrame,
        genes: pd.Series,
        *,
        target_sum: float = 10_000,
        organism: str = "homo_sapiens",
        shuffle_chunk_size: int = 64,
        io_batch_size: int = 65_536,
    ):
        self.source, self.organism, self.target_sum = source, organism, target_sum
        self.shuffle_chunk_size, self.io_batch_size = shuffle_chunk_size, io_batch_size
        self.joinids = cells["soma_joinid"].to_numpy(np.int64)
        self.label_of = pd.Series(cells["label_index"].to_numpy(np.int64), index=self.joinids)
        self.genes = pd.Index(genes.astype(str))

    @classmethod
    def for_split(
        cls,
        source: dict,
        cells_path: str | Path,
        labels: list[str],
        genes: pd.Series,
        split: str = "train",
        **kwargs,
    ) -> SomaStream:
        """The cells of ``split`` in a selection table (``selection/cells.parquet``), labels in ``labels`` order."""
        cells = pd.read_parquet(cells_path, columns=["soma_joinid", "label", "split"])
        cells = cells[cells["split"] == split]
        if cells.empty:
            raise ValueError(f"{cells_path} has no cells in split {split!r}")
        index = {t: i for i, t in enumerate(labels)}
        unknown = sorted(set(cells["label"]) - set(index))
        if unknown:
            raise ValueError(
                f"{cells_path}: labels {unknown[:5]} are not in the label set; rebuild the selection"
            )
        return cls(source, cells.assign(label_index=cells["label"].map(index)), genes, **kwargs)

    def __len__(self) -> int:
        return len(self.joinids)

    @contextmanager
    def _dataset(self, batch_size: int, seed: int, epoch: int):
        import tiledbsoma
        from tiledbsoma_ml import ExperimentDataset

        with open_census(self.source) as census:
            var = read_var(census, organism=self.organism).set_index("feature_id")
            missing = self.genes.difference(var.index)
            if len(missing):
                raise ValueError(f"{len(missing)} store genes are not in the census var (e.g. {missing[0]})")
            var_joinids = np.sort(var.loc[self.genes, "soma_joinid"].to_numpy(np.int64))
            # tiledbsoma-ml returns X columns in ascending var joinid order; map them to the store's order.
            column_of_joinid = pd.Series(np.arange(len(self.genes)), index=var.loc[self.genes, "soma_joinid"])
            columns = column_of_joinid.loc[var_joinids].to_numpy()
            exp = census["census_data"][self.organism]
            with exp.axis_query(
                "RNA",
                obs_query=tiledbsoma.AxisQuery(coords=(np.sort(self.joinids),)),
                var_query=tiledbsoma.AxisQuery(coords=(var_joinids,)),
            ) as query:
                # One seed per (seed, epoch): tiledbsoma-ml 0.1's set_epoch does not reshuffle a fresh dataset.
                epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
                ds = ExperimentDataset(
                    query,
                    layer_name="raw",
                    obs_column_names=["soma_joinid"],
                    batch_size=batch_size,
                    shuffle=True,
                    seed=epoch_seed,
                    shuffle_chunk_size=self.shuffle_chunk_size,
                    io_batch_size=self.io_batch_size,
                )
                yield ds, columns

    def batches(self, batch_size: int, *, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled (normalised dense float32 batch, label indices); the order depends on seed and epoch."""
        with self._dataset(batch_size, seed, epoch) as (ds, columns):
            for x, obs in ds:
                x = np.asarray(x, dtype=np.float32)
                if x.ndim == 1:  # tiledbsoma-ml squeezes batches of one cell
                    x = x[None, :]
                dense = np.empty_like(x)
                dense[:, columns] = x
                sums = dense.sum(axis=1, keepdims=True)
                sums[sums == 0] = 1.0
                np.log1p(dense * (self.target_sum / sums), out=dense)
                yield dense, self.label_of.loc[obs["soma_joinid"].to_numpy()].to_numpy(np.int64)
