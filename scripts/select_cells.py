"""Rule select_cells: scTab's filters on the training release's obs, and the tech_sample split."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.data.selection import select_from_census, write_cells  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.settings import SelectionSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
out = snakemake.output
selection = select_from_census(
    snakemake.params.source,
    SelectionSettings.from_params(snakemake.params.settings),
    load_ontology(snakemake.input.obo),
)
with atomic_path(out.cells) as tmp:
    write_cells(selection.cells, tmp)
with atomic_path(out.labels) as tmp:
    tmp.write_text("\n".join(selection.labels) + "\n")
write_json(out.report, selection.report)
log.info(
    "%d cells, %d labels, splits %s", len(selection.cells), len(selection.labels), selection.report["splits"]
)
if "filters_vs_pinned" in selection.report:
    versus, pin = selection.report["filters_vs_pinned"], selection.report["pinned_labels"]
    log.info(
        "labels pinned by filters.pinned_labels (%s): %d of %d present; the filters would add %d and drop %d "
        "(selection/report.json: filters_vs_pinned)",
        pin["source"],
        pin["n_present"],
        pin["n_pinned"],
        len(versus["would_add"]),
        len(versus["would_drop"]),
    )
