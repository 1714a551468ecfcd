"""Each stage's settings: one frozen dataclass per stage, built once from the validated config.

The config reaches the library in one shape. The Snakefile validates the config against the schema
(``hcebench.config``), which fills in every default: the schema is the one place defaults are written. A rule then
builds its stage's settings with ``<Stage>.from_config(config)`` and hands them to its script as plain values,
``params: settings=<Stage>.from_config(config).params()``; the script rebuilds them with
``<Stage>.from_params(snakemake.params.settings)`` and passes the object to the library. Tests build the same objects
from a config file (``<Stage>.from_config(load_config(path))``).

``params()`` is a dict with sorted keys at every level, so Snakemake compares a rule's params as values: reordering
keys in the YAML reruns nothing. A settings field has no default of its own unless the schema holds the same value
(``tests/test_settings.py`` checks every field against the schema).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hcebench.errors import ConfigError

T = TypeVar("T", bound="Settings")


class Settings:
    """What every stage's settings share: plain values for a rule's params, and back.

    ``section``: the config section the fields are keys of, where they are (named in errors).
    """

    section: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, keys sorted at every level (a rule's ``params``)."""
        return canonical(dataclasses.asdict(self))

    @classmethod
    def from_params(cls: type[T], params: Mapping[str, Any]) -> T:
        """The settings ``params()`` gave (nested settings rebuilt, lists back to tuples where a field is one)."""
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in params:
                key = f"{cls.section}.{field.name}" if cls.section else field.name
                raise ConfigError(
                    f"{key} is missing from the settings passed ({cls.__name__}); build them from the validated "
                    f"config with {cls.__name__}.from_config (hcebench.config.load_config fills in every default)"
                )
            values[field.name] = _rebuild(hints[field.name], params[field.name])
        return cls(**values)


def _rebuild(hint: Any, value: Any) -> Any:
    """A field's plain value back in its declared form: nested settings rebuilt, a list back to a tuple."""
    if isinstance(hint, type) and issubclass(hint, Settings):
        return hint.from_params(value)
    if typing.get_origin(hint) is tuple and value is not None:
        return tuple(value)
    return value


def canonical(value: Any) -> Any:
    """``value`` with the keys of every mapping in it sorted (lists keep their order): what a rule passes as a param
    taken from the config, so Snakemake, which compares params as written, sees the same value whatever the YAML's
    key order."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


# -- parts that several stages share ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CensusReads(Settings):
    """How a stage reads the census (``census:``): the organism, cells per read, and reader processes."""

    section: ClassVar[str] = "census"

    organism: str
    chunk_size: int
    build_workers: int | None  # None: the build job's threads

    @classmethod
    def from_config(cls, config: Mapping) -> CensusReads:
        census = config["census"]
        return cls(
            organism=census["organism"],
            chunk_size=census["chunk_size"],
            build_workers=census["build_workers"],
        )


@dataclass(frozen=True)
class Filters(Settings):
    """scTab's cell filters and the data checks' limits (``filters:``)."""

    section: ClassVar[str] = "filters"

    is_primary_data: bool
    assays: tuple[str, ...]
    min_cells_per_type: int
    min_tech_samples_per_type: int
    root_term: str
    min_ancestors: int
    pinned_labels: str | None
    label_order: str
    max_unknown_label_fraction: float
    max_zero_cell_fraction: float

    @classmethod
    def from_config(cls, config: Mapping) -> Filters:
        return cls.from_params({**config["filters"], "assays": tuple(config["filters"]["assays"])})


@dataclass(frozen=True)
class Split(Settings):
    """The tech_sample split (``split:``): its seed, which also permutes each split's on-disk order, and fractions."""

    section: ClassVar[str] = "split"

    seed: int
    fractions: tuple[float, ...]
    # "tech_sample" (scTab: no tech_sample crosses splits) or "cell" (each tech_sample's cells cut into the splits).
    by: str

    @classmethod
    def from_config(cls, config: Mapping) -> Split:
        split = config["split"]
        return cls(seed=split["seed"], fractions=tuple(split["fractions"]), by=split["by"])


@dataclass(frozen=True)
class Genes(Settings):
    """The store's gene list (``genes:``): its source, the matching rule, and the column order."""

    section: ClassVar[str] = "genes"

    source: str
    match: str
    order: str

    @classmethod
    def from_config(cls, config: Mapping) -> Genes:
        return cls.from_params(config["genes"])


