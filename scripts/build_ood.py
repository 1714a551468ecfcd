"""Rule build_ood: the datasets the newer release adds, filtered and aligned to the training genes."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.data.ood import build_ood_set  # noqa: E402
from hcebench.data.store import Store  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.settings import OodSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
store = Store(snakemake.input.store)
p = snakemake.params
meta = build_ood_set(
    p.train_source,
    p.ood_source,
    store.labels,
    store.genes,
    OodSettings.from_params(p.settings),
    snakemake.output[0],
    ontology=load_ontology(snakemake.input.obo),
    threads=snakemake.threads,
)
novel = meta["novel"]
log.info(
    "novel types: %d cells, %d scored at their nearest trained ancestor, %d dropped (no trained ancestor)",
    novel["n_cells"],
    novel["n_cells_scored"],
    novel["n_cells_dropped"],
)
log.info(
    "OOD: %d new datasets, %d cells, %d cells with unseen labels, %.1f%% genes missing",
    meta["n_new_datasets"],
    meta["n_cells"]["ood"],
    meta["n_cells_unseen_label"],
    100 * meta["missing_gene_fraction"],
)
