# Paths, census sources, wildcard constraints and the target list shared by every rule file.

import json
from pathlib import Path

from hcebench.ontology import resolve_source as resolve_ontology_source

RESULTS = f"results/{config['run']}"
LOGS = f"{RESULTS}/logs"
CENSUS = config["census"]
ARCHITECTURES = list(config["architectures"])
LOSSES = config["training"]["losses"]
SEEDS = config["training"]["seeds"]
SPLITS = config["evaluation"]["splits"]
ENV = "../envs/hcebench.yaml"


wildcard_constraints:
    arch="[A-Za-z0-9_]+",
    loss="ce|hce",
    seed=r"\d+",
    split="test|ood|ood_novel",


def census_source(which):
    """The census a stage reads, as the dict hcebench.census.open_census takes ('train' or 'ood')."""
    release = CENSUS[f"{which}_release"]
    if CENSUS["source"] == "simulated":
        return {"uri": f"{RESULTS}/census/{release}"}
    if CENSUS["source"] == "cellxgene":
        return {"census_version": release}
    return {"uri": CENSUS[f"{which}_uri"]}


def census_inputs():
    """Files a census-reading rule waits for: the simulated census when there is one, else nothing."""
    return [f"{RESULTS}/census/manifest.json"] if CENSUS["source"] == "simulated" else []


def ontology_obo():
    """Local OBO path of ontology.source: bundled, a file, or the fetch rule's cached copy of a URL."""
    source = config["ontology"]["source"]
    if source.startswith(("http://", "https://")):
        return f"{RESULTS}/ontology/{Path(source).name}"
    return str(resolve_ontology_source(source))


def split_dir(wc):
    # The OOD set holds two splits: "ood" (training labels) and "ood_novel" (new types, at a trained ancestor).
    return f"{RESULTS}/ood/{wc.split}" if wc.split.startswith("ood") else f"{RESULTS}/store/{wc.split}"


def grid(pattern, **extra):
    return expand(pattern, arch=ARCHITECTURES, loss=LOSSES, seed=SEEDS, **extra)


def final_targets():
    return [
        f"{RESULTS}/summary.tsv",
        f"{RESULTS}/metrics.tsv",
        f"{RESULTS}/audit/ood_leakage.tsv",
        *figure_targets(),
    ]


def figure_targets():
    names = ["fig2b_ood_macro_f1", "id_test_macro_f1", "id_vs_ood", "training_curves",
             # rules/analysis.smk
             "fig2c_celltype_delta", "fig2d_ontology_dag", "connectivity", "stratified_macro_f1",
             "hierarchical_metrics", "backoff_curves", "calibration", "novel_ood_types"]
    return [f"{RESULTS}/figures/{name}.png" for name in names]


def split_data(wc):
    """The store directory holding a split: the training store, or the OOD set."""
    return f"{RESULTS}/ood" if wc.split.startswith("ood") else f"{RESULTS}/store"
