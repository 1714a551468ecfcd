# Every helper of the workflow in one place (result paths from hcebench.layout, census sources, the run grid).
# The other .smk files hold only rules, so they may be included in any order.

import re
from pathlib import Path

from hcebench import axes, layout
from hcebench.hierarchy.ontology import resolve_source as resolve_ontology_source
from hcebench.models import architecture_losses
from hcebench.settings import (
    AnalysisSettings,
    AnnotateSettings,
    AuditSettings,
    BankSettings,
    CellTypistSettings,
    EvaluationSettings,
    IngestSettings,
    OodSettings,
    ScTabImportSettings,
    SelectionSettings,
    StoreSettings,
    TrainingSettings,
    canonical,
)

RESULTS = f"results/{config['run']}"
LOGS = f"{RESULTS}/{layout.LOG_DIR}"
# Each job's peak memory and run time (Snakemake's benchmark files), the numbers resources come from.
BENCHMARKS = f"{RESULTS}/{layout.BENCHMARK_DIR}"
CENSUS = config["census"]
# Store and OOD builds with census.build_workers null: this many processes (Snakemake gives fewer when it has
# fewer cores; the job's threads are its workers).
DEFAULT_BUILD_WORKERS = 4
ARCHITECTURES = list(config["architectures"])
# Entries with checkpoints: are the authors' models, imported instead of trained (hcebench.training.imported).
IMPORTED = [arch for arch in ARCHITECTURES if config["architectures"][arch].get("checkpoints")]
TRAINED = [arch for arch in ARCHITECTURES if arch not in IMPORTED]
SEEDS = config["training"]["seeds"]
SPLITS = config["evaluation"]["splits"]
# Each architecture's losses: its entry's `losses`, else training.losses.
ARCH_LOSSES = {arch: architecture_losses(config, arch) for arch in ARCHITECTURES}
DECODING = config["evaluation"]["propagation_decoding"]
# The loss label of a trained loss's models decoded by propagation: the {loss} wildcard with the decoder's suffix.
PROPAGATED = axes.loss_label("{loss}", axes.PROPAGATION.name)
# One job per model predicts every split; the OOD set's novel-type split joins whenever "ood" is evaluated, and
# the validation split (for the decoder's threshold) when models are also decoded by propagation.
PREDICTED_SPLITS = layout.predicted_splits(SPLITS, decoding=DECODING)
# Splits with a contract file, hence a metrics table, for every model and method: the novel-type split is read by
# the prediction analyses only, the validation split by the decoder only.
DECODED_SPLITS = layout.predicted_splits(SPLITS)
CELLTYPIST = config["celltypist"]
# CellTypist's row of the grid: its architecture name and loss (hcebench.axes.EXTERNAL_METHODS).
CELLTYPIST_RUN = axes.EXTERNAL_METHODS["celltypist"]
CELLTYPIST_SEEDS = CELLTYPIST["seeds"] if CELLTYPIST["seeds"] is not None else SEEDS
CONTROLS = config["evaluation"]["controls"]
# One train and one evaluate job per model, or per architecture × loss running its seeds in turn (the demo): every
# job pays Python's and torch's start-up, as long as a demo model takes to train.
SEEDS_IN_ONE_JOB = config["training"]["seeds_in_one_job"]
# What names a train or evaluate job (its log file): architecture, loss and, with a job per model, the seed.
JOB_NAME = "{arch}_{loss}" if SEEDS_IN_ONE_JOB else "{arch}_{loss}_seed{seed}"
ENV = "../envs/hcebench.yaml"


wildcard_constraints:
    arch="[A-Za-z0-9_]+",
    loss="|".join(
        [axes.loss_label(loss, decoder) for loss in axes.LOSSES for decoder in axes.DECODERS] + [axes.NO_LOSS.name]
    ),
    seed=r"\d+",
    split="|".join(layout.PREDICTION_SPLITS),


def result(path, **fields):
    """A path under results/<run>/ from a hcebench.layout template; ``fields`` fill some of its wildcards."""
    return f"{RESULTS}/{path.format_map(_Keep(fields))}"


class _Keep(dict):
    """format_map mapping that leaves unfilled wildcards as they are ({arch} stays {arch})."""

    def __missing__(self, key):
        return f"{{{key}}}"


def census_source(which):
    """The census a stage reads, as the dict hcebench.data.census.open_census takes ('train' or 'ood')."""
    release = CENSUS[f"{which}_release"]
    if CENSUS["source"] in ("simulated", "anndata"):
        return {"uri": f"{RESULTS}/{layout.CENSUS_DIR}/{release}"}
    if CENSUS["source"] == "cellxgene":
        return {"census_version": release}
    return {"uri": CENSUS[f"{which}_uri"]}


