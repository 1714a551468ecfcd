"""Importing scTab's merlin store layout: values, labels, weights and hierarchy come through intact."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hcebench.data.sctab import import_sctab_store
from hcebench.data.store import SplitData
from hcebench.errors import DataError, ScTabStoreError
from hcebench.hierarchy.ontology import load_ontology
from hcebench.io import read_json
from hcebench.settings import ScTabImportSettings

TYPES = ["B cell", "CD4-positive, alpha-beta T cell", "T cell", "natural killer cell"]
TECH = [
    "0895c838-e550-48a3-a777-dbcd35d30272_donor_1",
    "0895c838-e550-48a3-a777-dbcd35d30272_D2",
    "9d8e5dca-03a3-457d-b7fb-844c75735c83_P3",
]


#: filters.max_zero_cell_fraction at 1: the random stores below hold a few all-zero cells (12 genes, 70 % zeros).
NO_LIMIT = {"max_zero_cell_fraction": 1.0}


def sctab(path, *, x_values="normalised", target_sum=10_000, max_zero_cell_fraction) -> ScTabImportSettings:
    return ScTabImportSettings(
        path=str(path),
        x_values=x_values,
        target_sum=target_sum,
        max_zero_cell_fraction=max_zero_cell_fraction,
    )


@pytest.fixture(scope="module")
def cl():
    return load_ontology("bundled:v2022-09-15")


def write_sctab_store(
    root: Path, cl, n_genes: int = 12, rows_per_split: int = 30, seed: int = 0, counts: bool = False
) -> dict:
    """A small store in scTab's layout; returns the dense X per split for comparison. ``counts``: X holds whole
    numbers (raw counts), not scTab's normalised values."""
    rng = np.random.default_rng(seed)
    (root / "categorical_lookup").mkdir(parents=True)
    (root / "cell_type_hierarchy").mkdir()
    lookups = {
        "cell_type": TYPES,
        "cell_type_ontology_term_id": [cl.id_of(t) for t in TYPES],
        "tech_sample": TECH,
        "assay_sc": ["10x 3' v3", "10x 5' v1"],
        "disease": ["normal"],
        "organ": ["blood", "lung"],
        "development_stage": ["adult"],
    }
    for col, values in lookups.items():
        pd.DataFrame({"label": values}).to_parquet(root / "categorical_lookup" / f"{col}.parquet")
    ids = [f"ENSG{i:011d}" for i in range(n_genes)]
    pd.DataFrame(
        {"feature_name": [f"G{i}" for i in range(n_genes)]}, index=pd.Index(ids, name="feature_id")
    ).to_parquet(root / "var.parquet")
    np.save(root / "class_weights.npy", np.array([0.5, 2.0, 1.0, 1.5], dtype=np.float32))
    closure = cl.closure([cl.id_of(t) for t in TYPES]).reachability
    np.save(
        root / "cell_type_hierarchy" / "child_matrix.npy", closure - np.eye(len(TYPES), dtype=closure.dtype)
    )
    np.save(root / "augmentations.npy", rng.normal(size=(5, n_genes)).astype(np.float32))
    dense = {}
    start = 0
    for split in ("train", "val", "test"):
        (root / split).mkdir()
        x = np.where(
            rng.random((rows_per_split, n_genes)) < 0.7, 0, rng.gamma(2, 1, (rows_per_split, n_genes))
        ).astype(np.float32)
        if counts:
            x = np.ceil(x)
        dense[split] = x
        table = pa.table(
            {
                "X": pa.array(list(x), type=pa.list_(pa.float32())),
                "id": pa.array(np.arange(start, start + rows_per_split), pa.int64()),
                "assay_sc": pa.array(rng.integers(0, 2, rows_per_split), pa.int64()),
                "tech_sample": pa.array(rng.integers(0, 3, rows_per_split), pa.int64()),
                "cell_type": pa.array(rng.integers(0, 4, rows_per_split), pa.int64()),
                "disease": pa.array(np.zeros(rows_per_split, np.int64)),
                "organ": pa.array(rng.integers(0, 2, rows_per_split), pa.int64()),
            }
        )
        # Two parts per split, as merlin writes them.
        pq.write_table(table.slice(0, 17), root / split / "part_0.parquet")
        pq.write_table(table.slice(17), root / split / "part_1.parquet")
        start += rows_per_split
    return dense


