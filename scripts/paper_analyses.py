"""Rule paper_analyses: Fig. 2c, Fig. 2d, connectivity, stratified heatmaps and the provenance table."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.report.tables import paper_analyses  # noqa: E402
from hcebench.settings import AnalysisSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
i = snakemake.input
done = paper_analyses(
    metrics=i.metrics,
    hierarchy_dir=i.hierarchy,
    store_dir=i.store,
    ood_dir=i.ood,
    settings=AnalysisSettings.from_params(snakemake.params.settings),
    out=dict(snakemake.output.items()),
)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of each table
log.info("%d cell types; connectivity vs ΔF1: %s", done["n_types"], done["connectivity_spearman"])