def census_inputs():
    """Files a job that reads the census waits for: the simulated or ingested census when there is one, else
    nothing."""
    return [result(layout.CENSUS_MANIFEST)] if CENSUS["source"] in ("simulated", "anndata") else []


def anndata_inputs():
    """The .h5ad files and label maps census.source anndata ingests: editing one ingests again."""
    files = []
    for entry in CENSUS["anndata"]["datasets"]:
        files.append(entry["path"])
        if (entry.get("labels") or {}).get("map"):
            files.append(entry["labels"]["map"])
    return files


def ontology_obo():
    """Local OBO path of ontology.source: bundled, a file, or the fetch rule's cached copy of a URL."""
    source = config["ontology"]["source"]
    if source.startswith(("http://", "https://")):
        return result(layout.ONTOLOGY_COPY, name=Path(source).stem)
    return str(resolve_ontology_source(source))


def gene_list_input():
    """genes.source as an input of the store build when it is a file (its edits rebuild the store)."""
    source = config["genes"]["source"]
    return [] if source == "all" or source.startswith("bundled:") else [source]


def pinned_labels_input():
    """filters.pinned_labels as an input of the selection job when it is a file (its edits rerun the selection)."""
    pin = config["filters"].get("pinned_labels")
    return [pin] if pin and not pin.startswith("bundled:") else []


def split_dirs(splits):
    """{split: directory} of each split, in the training store or the OOD set."""
    return {s: f"{RESULTS}/{layout.split_home(s)}/{s}" for s in splits}


def split_data(wc):
    """The store directory holding a split: the training store, or the OOD set."""
    return result(layout.split_home(wc.split))


def grid(path, decoded=False, **fields):
    """Every trained architecture × its losses × seed, for a layout path; with ``decoded``, the same models decoded
    by propagation (loss label ``<loss>_prop``, hcebench.axes) too, when evaluation.propagation_decoding is on."""
    losses = {arch: list(ARCH_LOSSES[arch]) for arch in ARCHITECTURES}
    if decoded and DECODING:
        # Every loss decoded by argmax first, then every loss decoded by propagation.
        losses = {arch: [axes.loss_label(n, d) for d in axes.DECODERS for n in names] for arch, names in losses.items()}
    return [
        file
        for arch in ARCHITECTURES
        for file in expand(result(path), arch=arch, loss=losses[arch], seed=SEEDS, **fields)
    ]


def per_job(pattern, **wildcards):
    """A train or evaluate job's files of ``pattern`` (each value of ``wildcards`` filled in): its model's, with a
    {seed} wildcard, or every seed's of the run with training.seeds_in_one_job."""
    seeds = {"seed": SEEDS} if SEEDS_IN_ONE_JOB else {}
    return expand(pattern, **wildcards, **seeds, allow_missing=True)


def job_seeds(wc):
    """The seeds a train or evaluate job runs, in turn: its own, or every seed with training.seeds_in_one_job."""
    return list(SEEDS) if SEEDS_IN_ONE_JOB else [int(wc.seed)]


def rule_resources(rule, mem_mb, runtime, **extra):
    """A rule's resources: its defaults (``mem_mb`` MB, ``runtime`` minutes), replaced by what the config's
    resources.rules.<rule> gives (config/paper.yaml's come from the scale rehearsal)."""
    return {"mem_mb": mem_mb, "runtime": runtime, **extra, **config["resources"]["rules"].get(rule, {})}


def job_runtime(minutes):
    """A train or evaluate job's time limit: resources.<rule>.runtime is per model, so times the seeds it runs."""
    return minutes * (len(SEEDS) if SEEDS_IN_ONE_JOB else 1)


def external_runs():
    """(architecture, loss, seed) of every external method that is enabled: CellTypist (CE, its own seeds) and the
    controls (loss "none"; the random labels once per training seed, the deterministic ones once)."""
    runs = [(CELLTYPIST_RUN.name, CELLTYPIST_RUN.loss, seed) for seed in CELLTYPIST_SEEDS] if CELLTYPIST["enabled"] else []
    for control in CONTROLS:
        seeds = SEEDS if axes.CONTROLS[control].per_seed else SEEDS[:1]
        runs += [(axes.CONTROLS[control].architecture, axes.NO_LOSS.name, seed) for seed in seeds]
    return runs


