"""Rule score: the long-format metrics of an external method's predictions, every split of one run (no torch)."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
data_dirs = {"store": snakemake.input.store, "ood": snakemake.input.ood}
splits = snakemake.params.split_homes
for predictions, output, (split, home) in zip(
    snakemake.input.predictions, snakemake.output, splits.items(), strict=True
):
    table = score_predictions(
        predictions,
        snakemake.input.hierarchy,
        data_dirs[home],
        architecture=wc.arch,
        loss=wc.loss,
        seed=int(wc.seed),
        split=split,
        output=output,
    )
    log.info("%s: %d metric rows", split, len(table))
