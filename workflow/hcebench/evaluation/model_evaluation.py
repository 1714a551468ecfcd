"""One trained model's evaluation: its predictions contract for every split, decoded by propagation too, and scored.

The validation split comes first: it sets the propagation decoder's threshold, the one that does best there, before
any other split is decoded. Each split streams from the model to its files one chunk of cells at a time
(``predict.predict_chunks``, ``contract.PredictionsWriter``): a chunk's probabilities are written (when
``save_probabilities``), fed to the threshold search or decoded, and dropped, so no split's probability matrix is
ever whole in memory. What stays per cell: on the validation split the threshold search's truth and one decoded
label per ``τ`` (50 bytes, ``propagation.ThresholdSearch``); while scoring, the scored table (``scoring``). The
checkpoint is read and rebuilt once for every split.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from hcebench import layout
from hcebench.axes import PROPAGATION, loss_label
from hcebench.data.store import Store
from hcebench.errors import CheckpointError
from hcebench.evaluation.contract import PredictionsWriter, contract_table, predictions_metadata
from hcebench.evaluation.predict import load_model, predict_chunks
from hcebench.evaluation.propagation import ThresholdSearch, decode_chunk
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
    labels = checkpoint["labels"]
    tau = None
    for path, (split, directory) in zip(files.predictions, split_dirs.items(), strict=True):
        # The split streams chunk by chunk from the model to the files: its predictions, the validation split's
        # threshold search (a few ints per cell) or the decoded predictions. The previous split is gone by now.
        search = None
        decoded_path = None
        if decoding and split == layout.VAL_SPLIT:
            search = ThresholdSearch(hierarchy, Store.holding(directory).split(Path(directory).name).n_obs)
        elif decoding:
            decoded_path = next(decoded_paths)
        meta = predictions_metadata(hierarchy, directory, loss=loss, split=split, **run)
        with PredictionsWriter(path, meta) as writer, ExitStack() as stack:
            decoded = None
            if decoded_path is not None:
                decoded_meta = predictions_metadata(
                    hierarchy, directory, loss=decoded_loss, split=split, **run
                )
                decoded_meta["method"] = (
                    f"propagation decoding of {architecture}/{loss}/seed{seed} at tau {tau:.4g}"
                )
                decoded = stack.enter_context(PredictionsWriter(decoded_path, decoded_meta))
            for obs, probs in predict_chunks(model, checkpoint, directory, device, model_path):
                table = contract_table(obs, labels, probs, names, save_probabilities)
                writer.write(table)
                if search is not None:
                    search.add(table["true_label"], probs)
                if decoded is not None:
                    decoded.write(decode_chunk(table, probs, hierarchy, tau))
                del table, probs
        log.info("%s: %d cells predicted", split, writer.n_rows)
        if search is not None:
            tau, per_tau = search.result()
            del search
            record = {"tau": tau, "chosen_on": layout.VAL_SPLIT, "validation": per_tau.to_dict("records")}
            write_json(files.decoder, record)
            log.info("propagation decoder: tau %.3f chosen on the validation split", tau)
            continue
        if split in scored:
            score(loss, path, split, files.metrics)
        if decoded_path is not None and split in scored:
            score(decoded_loss, decoded_path, split, files.decoded_metrics)
