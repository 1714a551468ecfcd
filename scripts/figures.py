"""Rule figures: the report's figures from the metrics table and training histories."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

import pandas as pd  # noqa: E402
from hcebench.report import figures  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
out = snakemake.output
metrics = pd.read_csv(snakemake.input.metrics, sep="\t")
histories = pd.read_csv(snakemake.input.histories, sep="\t")
figures.macro_f1_by_architecture(metrics, out.fig2b, split="ood")
figures.macro_f1_by_architecture(metrics, out.id_test, split="test")
figures.id_versus_ood(metrics, out.id_vs_ood)
figures.training_curves(histories, out.curves)
log.info("figures written")
