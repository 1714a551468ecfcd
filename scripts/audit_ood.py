"""Rule audit_ood: what the OOD studies share with the training data, and where label id and name disagree."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
from hcebench.data.audit import audit_label_rules, audit_ood, training_label_names  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.settings import AuditSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
p = snakemake.params
settings = AuditSettings.from_params(p.settings)
cells = pd.read_parquet(snakemake.input.cells)
table, totals = audit_ood(p.train_source, p.ood_source, cells, organism=settings.organism)
labels = Path(snakemake.input.labels).read_text().split()
names = training_label_names(labels, cells, load_ontology(snakemake.input.obo))
dataset_ids = table["dataset_id"].tolist() if len(table) else []
rules_table, rules_totals = audit_label_rules(
    p.ood_source, dataset_ids, names, settings.filters, organism=settings.organism
)
totals["label_rules"] = {**rules_totals, "per_label": rules_table.to_dict("records")}
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
with atomic_path(snakemake.output.label_rules) as tmp:
    rules_table.to_csv(tmp, sep="\t", index=False)
write_json(snakemake.output.totals, totals)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of each table
log.info("OOD leakage audit: %s", {k: v for k, v in totals.items() if k != "label_rules"})
log.info("OOD label by term id vs by name: %s", rules_totals)
