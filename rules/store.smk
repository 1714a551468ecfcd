# Cells: scTab's selection on the training release, its expression store, and the OOD set.


if config["training_store"]["source"] == "sctab":

    rule import_sctab_store:
        input:
            obo=ontology_obo(),
        output:
            store=directory(f"{RESULTS}/store"),
            cells=f"{RESULTS}/selection/cells.parquet",
            labels=f"{RESULTS}/selection/labels.txt",
            report=f"{RESULTS}/selection/report.json",
        log:
            f"{LOGS}/import_sctab_store.log",
        params:
            path=config["training_store"]["sctab_path"],
            x_values=config["training_store"]["sctab_x_values"],
            target_sum=config["normalisation"]["target_sum"],
        threads: 1
        resources:
            mem_mb=config["resources"]["data"]["mem_mb"],
            runtime=config["resources"]["data"]["runtime"],
        conda:
            ENV
        script:
            "../scripts/import_sctab_store.py"

else:

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
        threads: CENSUS["build_workers"]
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
    threads: CENSUS["build_workers"]
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/build_ood.py"


rule augmentation_bank:
    input:
        store=f"{RESULTS}/store",
    output:
        f"{RESULTS}/augmentation/bank.npy",
    log:
        f"{LOGS}/augmentation_bank.log",
    params:
        settings=config["augmentation"],
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/augmentation_bank.py"
