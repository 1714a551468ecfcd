"""Rule prediction_analyses: hierarchical metric panel, back-off curves, calibration, novel OOD types."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.report.tables import prediction_analyses  # noqa: E402
from hcebench.settings import AnalysisSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
i = snakemake.input
done = prediction_analyses(
    predictions=list(i.predictions),
    hierarchy_dir=i.hierarchy,
    ood_dir=i.ood,
    settings=AnalysisSettings.from_params(snakemake.params.settings),
    out=dict(snakemake.output.items()),
    n_boot=snakemake.params.n_boot,
)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of each table
log.info("analyses written; files without probabilities: %d", len(done["missing_probs"]))
