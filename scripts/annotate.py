"""Rule annotate: one .h5ad annotated by one trained model of the run (hcebench.evaluation.annotate)."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.evaluation.annotate import AnnotationModel, ModelFiles, annotate  # noqa: E402
from hcebench.io import write_json  # noqa: E402
from hcebench.models.device import resolve_device  # noqa: E402
from hcebench.settings import AnnotateSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
settings = AnnotateSettings.from_params(snakemake.params.settings)
inputs = snakemake.input
files = ModelFiles.of(
    inputs.model,
    hierarchy=inputs.hierarchy,
    store=inputs.store,
    decoder=inputs.decoder or None,
    tau=settings.tau,
)
summary = annotate(
    inputs.h5ad,
    snakemake.output.annotated,
    AnnotationModel(files, resolve_device(settings.device)),
    counts=settings.counts,
    gene_column=settings.gene_column,
    match_by=settings.match_by,
    min_gene_share=settings.min_gene_share,
    chunk_size=settings.chunk_size,
    batch_size=settings.batch_size,
)
write_json(snakemake.output.summary, summary)
