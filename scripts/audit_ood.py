"""Rule audit_ood: what the OOD studies share with the training data."""

import sys

sys.path.insert(
    0, f"{snakemake.scriptdir}/../workflow"
)  # the library, also in a conda env without it installed

import pandas as pd  # noqa: E402
from hcebench.data.audit import audit_ood  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
p = snakemake.params
table, totals = audit_ood(
    p.train_source, p.ood_source, pd.read_parquet(snakemake.input.cells), organism=p.organism
)
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
write_json(snakemake.output.totals, totals)
log.info("OOD leakage audit: %s", totals)