def external_grid(path, **fields):
    """The same files of the external methods that are enabled."""
    return [
        file
        for arch, loss, seed in external_runs()
        for file in expand(result(path, arch=arch, loss=loss, seed=seed), **fields)
    ]


def analysed_predictions():
    """Every predictions file of the grid (decoded models and the novel-type split included) and of the external
    methods."""
    return grid(layout.PREDICTIONS, decoded=True, split=DECODED_SPLITS) + external_grid(
        layout.PREDICTIONS, split=SPLITS
    )


def cached_artifacts():
    """Every model and predictions file of the run, which the default target also asks for: one deleted by hand (or
    lost) is made again by the next run, not ignored because the tables built from it are up to date."""
    files = grid(layout.MODEL) + grid(layout.PREDICTIONS, split=PREDICTED_SPLITS) + analysed_predictions()
    if DECODING:
        files += [
            result(layout.DECODER, arch=arch, loss=axes.loss_label(loss, axes.PROPAGATION.name), seed=seed)
            for arch in ARCHITECTURES
            for loss in ARCH_LOSSES[arch]
            for seed in SEEDS
        ]
    return files


# The .h5ad files to annotate (annotate.inputs), by file name without .h5ad: the {name} of rules/annotate.smk.
ANNOTATE_INPUTS = {Path(p).name[: -len(".h5ad")]: p for p in config["annotate"]["inputs"]}


def annotated_files():
    """Every annotation and its summary that annotate.inputs ask for (none without them)."""
    if not ANNOTATE_INPUTS:
        return []
    block = config["annotate"]
    run = dict(zip(("arch", "loss", "seed"), block["model"].split("/")))
    return [
        result(template, **run, name=name, ext=block["format"])
        for name in ANNOTATE_INPUTS
        for template in (layout.ANNOTATION, layout.ANNOTATION_SUMMARY)
    ]


# The census to stream training batches from with training.data_source: tiledbsoma_ml; None with the store.
STREAM = (
    {"source": census_source("train"), "organism": CENSUS["organism"]}
    if config["training"]["data_source"] == "tiledbsoma_ml"
    else None
)


def hierarchy_inputs(wc):
    """scTab's child matrix when the run has one: the imported scTab store's, or the file hierarchy.source names."""
    source = config["hierarchy"]["source"]
    if source not in ("ontology", "sctab"):
        return {"child_matrix": source}
    if config["training_store"]["source"] == "sctab":
        return {"store": result(layout.STORE_DIR)}
    return {}


def train_inputs(wc):
    """The store and label hierarchy; the augmentation bank if the entry augments; the census if streaming."""
    inputs = {"store": result(layout.STORE_DIR), "hierarchy": result(layout.HIERARCHY_DIR)}
    if config["architectures"][wc.arch].get("augment", False):
        inputs["bank"] = result(layout.BANK)
    if STREAM is not None:
        inputs["cells"] = result(layout.SELECTION_CELLS)
        census = census_inputs()
        if census:
            inputs["census"] = census
    return inputs


# The report's categories. It lists them sorted by name, hence the numbers: the headline tables first.
REPORT_HEADLINE = "1. Headline tables"
REPORT_FIG2 = "2. Paper figures (Fig. 2)"
REPORT_HIERARCHY = "3. Hierarchy analyses"
REPORT_BACKOFF = "4. Back-off and calibration"
REPORT_STRATIFIED = "5. Stratified views"
REPORT_NOVEL = "6. Novel OOD cell types"
REPORT_DATA = "7. Data audit and provenance"
REPORT_TRAINING = "8. Training"


def figure(name, caption, category, subcategory=None):
    """A figure of the report: results/<run>/figures/<name>.png with its caption file."""
    return report(
        result(layout.FIGURE, name=name),
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory,
    )


def table(name):
    """A table: results/<run>/analysis/<name>.tsv (the report shows its ``table_view``)."""
    return result(layout.ANALYSIS_TABLE, name=name)


def html_view(path):
    """The rendered page beside a table: <name>.html for <name>.tsv."""
    return f"{path.removesuffix('.tsv')}.html"


def table_view(path, caption, category, subcategory="Tables"):
    """The report's view of the table at ``path`` (a result path): its HTML page, with the table's caption.

    A rule declares it as output ``<name>_html`` beside the table's output ``<name>``; its script renders every such
    pair with ``hcebench.report.html_tables.write_table_views`` after writing the tables.
    """
    return report(html_view(path), caption=f"../report/{caption}.rst", category=category, subcategory=subcategory)

