"""Rule score: the long-format metrics of one predictions file."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
table = score_predictions(
    snakemake.input.predictions,
    snakemake.input.hierarchy,
    snakemake.input.data,
    architecture=wc.arch,
    loss=wc.loss,
    seed=int(wc.seed),
    split=wc.split,
    output=snakemake.output[0],
)
log.info("%d metric rows", len(table))
