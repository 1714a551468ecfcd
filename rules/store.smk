# Cells: scTab's selection on the training release, its expression store, and the OOD set.


rule select_cells:
    input:
        census_inputs(),
        obo=ontology_obo(),
    output:
        cells=f"{RESULTS}/selection/cells.parquet",
        labels=f"{RESULTS}/selection/labels.txt",
        report=f"{RESULTS}/selection/report.json",
    log:
        f"{LOGS}/select_cells.log",
    params:
        source=census_source("train"),
        filters=config["filters"],
        split=config["split"],
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/select_cells.py"


rule build_store:
    input:
        census_inputs(),
        cells=f"{RESULTS}/selection/cells.parquet",
        labels=f"{RESULTS}/selection/labels.txt",
    output:
        directory(f"{RESULTS}/store"),
    log:
        f"{LOGS}/build_store.log",
    params:
        source=census_source("train"),
        genes=config["genes"],
        normalisation=config["normalisation"],
        chunk_size=CENSUS["chunk_size"],
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/build_store.py"


rule build_ood:
    input:
        census_inputs(),
        store=f"{RESULTS}/store",
        obo=ontology_obo(),
    output:
        directory(f"{RESULTS}/ood"),
    log:
        f"{LOGS}/build_ood.log",
    params:
        train_source=census_source("train"),
        ood_source=census_source("ood"),
        filters=config["filters"],
        chunk_size=CENSUS["chunk_size"],
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/build_ood.py"
