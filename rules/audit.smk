# Leakage audit of the OOD set: collections, donors and titles it shares with training; non-primary cells.


rule audit_ood:
    input:
        census_inputs(),
        cells=result(layout.SELECTION_CELLS),
    output:
        table=report(result(layout.AUDIT_TABLE), caption="../report/audit.rst", category="Tables"),
        totals=result(layout.AUDIT_TOTALS),
    log:
        f"{LOGS}/audit_ood.log",
    params:
        train_source=census_source("train"),
        ood_source=census_source("ood"),
        organism=CENSUS["organism"],
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/audit_ood.py"
