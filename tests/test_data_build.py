"""hcebench.data.build: writing a split from the census, in one process or several."""

import numpy as np
import pandas as pd


def test_parallel_build_writes_the_same_split_as_one_process(tiny_census, tmp_path):
    from hcebench.data.build import write_split
    from hcebench.data.census import open_census, read_obs, read_var

    source = {"uri": str(tiny_census / "2023-05-15")}
    with open_census(source) as census:
        obs = read_obs(census, "is_primary_data == True", ["dataset_id", "cell_type_ontology_term_id"]).iloc[
            :700
        ]
        obs = obs.sample(
            frac=1.0, random_state=0
        )  # any input order: the split is written in soma_joinid order
        var = read_var(census)
        genes = var.sort_values("feature_id").reset_index(drop=True)
        args = (obs, genes["soma_joinid"].to_numpy(), np.arange(len(genes)), len(genes))
        kwargs = dict(target_sum=1e4, chunk_size=100, organism="homo_sapiens")
        n_one = write_split(source, census, *args, tmp_path / "one", workers=1, **kwargs)
        n_three = write_split(source, census, *args, tmp_path / "three", workers=3, **kwargs)
    assert n_one == n_three == 700
    for name in ("X.data.f32", "X.indices.i32", "X.indptr.i64"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes(), name
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "one" / "obs.parquet"), pd.read_parquet(tmp_path / "three" / "obs.parquet")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "three"]  # the part directories are gone