def test_import_keeps_values_labels_and_hierarchy(tmp_path, cl):
    dense = write_sctab_store(tmp_path / "sctab", cl)
    meta = import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", **NO_LIMIT), batch_rows=7)
    labels = [cl.id_of(t) for t in TYPES]
    assert meta["labels"] == labels and meta["n_cells"] == {"train": 30, "val": 30, "test": 30}
    assert meta["child_matrix_vs_ontology_disagreements"] == [] and not meta["child_matrix_has_diagonal"]
    for split, x in dense.items():
        data = SplitData.open(tmp_path / "store" / split, 12, labels)
        np.testing.assert_array_equal(data.x.toarray(), x)  # normalised values pass through unchanged
        codes = pq.read_table(tmp_path / "sctab" / split).column("cell_type").to_numpy()
        np.testing.assert_array_equal(data.y, codes)
    obs = pd.read_parquet(tmp_path / "store" / "train" / "obs.parquet")
    assert set(obs["dataset_id"]) <= {
        "0895c838-e550-48a3-a777-dbcd35d30272",
        "9d8e5dca-03a3-457d-b7fb-844c75735c83",
    }
    assert set(obs["donor_id"]) <= {"donor_1", "D2", "P3"}
    assert set(obs["assay"]) <= {"10x 3' v3", "10x 5' v1"}
    np.testing.assert_array_equal(np.load(tmp_path / "store" / "class_weights.npy"), [0.5, 2.0, 1.0, 1.5])
    assert np.load(tmp_path / "store" / "augmentations.npy").shape == (5, 12)
    assert pd.read_parquet(tmp_path / "store" / "var.parquet")["feature_id"].iloc[0] == "ENSG00000000000"
    assert read_json(tmp_path / "store" / "meta.json")["x_values"] == "normalised"


def test_counts_are_normalised_on_import(tmp_path, cl):
    dense = write_sctab_store(tmp_path / "sctab", cl, counts=True)
    import_sctab_store(
        tmp_path / "store", cl, sctab(tmp_path / "sctab", x_values="counts", target_sum=100, **NO_LIMIT)
    )
    x = SplitData.open(tmp_path / "store" / "val", 12).x.toarray()
    raw = dense["val"]
    sums = raw.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1
    np.testing.assert_allclose(x, np.log1p(raw / sums * 100), rtol=1e-5)


def test_disagreeing_child_matrix_is_recorded(tmp_path, cl):
    write_sctab_store(tmp_path / "sctab", cl)
    child = np.load(tmp_path / "sctab" / "cell_type_hierarchy" / "child_matrix.npy")
    child[0, 3] = 1  # claims NK cells are B cells
    np.save(tmp_path / "sctab" / "cell_type_hierarchy" / "child_matrix.npy", child)
    meta = import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", **NO_LIMIT))
    assert meta["child_matrix_vs_ontology_disagreements"] == [
        {
            "ancestor": cl.id_of("B cell"),
            "descendant": cl.id_of("natural killer cell"),
            "sctab": True,
            "ontology": False,
        }
    ]
    # The store keeps scTab's matrix as it was (hierarchy.source: sctab reads it), and the hierarchy lists the pair.
    from hcebench.data.store import Store
    from hcebench.hierarchy.labels import choose_reachability

    np.testing.assert_array_equal(Store(tmp_path / "store").child_matrix, child)
    closure = cl.closure(meta["labels"])
    kept, disagree = choose_reachability(closure, Store(tmp_path / "store").child_matrix, "store", "ontology")
    assert kept is closure
    assert disagree[["ancestor", "descendant", "cl_v2022-09-15", "sctab_child_matrix"]].values.tolist() == [
        [cl.id_of("B cell"), cl.id_of("natural killer cell"), False, True]
    ]


