"""Rule import_sctab_store: scTab's preprocessed store as the training store, plus the selection files."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.data.sctab import import_sctab_store, selection_from_store  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.settings import ScTabImportSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
p, out = snakemake.params, snakemake.output
meta = import_sctab_store(
    out.store, load_ontology(snakemake.input.obo), ScTabImportSettings.from_params(p.settings)
)
cells, report = selection_from_store(out.store, meta)
with atomic_path(out.cells) as tmp:
    cells.to_parquet(tmp, index=False)
with atomic_path(out.labels) as tmp:
    tmp.write_text("\n".join(meta["labels"]) + "\n")
write_json(out.report, report)
log.info("imported scTab store: %d labels, cells per split %s", len(meta["labels"]), meta["n_cells"])
