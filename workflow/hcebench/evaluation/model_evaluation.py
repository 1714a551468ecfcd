"""One trained model's evaluation: its predictions contract for every split, decoded by propagation too, and scored.

The validation split comes first: it sets the propagation decoder's threshold, the one that does best there, before
any other split is decoded. One split at a time, so an evaluation holds one split's probabilities (the paper's
validation split: ~3.5 M cells × 164), kept in memory for the decoder whether or not the files keep them. The
checkpoint is read and rebuilt once for every split.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pandas as pd
import torch

from hcebench import layout
from hcebench.axes import PROPAGATION, loss_label
from hcebench.errors import CheckpointError
from hcebench.evaluation.contract import predictions_metadata, write_predictions
from hcebench.evaluation.predict import load_model, predict_loaded
from hcebench.evaluation.propagation import choose_threshold, decode_table
from hcebench.evaluation.scoring import score_predictions
from hcebench.hierarchy.labels import LabelHierarchy
from hcebench.io import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationFiles:
    """Where one model's evaluation writes. ``predictions``: one file per predicted split, in the order of the
    split directories; ``metrics``: one table per scored split; ``decoded`` / ``decoded_metrics``: the same for the
    predictions decoded by propagation (every predicted split but the validation split), empty without decoding;
    ``decoder``: the chosen threshold (None without decoding)."""

    predictions: list[str]
    metrics: list[str]
    decoded: list[str]
    decoded_metrics: list[str]
    decoder: str | None


def check_model_is_run(
    checkpoint: dict,
    path: str | os.PathLike,
    hierarchy: LabelHierarchy,
    *,
    architecture: str,
    loss: str,
    seed: int,
) -> None:
    """Refuse a model file whose recorded run is not the one it is scored as: another architecture, loss or seed (a
    file copied into the wrong folder), or another label set or hierarchy than the run's."""
    trained = checkpoint.get("settings") or {}
    recorded = (checkpoint["architecture"], trained.get("loss"), trained.get("seed"))
    wanted = (architecture, loss, int(seed))
    problems = []
    if recorded != wanted:
        problems.append(f"it was trained as {'/'.join(map(str, recorded))}, not {'/'.join(map(str, wanted))}")
    if list(checkpoint["labels"]) != list(hierarchy.term_ids):
        problems.append("its labels are not the run's (hierarchy/labels.tsv)")
    elif checkpoint["reachability_hash"] != hierarchy.content_hash:
        problems.append(
            f"its hierarchy {checkpoint['reachability_hash']} is not the run's {hierarchy.content_hash}"
        )
    if problems:
        raise CheckpointError(
            f"model {path}: {'; '.join(problems)}; delete it and rerun the train job of this run"
        )


def evaluate_model(
    model_path: str | os.PathLike,
    hierarchy_dir: str | os.PathLike,
    split_dirs: dict[str, str],
    scored: list[str],
    files: EvaluationFiles,
    *,
    architecture: str,
    loss: str,
    seed: int,
    device: torch.device,
    save_probabilities: bool = True,
) -> None:
    """Predict every split of ``split_dirs`` ({split: store split directory}, the validation split first when
    decoding) with the model, write each predictions file, and score the ``scored`` splits into their tables; with
    ``files.decoder``, also decode every split after the validation split by propagation and score those."""
    decoding = files.decoder is not None
    if decoding and next(iter(split_dirs)) != layout.VAL_SPLIT:
        raise ValueError(f"decoding needs the {layout.VAL_SPLIT!r} split first, got {list(split_dirs)}")
    hierarchy = LabelHierarchy.load(hierarchy_dir)
    names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
    run = {"architecture": architecture, "seed": int(seed)}
    decoded_loss = loss_label(loss, PROPAGATION.name)

    def kept(table: pd.DataFrame) -> pd.DataFrame:
        return table if save_probabilities else table.drop(columns="probs")

    def score(scored_loss: str, path: str, split: str, tables: list[str]) -> None:
        directory = split_dirs[split]
        table = score_predictions(
            path,
            hierarchy_dir,
            os.path.dirname(os.path.normpath(directory)),
            loss=scored_loss,
            split=split,
            output=tables[scored.index(split)],
            **run,
        )
        log.info("%s %s: %d metric rows", scored_loss, split, len(table))

    model, checkpoint = load_model(model_path, device)
    check_model_is_run(checkpoint, model_path, hierarchy, architecture=architecture, loss=loss, seed=seed)
    decoded_paths = iter(files.decoded)
    tau = None
    for path, (split, directory) in zip(files.predictions, split_dirs.items(), strict=True):
        table = predict_loaded(model, checkpoint, directory, names, device, model_path)
        write_predictions(
            kept(table), path, predictions_metadata(hierarchy, directory, loss=loss, split=split, **run)
        )
        log.info("%s: %d cells predicted", split, len(table))
        if decoding and split == layout.VAL_SPLIT:
            tau, per_tau = choose_threshold(table, hierarchy)
            record = {"tau": tau, "chosen_on": layout.VAL_SPLIT, "validation": per_tau.to_dict("records")}
            write_json(files.decoder, record)
            log.info("propagation decoder: tau %.3f chosen on the validation split", tau)
            continue
        if split in scored:
            score(loss, path, split, files.metrics)
        if decoding:
            decoded_path = next(decoded_paths)
            meta = predictions_metadata(hierarchy, directory, loss=decoded_loss, split=split, **run)
            meta["method"] = f"propagation decoding of {architecture}/{loss}/seed{seed} at tau {tau:.4g}"
            write_predictions(kept(decode_table(table, hierarchy, tau)), decoded_path, meta)
            if split in scored:
                score(decoded_loss, decoded_path, split, files.decoded_metrics)
