"""Rule sweep_figure: each loss's OOD gain over CE against the swept value, one point per run of the sweep."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

import pandas as pd  # noqa: E402
from hcebench.io import atomic_path  # noqa: E402
from hcebench.report.aggregate import sweep_gains  # noqa: E402
from hcebench.report.figures import coarse_share_sweep  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
points = [
    (value, pd.read_csv(path, sep="\t"))
    for value, path in zip(snakemake.params.values, snakemake.input.metrics, strict=True)
]
gains = sweep_gains(points)
with atomic_path(snakemake.output.table) as tmp:
    gains.rename(columns={"share": snakemake.params.key}).to_csv(tmp, sep="\t", index=False)
coarse_share_sweep(points, snakemake.output.figure)
log.info("%d gains over %d values of %s", len(gains), len(points), snakemake.params.key)
