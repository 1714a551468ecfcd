"""Rule import_checkpoint: one of the authors' Lightning checkpoints as the model files of its run."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.store import Store  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402
from hcebench.training.imported import import_checkpoint  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
summary = import_checkpoint(
    snakemake.input.checkpoint,
    Path(snakemake.output.model).parent,
    architecture=wc.arch,
    entry=dict(snakemake.params.entry),
    loss=wc.loss,
    seed=int(wc.seed),
    hierarchy=LabelHierarchy.load(snakemake.input.hierarchy),
    genes=Store(snakemake.input.store).gene_ids,
)
log.info(
    "%s/%s/seed%s: scTab's %s classifier from %s (epoch %d), %d parameters; child matrix vs R: %s disagreements",
    wc.arch,
    wc.loss,
    wc.seed,
    summary["reference_architecture"],
    snakemake.input.checkpoint,
    summary["best_epoch"],
    summary["n_parameters"],
    summary["child_matrix_vs_R_disagreements"],
)
