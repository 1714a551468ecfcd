"""scTab's split and on-disk cell order, restated plainly from 02_create_train_val_test_split.ipynb.

An independent statement of the two notebook cells the suite reproduces (hcebench.data.selection.split_tech_samples,
store_order; hcebench.data.build.build_training_store), kept apart from the library so tests compare the two:

1. the unique tech_samples of the cell table, in order of first appearance, as a numpy array; one
   ``default_rng(seed)`` shuffles it in place; ``ceil(0.15 n)`` go to val and ``ceil(0.15 n)`` to test, the first
   ``n - n_val - n_test`` to train; each split is the cells (row positions of the table) of its tech_samples,
   in table order;
2. a fresh ``default_rng(seed)`` replaces each split's positions by ``rng.permutation(positions)``, train first,
   then val, then test; each split is written in that order.
"""

from math import ceil

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def notebook_split(tech_sample: pd.Series, seed: int = 1, val: float = 0.15, test: float = 0.15) -> dict:
    """{split: row positions of its cells, in table order}, from step 1."""
    samples = np.array(tech_sample.unique().tolist())
    generator = np.random.default_rng(seed=seed)
    generator.shuffle(samples)
    n_val, n_test = ceil(val * len(samples)), ceil(test * len(samples))
    n_train = len(samples) - n_val - n_test
    members = {
        "train": samples[:n_train],
        "val": samples[n_train : n_train + n_val],
        "test": samples[n_train + n_val :],
    }
    return {name: np.flatnonzero(tech_sample.isin(members[name]).to_numpy()) for name in SPLITS}


def notebook_order(positions: dict, seed: int = 1) -> dict:
    """{split: row positions in the order they are written}, from step 2."""
    generator = np.random.default_rng(seed=seed)
    written = {}
    for name in SPLITS:
        written[name] = generator.permutation(positions[name])
    return written
