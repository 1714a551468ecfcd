"""Rule build_store: normalised expression of the selected cells, split by tech_sample, on disk."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.build import build_training_store  # noqa: E402
from hcebench.data.selection import read_cells  # noqa: E402
from hcebench.settings import StoreSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
cells = read_cells(snakemake.input.cells)
labels = Path(snakemake.input.labels).read_text().split()
meta = build_training_store(
    snakemake.params.source,
    cells,
    labels,
    StoreSettings.from_params(snakemake.params.settings),
    snakemake.output[0],
    threads=snakemake.threads,
)
log.info("store: %d genes, cells per split %s", meta["n_genes"], meta["n_cells"])
