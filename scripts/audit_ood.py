"""Rule audit_ood: what the OOD studies share with the training data, and where label id and name disagree."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.audit import (  # noqa: E402
    audit_duplicates,
    audit_label_rules,
    audit_ood,
    training_label_names,
)
from hcebench.data.selection import read_cells  # noqa: E402
from hcebench.data.store import Store  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.io import atomic_path, write_json  # noqa: E402
from hcebench.report.html_tables import write_table_views  # noqa: E402
from hcebench.settings import AuditSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
p = snakemake.params
settings = AuditSettings.from_params(p.settings)
# The columns the audit uses, as categoricals: a few bytes per selected cell (~22 M in the paper's selection).
cells = read_cells(
    snakemake.input.cells, ["soma_joinid", "dataset_id", "donor_id", "split", "label", "cell_type"]
)
table, totals = audit_ood(p.train_source, p.ood_source, cells, organism=settings.organism)
labels = Path(snakemake.input.labels).read_text().split()
names = training_label_names(labels, cells, load_ontology(snakemake.input.obo))
dataset_ids = table["dataset_id"].tolist() if len(table) else []
rules_table, rules_totals = audit_label_rules(
    p.ood_source, dataset_ids, names, settings.filters, organism=settings.organism
)
totals["label_rules"] = {**rules_totals, "per_label": rules_table.to_dict("records")}
duplicates, duplicate_totals = audit_duplicates(
    p.train_source, p.ood_source, cells, dataset_ids, settings.filters, organism=settings.organism
)
totals["duplicate_primary_cells"] = duplicate_totals
# Datasets new, removed and revised; assays; zero-filled genes; shared symbols; multi-valued diseases: computed
# where the OOD set is built (hcebench.data.releases), repeated here so the audit holds every release difference.
totals["release_pair"] = Store(snakemake.input.ood).meta.get("release_pair", {})
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
with atomic_path(snakemake.output.label_rules) as tmp:
    rules_table.to_csv(tmp, sep="\t", index=False)
with atomic_path(snakemake.output.duplicates) as tmp:
    duplicates.to_csv(tmp, sep="\t", index=False)
write_json(snakemake.output.totals, totals)
write_table_views(dict(snakemake.output.items()))  # the report's HTML view of each table
log.info(
    "OOD leakage audit: %s",
    {k: v for k, v in totals.items() if k not in ("label_rules", "duplicate_primary_cells", "release_pair")},
)
log.info("duplicate primary cells (kept, as scTab): %s", duplicate_totals)
pair = totals["release_pair"]
if pair:
    log.info(
        "releases: %d new, %d removed, %d revised datasets (by %s); assays added %s, removed %s; "
        "%d store genes zero-filled; %d OOD cells with a multi-valued disease",
        pair["datasets"]["n_new"],
        pair["datasets"]["n_removed"],
        pair["datasets"]["n_revised"],
        pair["datasets"]["revised_by"],
        pair["assays"]["added"],
        pair["assays"]["removed"],
        pair["gene_zero_fill"]["n_zero_filled"],
        pair["multi_valued_disease"]["n_cells"],
    )
log.info("OOD label by term id vs by name: %s", rules_totals)
