"""Rule fetch_ontology: download the OBO named by ontology.source once; later runs use the cached copy."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.hierarchy.fetch import fetch_obo  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
digest = fetch_obo(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
log.info("fetched %s, SHA-256 %s (pin it as ontology.sha256)", snakemake.params.url, digest)
