"""Rule ingest_anndata: the configured .h5ad files as two census releases in the Census SOMA layout."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.anndata_source import ingest_releases  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.settings import IngestSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
manifest = ingest_releases(
    IngestSettings.from_params(snakemake.params.settings),
    Path(snakemake.output.manifest).parent,
    load_ontology(snakemake.input.obo),
)
log.info(
    "ingested: cells %s, datasets %s; %d cells dropped for unmapped labels (census/manifest.json)",
    manifest["n_cells"],
    manifest["n_datasets"],
    manifest["n_cells_unmapped_label_dropped"],
)