# -- one per stage -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestSettings(Settings):
    """Rule ``ingest_anndata``: ``.h5ad`` files as the two census releases (``census.source: anndata``)."""

    train_release: str
    ood_release: str
    # One mapping per census.anndata.datasets entry, as the config holds it (hcebench.data.anndata_source reads it).
    datasets: tuple[dict, ...]
    unmapped_labels: str
    max_missing_gene_fraction: float
    # genes.source, against which each dataset's missing genes are counted; filters.assays, checked at ingest.
    gene_source: str
    assays: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Mapping) -> IngestSettings:
        census, block = config["census"], config["census"]["anndata"]
        return cls(
            train_release=census["train_release"],
            ood_release=census["ood_release"],
            datasets=tuple(canonical(d) for d in block["datasets"]),
            unmapped_labels=block["unmapped_labels"],
            max_missing_gene_fraction=block["max_missing_gene_fraction"],
            gene_source=config["genes"]["source"],
            assays=tuple(config["filters"]["assays"]),
        )


@dataclass(frozen=True)
class SelectionSettings(Settings):
    """Rule ``select_cells``: scTab's filters on the training release's obs, and the tech_sample split."""

    census: CensusReads
    filters: Filters
    split: Split

    @classmethod
    def from_config(cls, config: Mapping) -> SelectionSettings:
        return cls(
            census=CensusReads.from_config(config),
            filters=Filters.from_config(config),
            split=Split.from_config(config),
        )


@dataclass(frozen=True)
class StoreSettings(Settings):
    """Rule ``build_store``: the training store's genes, normalisation, census reads and on-disk order."""

    census: CensusReads
    genes: Genes
    target_sum: float
    # scTab writes each split's cells in an order permuted with the split seed.
    split_seed: int
    # scTab keeps (n // 1024) * 1024 cells of each split (split.row_multiple; 1 keeps all).
    row_multiple: int
    max_zero_cell_fraction: float

    @classmethod
    def from_config(cls, config: Mapping) -> StoreSettings:
        return cls(
            census=CensusReads.from_config(config),
            genes=Genes.from_config(config),
            target_sum=config["normalisation"]["target_sum"],
            split_seed=config["split"]["seed"],
            row_multiple=config["split"]["row_multiple"],
            max_zero_cell_fraction=config["filters"]["max_zero_cell_fraction"],
        )


@dataclass(frozen=True)
class ScTabImportSettings(Settings):
    """Rule ``import_sctab_store``: scTab's own store as the training store (``training_store.source: sctab``)."""

    path: str
    # "normalised": X holds log1p-normalised values, as scTab's released store does; "counts": raw counts.
    x_values: str
    target_sum: float
    max_zero_cell_fraction: float

    @classmethod
    def from_config(cls, config: Mapping) -> ScTabImportSettings:
        store = config["training_store"]
        return cls(
            path=store["sctab_path"],
            x_values=store["sctab_x_values"],
            target_sum=config["normalisation"]["target_sum"],
            max_zero_cell_fraction=config["filters"]["max_zero_cell_fraction"],
        )


@dataclass(frozen=True)
class OodSettings(Settings):
    """Rule ``build_ood``: the OOD set's filters (the training store's), normalisation and census reads."""

    census: CensusReads
    filters: Filters
    target_sum: float
    # The genes each OOD cell's total is taken over: "store" (the store's) or "gene_list" (HCE's: every OOD gene whose
    # symbol genes.source holds).
    ood_genes: str
    genes: Genes

    @classmethod
    def from_config(cls, config: Mapping) -> OodSettings:
        return cls(
            census=CensusReads.from_config(config),
            filters=Filters.from_config(config),
            target_sum=config["normalisation"]["target_sum"],
            ood_genes=config["normalisation"]["ood_genes"],
            genes=Genes.from_config(config),
        )


@dataclass(frozen=True)
class AuditSettings(Settings):
    """Rule ``audit_ood``: which OOD cells the label-rule audit reads (the OOD set's filters) and the organism."""

    organism: str
    filters: Filters

    @classmethod
    def from_config(cls, config: Mapping) -> AuditSettings:
        return cls(organism=config["census"]["organism"], filters=Filters.from_config(config))


@dataclass(frozen=True)
class BankSettings(Settings):
    """Rule ``augmentation_bank``: scTab's augmentation bank (``augmentation:``)."""

    section: ClassVar[str] = "augmentation"

    subsample_cells: int
    max_pairs_per_type: int
    min_abs: float
    clip: float
    n_clusters: int
    min_cluster_size: int
    n_vectors: int
    seed: int

    @classmethod
    def from_config(cls, config: Mapping) -> BankSettings:
        return cls.from_params(config["augmentation"])


