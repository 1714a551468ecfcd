"""Rule ontology_closure: the reachability matrix of the label set under is_a."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
labels = Path(snakemake.input.labels).read_text().split()
hierarchy = load_ontology(snakemake.input.obo).closure(labels)
hierarchy.save(snakemake.output[0])
log.info(
    "%d labels, %d subtype pairs, CL %s, hash %s",
    hierarchy.k,
    int(hierarchy.reachability.sum()) - hierarchy.k,
    hierarchy.release,
    hierarchy.content_hash,
)
