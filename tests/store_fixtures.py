"""A small training store written directly with SplitWriter (no census): for training and prediction tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hcebench.data.selection import balanced_class_weights
from hcebench.data.store import SplitWriter, normalise
from hcebench.hierarchy.ontology import load_ontology
from hcebench.io import write_json

DATA = Path(__file__).parent / "data"
LABELS = [f"T:000000{i}" for i in range(1, 6)]  # A..E of five_node.obo


def write_toy_store(
    root: Path, n_genes: int = 40, cells: dict | None = None, seed: int = 0
) -> tuple[Path, Path]:
    """Cells of the five-node DAG's labels with a label-specific gene block; returns (store, hierarchy) dirs."""
    rng = np.random.default_rng(seed)
    cells = cells or {"train": 600, "val": 150, "test": 150}
    store = root / "store"
    (store).mkdir(parents=True)
    genes = pd.DataFrame(
        {
            "feature_id": [f"ENSG{i:011d}" for i in range(n_genes)],
            "feature_name": [f"G{i}" for i in range(n_genes)],
        }
    )
    genes.to_parquet(store / "var.parquet", index=False)
    train_y = None
    for split, n in cells.items():
        y = rng.integers(0, len(LABELS), n)
        mean = np.full((n, n_genes), 0.5)
        for k in range(len(LABELS)):
            mean[y == k, k * 6 : k * 6 + 6] += 4.0
        counts = sp.csr_matrix(rng.poisson(mean).astype(np.float32))
        obs = pd.DataFrame(
            {
                "soma_joinid": np.arange(n),
                "dataset_id": rng.choice(["d1", "d2"], n),
                "donor_id": "x",
                "tissue": "blood",
                "tissue_general": "blood",
                "assay": "10x 3' v3",
                "disease": "normal",
                "label": np.array(LABELS)[y],
                "label_index": y,
            }
        )
        writer = SplitWriter(store / split, n_genes)
        writer.append(normalise(counts, 1e4), obs)
        writer.close()
        if split == "train":
            train_y = y
    np.save(store / "class_weights.npy", balanced_class_weights(train_y, len(LABELS)))
    write_json(
        store / "meta.json", {"labels": LABELS, "n_genes": n_genes, "census_release": "toy", "n_cells": cells}
    )
    hierarchy = root / "hierarchy"
    load_ontology(DATA / "five_node.obo").closure(LABELS).save(hierarchy)
    return store, hierarchy


#: Small linear and MLP entries that learn the toy store's separable labels in a few epochs.
TOY_ENTRIES = {
    "linear": {"lr": 0.01, "weight_decay": 0.0},
    "mlp": {"lr": 0.005, "weight_decay": 0.0, "n_layers": 2, "hidden": 32, "dropout": 0.0},
}
