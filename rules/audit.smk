# Leakage audit of the OOD set: collections, donors and titles it shares with training; non-primary cells;
# and the OOD cells whose training label differs between matching by term id (the suite) and by name (the paper).


rule audit_ood:
    input:
        census_inputs(),
        cells=result(layout.SELECTION_CELLS),
        labels=result(layout.SELECTION_LABELS),
        obo=ontology_obo(),
    output:
        table=report(result(layout.AUDIT_TABLE), caption="../report/audit.rst", category="Tables"),
        totals=result(layout.AUDIT_TOTALS),
        label_rules=report(
            result(layout.AUDIT_LABEL_RULES), caption="../report/audit_label_rules.rst", category="Tables"
        ),
    log:
        f"{LOGS}/audit_ood.log",
    benchmark:
        f"{BENCHMARKS}/audit_ood.tsv",
    params:
        train_source=census_source("train"),
        ood_source=census_source("ood"),
        # The organism, and the OOD set's cell filters, which the label-rule comparison applies.
        settings=AuditSettings.from_config(config).params(),
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/audit_ood.py"
