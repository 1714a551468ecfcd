"""Rule aggregate: metrics of every run in one table, the summary across seeds, the training histories."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.report.aggregate import aggregate_runs  # noqa: E402
from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
out = snakemake.output
summary = aggregate_runs(
    snakemake.input.metrics, snakemake.input.histories, out.metrics, out.summary, out.histories
)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of each table
log.info("summary:\n%s", summary.to_string())
