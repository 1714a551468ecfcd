"""One vocabulary for the rules and the library: split names, run keys, and where a run's results live.

Every path below is relative to ``results/<run>/`` and written with Snakemake's wildcard names (``{arch}``,
``{loss}``, ``{seed}``, ``{split}``), so ``rules/common.smk`` builds rule inputs and outputs from these strings and
the library parses or formats the same strings. Renaming a directory or a split happens here and nowhere else.
"""

from __future__ import annotations

import re

# -- splits ----------------------------------------------------------------------------------------------------
#: The training store's splits, in the order scTab writes them.
STORE_SPLITS = ("train", "val", "test")
#: The OOD set's splits: cells of training labels, and cells of new types scored at their nearest trained ancestor.
OOD_SPLIT = "ood"
NOVEL_SPLIT = "ood_novel"
#: The validation split: predicted only to choose the propagation decoder's threshold, never scored.
VAL_SPLIT = "val"
#: Splits ``evaluation.splits`` may name: the in-distribution test split and the OOD split.
EVALUATED_SPLITS = ("test", OOD_SPLIT)
#: Every split a model predicts and a metrics table may hold.
SCORED_SPLITS = (*EVALUATED_SPLITS, NOVEL_SPLIT)
#: Column prefix of each evaluated split in ``summary.tsv`` (``id_macro_f1_mean``, ``ood_macro_f1_mean``, ...).
SUMMARY_PREFIX = {"test": "id", OOD_SPLIT: "ood"}


#: Every split a predictions file may hold: the scored ones and the validation split.
PREDICTION_SPLITS = (VAL_SPLIT, *SCORED_SPLITS)


def predicted_splits(evaluated: list[str] | tuple[str, ...], decoding: bool = False) -> list[str]:
    """The splits a model predicts when ``evaluated`` are scored: the novel-type split joins the OOD split, and the
    validation split comes first when the propagation decoder needs it to choose its threshold."""
    return [
        *([VAL_SPLIT] if decoding else []),
        *evaluated,
        *([NOVEL_SPLIT] if OOD_SPLIT in evaluated else []),
    ]


def split_home(split: str) -> str:
    """The directory (relative to the run) whose ``<split>/`` subdirectory holds a split: the OOD set or the store."""
    return OOD_DIR if split.startswith(OOD_SPLIT) else STORE_DIR


# -- runs --------------------------------------------------------------------------------------------------------
#: The columns that identify one run (``hcebench.axes.RunKey``: its ``loss`` column is the run's loss label, the loss
#: with its decoder's suffix); with the split, one predictions file and one metrics table.
RUN_KEYS = ("architecture", "loss", "seed")
ID_COLUMNS = [*RUN_KEYS, "split"]
#: Snakemake wildcard of each run key.
WILDCARD = {"architecture": "arch", "loss": "loss", "seed": "seed", "split": "split"}


# -- result paths (relative to results/<run>/) -----------------------------------------------------------------------
CENSUS_DIR = "census"
ONTOLOGY_COPY = "ontology/{name}.obo"
CENSUS_MANIFEST = "census/manifest.json"
SELECTION_CELLS = "selection/cells.parquet"
SELECTION_LABELS = "selection/labels.txt"
SELECTION_REPORT = "selection/report.json"
HIERARCHY_DIR = "hierarchy"
STORE_DIR = "store"
OOD_DIR = "ood"
BANK = "augmentation/bank.npy"
AUDIT_TABLE = "audit/ood_leakage.tsv"
AUDIT_TOTALS = "audit/ood_leakage.json"
AUDIT_LABEL_RULES = "audit/ood_label_rules.tsv"
#: Primary cells listed more than once in either release (hcebench.data.releases.confirm_duplicates).
AUDIT_DUPLICATES = "audit/duplicate_primary_cells.tsv"
#: The training labels' changes between the training and the OOD release's Cell Ontology (ontology.ood_source).
AUDIT_CL_DIFF = "audit/cl_release_diff.tsv"
AUDIT_CL_DIFF_TOTALS = "audit/cl_release_diff.json"
MODEL_DIR = "models/{arch}/{loss}/seed{seed}"
#: The propagation decoder's threshold, chosen on the validation split, beside the decoded predictions.
DECODER = "predictions/{arch}/{loss}/seed{seed}/decoder.json"
MODEL = f"{MODEL_DIR}/model.pt"
HISTORY = f"{MODEL_DIR}/history.tsv"
TRAIN_SUMMARY = f"{MODEL_DIR}/train.json"
#: An external method's fitted model (its own format; CellTypist: a pickle it writes and reads itself).
EXTERNAL_MODEL = f"{MODEL_DIR}/model.pkl"
PREDICTIONS = "predictions/{arch}/{loss}/seed{seed}/{split}.parquet"
METRICS = "metrics/{arch}/{loss}/seed{seed}/{split}.tsv"
#: A user's .h5ad annotated by a trained model (rules/annotate.smk): ``{name}`` is the input's file name without
#: ``.h5ad``, ``{ext}`` the output format (h5ad or parquet); the summary is ANNOTATION_SUMMARY beside it.
ANNOTATION = "annotated/{arch}/{loss}/seed{seed}/{name}.{ext}"
ANNOTATION_SUMMARY = "annotated/{arch}/{loss}/seed{seed}/{name}.json"
METRICS_TABLE = "metrics.tsv"
SUMMARY = "summary.tsv"
HISTORIES = "histories.tsv"
FIGURE = "figures/{name}.png"
ANALYSIS_TABLE = "analysis/{name}.tsv"
LOG_DIR = "logs"
#: Snakemake `benchmark:` files of every job (peak RSS, run time), beside the logs: `<BENCHMARK_DIR>/<rule>/...tsv`.
BENCHMARK_DIR = "benchmarks"


def run_of(path: str, template: str) -> dict[str, str]:
    """The run keys (and split) a result path was made from: ``run_of(p, HISTORY)`` → architecture, loss, seed.

    ``path`` may carry any prefix (``results/demo/...``); a path that does not end in ``template``'s shape is a
    ``ValueError`` naming both.
    """
    pattern = re.escape(template)
    for key, wildcard in WILDCARD.items():
        pattern = pattern.replace(re.escape("{" + wildcard + "}"), f"(?P<{key}>[^/]+)")
    match = re.search("(?:^|/)" + pattern + "$", str(path).replace("\\", "/"))
    if match is None:
        raise ValueError(f"{path} is not a {template} path")
    return match.groupdict()


def of_seed(paths: list[str], template: str, seed: int) -> list[str]:
    """The paths among ``paths`` (made from ``template``) that belong to the model of ``seed``, in their order: a
    job that runs several seeds (``training.seeds_in_one_job``) finds each model's files among its outputs."""
    return [str(p) for p in paths if int(run_of(p, template)["seed"]) == int(seed)]
