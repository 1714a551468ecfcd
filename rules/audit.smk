# Leakage audit of the OOD set: collections, donors and titles it shares with training; non-primary cells;
# the OOD cells whose training label differs between matching by term id (the suite) and by name (the paper);
# duplicate primary cells of both releases; and what else differs between the releases (from the OOD set's meta).


rule audit_ood:
    input:
        census_inputs(),
        cells=result(layout.SELECTION_CELLS),
        labels=result(layout.SELECTION_LABELS),
        obo=ontology_obo(),
        ood=result(layout.OOD_DIR),
    output:
        table=result(layout.AUDIT_TABLE),
        totals=result(layout.AUDIT_TOTALS),
        label_rules=result(layout.AUDIT_LABEL_RULES),
        table_html=table_view(result(layout.AUDIT_TABLE), "audit", REPORT_DATA, "OOD leakage audit"),
        label_rules_html=table_view(
            result(layout.AUDIT_LABEL_RULES), "audit_label_rules", REPORT_DATA, "OOD labels by term id vs by name"
        ),
        duplicates=result(layout.AUDIT_DUPLICATES),
        duplicates_html=table_view(
            result(layout.AUDIT_DUPLICATES), "audit_duplicates", REPORT_DATA, "Duplicate primary cells"
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
        **rule_resources("audit_ood", **config["resources"]["data"]),
    conda:
        ENV
    script:
        "../scripts/audit_ood.py"


if config["ontology"].get("ood_source"):

    rule cl_release_diff:
        input:
            obo=ontology_obo(),
            labels=result(layout.SELECTION_LABELS),
            ood=result(layout.OOD_DIR),
        output:
            table=result(layout.AUDIT_CL_DIFF),
            table_html=table_view(
                result(layout.AUDIT_CL_DIFF), "audit_cl_diff", REPORT_DATA, "Cell Ontology release diff"
            ),
            totals=result(layout.AUDIT_CL_DIFF_TOTALS),
        log:
            f"{LOGS}/cl_release_diff.log",
        benchmark:
            f"{BENCHMARKS}/cl_release_diff.tsv",
        params:
            # The OOD release's Cell Ontology: bundled:<release> or a cellxgene-ontology-guide CL JSON.
            ood_source=config["ontology"]["ood_source"],
        threads: 1
        resources:
            **rule_resources("cl_release_diff", mem_mb=2000, runtime=10),
        conda:
            ENV
        script:
            "../scripts/cl_release_diff.py"