@dataclass(frozen=True)
class TrainingSettings(Settings):
    """Rule ``train``: the ``training:`` block less the grid (seeds, losses, seeds_in_one_job), with the
    architecture entry's ``training:`` overrides applied. The loss's hyperparameters and the seed join it in the
    training loop's ``TrainSettings``."""

    section: ClassVar[str] = "training"

    hce_form: str
    batch_size: int
    max_epochs: int
    patience: int
    lr_gamma: float
    drop_last: bool
    selection_f1: str
    grad_clip: float
    device: str
    bf16: bool
    float32_matmul_precision: str
    tensorboard: bool
    data_source: str
    shuffle_block_rows: int
    prefetch: int

    @classmethod
    def from_config(cls, config: Mapping, architecture: str) -> TrainingSettings:
        training = config["training"]
        values = {field.name: training[field.name] for field in dataclasses.fields(cls)}
        values.update(config["architectures"][architecture].get("training") or {})
        return cls.from_params(values)


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    """Rule ``evaluate``: where models predict, what is scored and kept."""

    # Splits scored (``evaluation.splits``); the validation split is predicted for the decoder's threshold only.
    scored: tuple[str, ...]
    save_probabilities: bool
    device: str

    @classmethod
    def from_config(cls, config: Mapping) -> EvaluationSettings:
        return cls(
            scored=tuple(config["evaluation"]["splits"]),
            save_probabilities=config["evaluation"]["save_probabilities"],
            device=config["training"]["device"],
        )


@dataclass(frozen=True)
class AnnotateSettings(Settings):
    """Rule ``annotate``: how a trained model reads the user's ``.h5ad`` files (``annotate:``, less the files, the
    model and the resources), and the device it runs on (``training.device``)."""

    counts: str  # X, raw.X or layers/<name>: the matrix of raw counts
    gene_column: str | None  # var column of ids or symbols; None tries the usual ones
    match_by: str | None  # feature_id, feature_name, or None for whichever finds more
    min_gene_share: float  # the share of the model's genes a file must hold
    tau: float | None  # the back-off threshold; None takes decoder.json's
    format: str  # h5ad (a copy with obs columns) or parquet
    chunk_size: int
    batch_size: int
    device: str

    @classmethod
    def from_config(cls, config: Mapping) -> AnnotateSettings:
        block = config["annotate"]
        keys = [f.name for f in dataclasses.fields(cls) if f.name != "device"]
        return cls(**{k: block[k] for k in keys}, device=config["training"]["device"])


@dataclass(frozen=True)
class CellTypistSettings(Settings):
    """Rule ``celltypist``: CellTypist's training (``celltypist:``, less the grid and resource keys)."""

    max_cells: int  # training cells subsampled, proportionally per label
    use_SGD: bool  # noqa: N815 (celltypist's argument name)
    mini_batch: bool
    batch_size: int
    batch_number: int
    epochs: int
    alpha: float
    feature_selection: bool
    save_probabilities: bool

    @classmethod
    def from_config(cls, config: Mapping) -> CellTypistSettings:
        block = config["celltypist"]
        names = {f.name for f in dataclasses.fields(cls)} - {"save_probabilities"}
        return cls(
            **{k: block[k] for k in names}, save_probabilities=config["evaluation"]["save_probabilities"]
        )


@dataclass(frozen=True)
class AnalysisSettings(Settings):
    """Rules ``paper_analyses`` and ``prediction_analyses``: what their tables record as provenance, and the
    architecture the per-type analyses focus on."""

    train_release: str
    ood_release: str
    seeds: tuple[int, ...]
    losses: tuple[str, ...]
    architectures: tuple[str, ...]
    focus_architecture: str

    @classmethod
    def from_config(cls, config: Mapping) -> AnalysisSettings:
        return cls(
            train_release=config["census"]["train_release"],
            ood_release=config["census"]["ood_release"],
            seeds=tuple(config["training"]["seeds"]),
            losses=tuple(config["training"]["losses"]),
            architectures=tuple(config["architectures"]),
            focus_architecture=config["evaluation"]["focus_architecture"],
        )


#: Every stage's settings, by the rule that reads them (``tests/test_settings.py`` walks this table).
STAGES: dict[str, type[Settings]] = {
    "ingest_anndata": IngestSettings,
    "select_cells": SelectionSettings,
    "import_sctab_store": ScTabImportSettings,
    "build_store": StoreSettings,
    "build_ood": OodSettings,
    "audit_ood": AuditSettings,
    "augmentation_bank": BankSettings,
    "train": TrainingSettings,
    "evaluate": EvaluationSettings,
    "annotate": AnnotateSettings,
    "celltypist": CellTypistSettings,
    "analyses": AnalysisSettings,
}


def measurement_setting(variable: str, value: str | None, default: int, unit: str) -> int:
    """A number a measurement sets through the environment variable ``variable`` (its ``value``, ``default`` when
    unset or empty): results never depend on it, only memory does. Anything but a positive integer is an error
    naming the variable and the ``unit`` it counts."""
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable}={value!r}: give a positive number of {unit}, or unset it")
    return int(value)