def test_missing_pieces_are_named(tmp_path, cl):
    write_sctab_store(tmp_path / "sctab", cl)
    (tmp_path / "sctab" / "class_weights.npy").unlink()
    with pytest.raises(ScTabStoreError, match="class_weights.npy"):
        import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", **NO_LIMIT))
    assert not (tmp_path / "store").exists()


def test_sctab_source_replaces_selection_in_the_workflow(tmp_path, cl):
    """With training_store.source sctab, one import rule stands in for select_cells and build_store."""
    import subprocess
    import sys

    import yaml

    root = Path(__file__).parents[1]
    config = yaml.safe_load((root / "tests" / "data" / "tiny_config.yaml").read_text())
    write_sctab_store(tmp_path / "sctab", cl)
    config["training_store"] = {"source": "sctab", "sctab_path": str(tmp_path / "sctab")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    dry = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(root / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--cores",
            "1",
            "--dry-run",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out
    assert "import_sctab_store" in out
    assert "select_cells" not in out and "build_store" not in out
    assert "build_ood" in out  # the OOD set still comes from the census releases


# -- data checks: values as they enter, all-zero cells ------------------------------------------------------
def _poison(store: Path, split: str, row: int, gene: int, value: float) -> str:
    """Set X[row, gene] of the split's first part to ``value``; return the row's dataset id."""
    part = store / split / "part_0.parquet"
    table = pq.read_table(part)
    x = np.stack(table.column("X").to_numpy(zero_copy_only=False)).astype(np.float32)
    x[row, gene] = value
    table = table.set_column(
        table.schema.get_field_index("X"), "X", pa.array(list(x), pa.list_(pa.float32()))
    )
    pq.write_table(table, part)
    code = table.column("tech_sample").to_numpy()[row]
    return TECH[code].split("_", 1)[0]


@pytest.mark.parametrize(
    ("x_values", "value", "kind"),
    [("normalised", np.nan, "NaN"), ("normalised", -0.5, "negative"), ("counts", 2.5, "non-integer")],
)
def test_bad_values_are_an_error_naming_the_part_and_dataset(tmp_path, cl, x_values, value, kind):
    write_sctab_store(tmp_path / "sctab", cl, counts=x_values == "counts")
    dataset = _poison(tmp_path / "sctab", "val", 3, 5, value)
    with pytest.raises(DataError) as err:
        import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", x_values=x_values, **NO_LIMIT))
    message = str(err.value)
    assert message.startswith(f"scTab store {tmp_path / 'sctab' / 'val' / 'part_0.parquet'}: 1 value(s) ")
    assert f"in 1 dataset(s): {dataset} (1 {kind})" in message and "training_store.sctab" in message
    assert not (tmp_path / "store").exists()


def test_fractional_values_are_fine_when_x_is_normalised(tmp_path, cl):
    write_sctab_store(tmp_path / "sctab", cl)  # gamma-distributed values, as scTab's log1p-normalised X
    meta = import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", **NO_LIMIT))
    assert meta["n_cells"] == {"train": 30, "val": 30, "test": 30}


def test_all_zero_cells_are_counted_and_fail_past_the_limit(tmp_path, cl):
    dense = write_sctab_store(tmp_path / "sctab", cl, n_genes=4)  # 0.7^4: about a quarter of the cells
    zero = {split: (x == 0).all(axis=1) for split, x in dense.items()}
    n_zero = sum(int(z.sum()) for z in zero.values())
    assert 0 < n_zero < 90
    meta = import_sctab_store(tmp_path / "store", cl, sctab(tmp_path / "sctab", max_zero_cell_fraction=0.5))
    checked = meta["data_checks"]
    assert (checked["cells"], checked["zero_cells"]) == (90, n_zero)
    assert sum(checked["zero_cells_by_dataset"].values()) == n_zero
    with pytest.raises(DataError, match=r"all-zero cells .*more than filters.max_zero_cell_fraction: 0.01"):
        import_sctab_store(tmp_path / "store2", cl, sctab(tmp_path / "sctab", max_zero_cell_fraction=0.01))
    assert not (tmp_path / "store2").exists()
