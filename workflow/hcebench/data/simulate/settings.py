"""The simulator's settings: ``SimulationConfig``, every knob of the simulated census, and its validation.

Imports the default label universe from ``hcebench.data.simulate.vocabulary``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcebench.data.simulate.vocabulary import DEFAULT_UNIVERSE


@dataclass
class SimulationConfig:
    """Every knob of the simulated census; the defaults give the demo (~44k cells in the older release)."""

    seed: int = 0  # all randomness derives from it: same seed and config, same census content
    train_release: str = "2023-05-15"  # older release: training data (the paper's Census release)
    ood_release: str = "2023-12-15"  # newer release: its extra datasets are the out-of-distribution set
    census_schema_version: str = "1.0.0"  # recorded in census_info/summary, as in Census 2023-05-15
    label_universe: tuple[str, ...] = DEFAULT_UNIVERSE  # CL terms; cells are of its leaves
    ood_only_types: tuple[str, ...] = ("CL:0000097",)  # leaves the older release never contains (mast cell)
    # genes
    n_genes: int = 2000  # genes in the older release, drawn from the reference protein-coding list
    n_genes_dropped: int = 25  # older-release genes the newer release lacks (zero-filled on alignment)
    n_genes_added: int = 25  # genes only the newer release has (ignored on alignment)
    # datasets and cells
    n_train_datasets: int = 32  # datasets in the older release (tech_samples ~ 4x this)
    n_ood_datasets: int = 8  # new primary 10x datasets in the newer release
    n_ood_smartseq_datasets: int = 2  # new Smart-seq2 datasets: the assay filter must drop them
    n_ood_duplicate_datasets: int = 1  # non-primary re-uploads of older cells: is_primary_data drops them
    cells_per_dataset: tuple[int, int] | None = None  # [min, max]: dataset sizes uniform in this range
    cells_per_dataset_median: int = 1200  # otherwise sizes are lognormal around this median
    cells_per_dataset_sigma: float = 0.6  # log-sd of dataset size: a few large studies, many small ones
    min_cells_per_dataset: int = 150  # no dataset smaller than this
    smartseq_cells_fraction: float = 0.25  # Smart-seq2 studies are plate-based, hence smaller
    duplicate_source_datasets: int = 3  # older datasets a re-upload copies cells from
    duplicate_cell_fraction: float = 0.4  # share of each source dataset's cells copied
    donors_per_dataset: tuple[int, int] = (2, 6)  # inclusive range of donors per dataset
    type_presence: float = 0.8  # chance that a type possible in a tissue occurs in a given dataset
    composition_sd: float = 0.8  # log-sd of per-dataset type proportions around the tissue's abundances
    # annotation granularity: weights of stopping k = 0, 1, 2, 3 levels above the finest level per lineage
    granularity_train: tuple[float, ...] = (0.6, 0.25, 0.1, 0.05)  # most older studies annotate finely
    granularity_ood: tuple[float, ...] = (0.3, 0.3, 0.25, 0.15)  # newer studies: a coarser mix
    # share of older (training) studies annotated with the granularity_train mix; the others label every cell
    # with its leaf. None: all of them use the mix (the census as before this knob, byte for byte). At 0 every
    # training label is a leaf, so R is the identity on the label set and HCE is CE: the mechanism sweep's origin.
    coarse_study_share: float | None = None
    alternate_parent: float = 0.25  # chance a dataset coarsens a multi-parent term to its other parent
    # expression
    baseline_sd: float = 2.0  # log-sd of baseline gene expression: heavy-tailed, a few genes dominate
    program_genes: int = 60  # genes in a root type's program
    program_genes_decay: float = 0.7  # each level down the DAG, programs cover this fraction as many genes
    min_program_genes: int = 8  # no program smaller than this
    program_lfc: float = 2.0  # mean log-fold change of a root program's genes
    program_lfc_decay: float = 0.8  # each level down, programs are this much weaker: siblings are close
    program_down_fraction: float = 0.2  # share of program genes that go down rather than up
    identity_sd: float = 0.35  # per-cell log-sd of each program's activity: cells vary within a type
    state_programs: int = 3  # shared programs (interferon response, cycling, stress) across all types
    state_lfc: float = 1.2  # mean log-fold change of state-program genes
    batch_sd: float = 0.35  # per-dataset per-gene log shift: the batch effect
    donor_sd: float = 0.15  # per-donor per-gene log shift
    assay_sd: float = 0.25  # per-assay per-gene log shift (chemistry), shared by all datasets of the assay
    nucleus_sd: float = 0.5  # per-gene log shift of single-nucleus data
    nucleus_fraction: float = 0.15  # chance a solid-tissue 10x dataset is single-nucleus
    ambient_max: float = 0.08  # per-dataset ambient RNA fraction, uniform on [0, this]
    inverse_dispersion: float = 4.0  # negative-binomial shape: biological overdispersion of counts
    # share of a cell's UMIs that fall on the simulated genes: they stand for the informative, variable
    # part of the transcriptome (a 2,000-gene panel); use ~0.95 with the full protein-coding list
    panel_umi_fraction: float = 0.3
    # schema: the newer release carries X/normalized and census_info/datasets.dataset_version_id, as Census
    # 2023-12-15 does; the older carries neither, as 2023-05-15. Readers must cope with both.
    newer_schema: bool = True
    # Census schema 2.4.0 conventions (releases from 2024-07-01 on), each off by default: at 0 the census is the
    # one written before these knobs, byte for byte (content and manifest).
    n_revised_datasets: int = (
        0  # older datasets the newer release holds as a revision: same dataset_id and cells,
    )
    # a new dataset_version_id (both releases then carry the column, as two releases from 2023-12-15 on do)
    n_shared_feature_names: int = 0  # newer-release genes that share their feature_name with another gene
    n_multi_disease_datasets: int = 0  # new 10x datasets whose first donor's disease is two joined by " || "
    n_duplicate_primary_cells: int = (
        0  # cells of the re-upload marked primary: the same cell in two datasets,
    )
    # both primary (Census 2023-05-15 lists 243,569 such cells); needs n_ood_duplicate_datasets >= 1
    # writing
    write_batch_nnz: int = (
        5_000_000  # nonzeros buffered per release before a write: bounds memory (~16 B each)
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field for settings that cannot describe a census."""

        def bad(name: str, why: str) -> None:
            raise ValueError(
                f"SimulationConfig.{name} = {getattr(self, name)!r}: {why} (census.simulate.{name})"
            )

        if self.train_release == self.ood_release:
            bad("ood_release", "must differ from train_release")
        for name in (
            "n_genes",
            "n_train_datasets",
            "cells_per_dataset_median",
            "min_cells_per_dataset",
            "write_batch_nnz",
        ):
            if getattr(self, name) < 1:
                bad(name, "must be at least 1")
        for name in (
            "n_genes_dropped",
            "n_genes_added",
            "n_ood_datasets",
            "n_ood_smartseq_datasets",
            "n_ood_duplicate_datasets",
            "state_programs",
            "n_revised_datasets",
            "n_shared_feature_names",
            "n_multi_disease_datasets",
            "n_duplicate_primary_cells",
        ):
            if getattr(self, name) < 0:
                bad(name, "must not be negative")
        if self.n_genes_dropped >= self.n_genes:
            bad("n_genes_dropped", "must be smaller than n_genes")
        if self.n_revised_datasets > self.n_train_datasets:
            bad("n_revised_datasets", "must not exceed n_train_datasets")
        if self.n_multi_disease_datasets > self.n_ood_datasets:
            bad("n_multi_disease_datasets", "must not exceed n_ood_datasets")
        if 2 * self.n_shared_feature_names > self.n_genes - self.n_genes_dropped + self.n_genes_added:
            bad("n_shared_feature_names", "needs two genes of the newer release per shared name")
        if self.n_duplicate_primary_cells and not self.n_ood_duplicate_datasets:
            bad(
                "n_duplicate_primary_cells",
                "needs a re-upload (n_ood_duplicate_datasets >= 1) to copy cells into",
            )
        if self.cells_per_dataset is not None:
            lo, hi = self.cells_per_dataset
            if not 1 <= lo <= hi:
                bad("cells_per_dataset", "must be [min, max] with 1 <= min <= max")
        lo, hi = self.donors_per_dataset
        if not 1 <= lo <= hi:
            bad("donors_per_dataset", "must be [min, max] with 1 <= min <= max")
        for name in ("granularity_train", "granularity_ood"):
            w = getattr(self, name)
            if not w or min(w) < 0 or sum(w) <= 0:
                bad(
                    name,
                    "must be non-negative weights for stopping 0, 1, 2, ... levels above the leaf, not all zero",
                )
        for name in (
            "type_presence",
            "alternate_parent",
            "nucleus_fraction",
            "duplicate_cell_fraction",
            "panel_umi_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, "must lie in [0, 1]")
        if self.inverse_dispersion <= 0:
            bad("inverse_dispersion", "must be positive")
        share = self.coarse_study_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
        ):
            bad("coarse_study_share", "must be null (every older study coarse-mixed) or a share in [0, 1]")
