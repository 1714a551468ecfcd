# Leakage audit of the OOD set: collections, donors and titles it shares with training; non-primary cells;
# and the OOD cells whose training label differs between matching by term id (the suite) and by name (the paper).


rule audit_ood:
    input:
        census_inputs(),
        cells=result(layout.SELECTION_CELLS),
        labels=result(layout.SELECTION_LABELS),
        obo=ontology_obo(),
    output:
        table=result(layout.AUDIT_TABLE),
        totals=result(layout.AUDIT_TOTALS),
        label_rules=result(layout.AUDIT_LABEL_RULES),
        table_html=table_view(result(layout.AUDIT_TABLE), "audit", REPORT_DATA, "OOD leakage audit"),
        label_rules_html=table_view(
            result(layout.AUDIT_LABEL_RULES), "audit_label_rules", REPORT_DATA, "OOD labels by term id vs by name"
        ),
    log:
        f"{LOGS}/audit_ood.log",
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
