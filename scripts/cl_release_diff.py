"""Rule cl_release_diff: the training labels' changes between the training and the OOD release's Cell Ontology."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.store import Store  # noqa: E402
from hcebench.hierarchy.cl_diff import cl_release_diff, read_cellxgene_json, release_from_obo  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.layout import OOD_SPLIT  # noqa: E402
from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
labels = Path(snakemake.input.labels).read_text().split()
ood = Store(snakemake.input.ood)
# OOD cells per label: the ood split's labels (the cells a changed label's rows of R score).
counts = ood.obs(OOD_SPLIT)["label"].astype(str).value_counts()
old = release_from_obo(load_ontology(snakemake.input.obo))
new = read_cellxgene_json(snakemake.params.ood_source)
table, totals = cl_release_diff(labels, old, new, ood_cells=counts)
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
write_json(snakemake.output.totals, totals)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of the table
log.info("CL %s -> %s over %d labels: %s", old.release, new.release, len(labels), totals["by_kind"])
log.info("OOD cells with a changed label: %s", totals["ood_cells_with_a_changed_label"])
