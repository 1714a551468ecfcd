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


# -- the paper's label order, store truncation and scores, restated from theislab/scTab and microsoft/hce-classification


def categorical_label_order(names) -> list:
    """scTab's cell_type codes: the categories pandas gives a categorical of the census's cell_type names
    (01_download_data.ipynb reads them as a categorical; 03_write_store_merlin.ipynb writes its codes)."""
    return list(pd.Categorical(list(names)).categories)


def merlin_rows(written: np.ndarray, row_group: int = 1024) -> np.ndarray:
    """03_write_store_merlin.ipynb: ``n = (n // ROW_GROUP_SIZE) * ROW_GROUP_SIZE; X[:n]``, on a split already in
    its written (permuted) order: the tail is dropped."""
    n = (len(written) // row_group) * row_group
    return written[:n]


def classification_report_macro_f1(y_true, y_pred_corr, labels=None) -> float:
    """model_evaluation_sctab.py: sklearn's classification_report's "macro avg" f1 of the corrected predictions;
    without ``labels`` sklearn averages over the union of true and predicted labels, with ``labels`` (the
    SUBSET_INDICES) over exactly those (a label neither true nor predicted scores 0)."""
    from sklearn.metrics import f1_score

    kwargs = {} if labels is None else {"labels": list(labels)}
    return float(f1_score(y_true, y_pred_corr, average="macro", zero_division=0, **kwargs))


def torchmetrics_macro_f1(y_true, y_pred_corr, k: int) -> float:
    """torchmetrics 1.4.1 MulticlassF1Score(num_classes=k, average="macro") over the whole validation split: per
    class 2 tp / (2 tp + fp + fn), averaged over the classes with tp + fp + fn > 0 (the others are dropped)."""
    y_true, y_pred_corr = np.asarray(y_true), np.asarray(y_pred_corr)
    tp = np.array([np.sum((y_true == c) & (y_pred_corr == c)) for c in range(k)], dtype=float)
    fp = np.array([np.sum((y_true != c) & (y_pred_corr == c)) for c in range(k)], dtype=float)
    fn = np.array([np.sum((y_true == c) & (y_pred_corr != c)) for c in range(k)], dtype=float)
    seen = tp + fp + fn > 0
    return float(np.mean(2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])))


def hce_ood_rows(
    raw: np.ndarray, var: pd.DataFrame, list_names, model_names, target_sum: float = 1e4
) -> np.ndarray:
    """hce-classification model_evaluation/utils.py, create_anndata_objects then streamline_data: the cells' counts
    over every var row whose feature_name is in the gene list (var_value_filter), normalize_total to 10⁴ and log1p,
    then the model's genes looked up by name (first match) in that var's order."""
    keep = var["feature_name"].isin(list(list_names)).to_numpy()
    x = raw[:, keep].astype(np.float64)
    x = np.log1p(x / x.sum(axis=1, keepdims=True) * target_sum)
    names = var.loc[keep, "feature_name"].tolist()
    return x[:, [names.index(g) for g in model_names]]
