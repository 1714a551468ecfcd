"""Rule ontology_closure: the reachability matrix of the label set, the is_a closure or scTab's child matrix
(hierarchy.source), and where the two disagree when the run has both."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.store import Store  # noqa: E402
from hcebench.hierarchy.labels import choose_reachability  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import load_array  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
source = snakemake.params.source
labels = Path(snakemake.input.labels).read_text().split()
closure = load_ontology(snakemake.input.obo).closure(labels)
child, where = None, None
if "child_matrix" in snakemake.input.keys():
    child, where = load_array(snakemake.input.child_matrix), snakemake.input.child_matrix
elif "store" in snakemake.input.keys():
    store = Store(snakemake.input.store)
    child, where = store.child_matrix, str(store.child_matrix_file)
hierarchy, disagree = choose_reachability(closure, child, where, source)
if disagree is not None:
    log.info(
        "the is_a closure and scTab's child matrix disagree at %d label pairs (sources_disagree.tsv)",
        len(disagree),
    )
hierarchy.save(snakemake.output[0], source=source, disagreements=disagree)
log.info(
    "%d labels, %d subtype pairs, R from %s (%s), hash %s",
    hierarchy.k,
    int(hierarchy.reachability.sum()) - hierarchy.k,
    source,
    hierarchy.release,
    hierarchy.content_hash,
)
