"""Controls: predictors that look at no expression, to place every model's scores between a floor and a ceiling.

Each writes the predictions contract for a split, built by ``contract.contract_table`` from the split's obs and
a probability matrix, exactly as a trained model's table is:

- ``random``: each cell's label is drawn from the training split's label frequencies (``numpy`` generator seeded
  with ``seed``); ``probs`` are those frequencies for every cell, ``pred_prob`` the drawn label's frequency. The
  chance floor of a predictor that knows the class balance.
- ``majority``: the most frequent training label for every cell (ties: the first in ``labels.tsv``). ``probs``
  are the training frequencies, not a one-hot vector: their argmax is the majority label, ``pred_prob`` its
  frequency is the calibrated confidence of this predictor on in-distribution cells, and propagation decoding of
  the table decodes the class prior (the deepest label whose training mass reaches ``τ``).
- ``truth``: the true label with probability 1 (one-hot ``probs``): the ceiling, macro F1 1 on every split. On
  the ``ood_novel`` split (``layout.NOVEL_SPLIT``) the cells' own types are not in the label set, and the split's
  ``label`` is already their nearest trained ancestor (``hcebench.data.ood``); predicting it is the best a model
  of this label set can do there: it is correct under the paper's rule and an exact hit of the ancestor in the
  novel-type analysis (a subtype of it would be correct too, but claims more than the label supports).

The controls and their bounds are ``hcebench.axes.CONTROLS``; they have no loss (``hcebench.axes.NO_LOSS``). Imports no torch (``external`` layer rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from hcebench.axes import CONTROLS
from hcebench.evaluation.contract import contract_table


def label_frequencies(train_labels, hierarchy) -> np.ndarray:
    """Fraction of the training cells carrying each label, in the order of ``hierarchy.term_ids``."""
    return label_frequencies_of_chunks([train_labels], hierarchy)


def label_frequencies_of_chunks(chunks: Iterable, hierarchy) -> np.ndarray:
    """``label_frequencies`` of the training labels given in chunks (e.g. ``SplitData.obs_chunks`` of the
    ``label`` column): integer counts summed over the chunks, so the frequencies are the same as in one piece and
    memory is one chunk's labels."""
    counts = np.zeros(hierarchy.k, dtype=np.int64)
    for chunk in chunks:
        labels = pd.Series(np.asarray(chunk), dtype=object).astype(str)
        index = pd.Index(hierarchy.term_ids).get_indexer(labels)
        if (index < 0).any():
            bad = sorted(set(labels[index < 0]))
            raise ValueError(
                f"training labels outside the label set (CL {hierarchy.release}, {hierarchy.k} labels): "
                f"{bad[:10]}; the store and hierarchy/ come from different runs"
            )
        counts += np.bincount(index, minlength=hierarchy.k)
    if counts.sum() == 0:
        raise ValueError("the training split has no cells, so it has no label frequencies; rebuild the store")
    counts = counts.astype(np.float64)
    return counts / counts.sum()


def control_table(
    method: str,
    obs: pd.DataFrame,
    train_labels,
    hierarchy,
    seed: int,
    save_probabilities: bool = True,
) -> pd.DataFrame:
    """The contract table of control ``method`` (one of ``CONTROLS``) for the cells ``obs`` (a split's obs).

    ``train_labels`` are the training split's labels (term ids), ``hierarchy`` the run's ``LabelHierarchy``;
    ``seed`` seeds the ``random`` control's draws (the others ignore it). Module docstring for each control.
    """
    freq = None if method == "truth" else label_frequencies(train_labels, hierarchy)
    return next(control_chunks(method, [obs], freq, hierarchy, seed, save_probabilities))


def control_chunks(
    method: str,
    obs_chunks: Iterable[pd.DataFrame],
    frequencies: np.ndarray | None,
    hierarchy,
    seed: int,
    save_probabilities: bool = True,
) -> Iterator[pd.DataFrame]:
    """The contract table of control ``method`` chunk by chunk: one table per chunk of the split's obs
    (``SplitData.obs_chunks``), the same rows as ``control_table`` on the whole obs (the ``random`` control's
    draws continue one generator across chunks). ``frequencies`` are ``label_frequencies_of_chunks`` of the
    training labels (unused by ``truth``). Memory is one chunk's table: with ``save_probabilities`` false no
    per-cell probability vector is built at all (the frequencies are one read-only row broadcast to the chunk)."""
    if method not in CONTROLS:
        raise ValueError(f"unknown control {method!r}; choose one of {list(CONTROLS)}")
    labels = list(hierarchy.term_ids)
    names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
    k = hierarchy.k
    if method != "truth":
        freq64 = np.asarray(frequencies, dtype=np.float64)
        freq = freq64.astype(np.float32)
        terms = np.asarray(labels, dtype=object)
        term_names = np.asarray([names[t] for t in labels], dtype=object)
        rng = np.random.default_rng(seed)
    for obs in obs_chunks:
        n = len(obs)
        if method == "truth":
            truth = pd.Index(labels).get_indexer(obs["label"].astype(str))
            if (truth < 0).any():
                bad = sorted(set(obs["label"].astype(str)[truth < 0]))
                raise ValueError(
                    f"obs labels outside the label set (CL {hierarchy.release}): {bad[:10]}; the truth control "
                    "scores only cells of trained labels (the ood_novel split holds their nearest trained ancestor)"
                )
            probs = np.zeros((n, k), dtype=np.float32)
            probs[np.arange(n), truth] = 1.0
            yield contract_table(obs, labels, probs, names, save_probabilities)
            continue
        # A read-only broadcast: the frequencies are stored once, not once per cell, unless probs are saved.
        probs = np.broadcast_to(freq, (n, k))
        table = contract_table(obs, labels, probs, names, save_probabilities)
        if method == "random":
            # Drawn with the float64 frequencies: float32 ones sum to 1 only within ~1e-7, which rng.choice refuses.
            drawn = rng.choice(k, size=n, p=freq64) if n else np.zeros(0, np.int64)
            table["pred_label"] = terms[drawn]
            table["pred_label_name"] = term_names[drawn]
            table["pred_prob"] = freq[drawn]
        yield table
