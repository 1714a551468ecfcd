# Cells: scTab's selection on the training release, its expression store, and the OOD set.


if config["training_store"]["source"] == "sctab":

    rule import_sctab_store:
        input:
            obo=ontology_obo(),
            # scTab's store, which the import reads: a missing path stops the plan, naming it.
            sctab=config["training_store"]["sctab_path"],
        output:
            store=directory(result(layout.STORE_DIR)),
            cells=result(layout.SELECTION_CELLS),
            labels=result(layout.SELECTION_LABELS),
            report=result(layout.SELECTION_REPORT),
        log:
            f"{LOGS}/import_sctab_store.log",
        benchmark:
            f"{BENCHMARKS}/import_sctab_store.tsv",
        params:
            settings=ScTabImportSettings.from_config(config).params(),
        threads: 1
        resources:
            **rule_resources("import_sctab_store", **config["resources"]["data"]),
        conda:
            ENV
        script:
            "../scripts/import_sctab_store.py"

else:

    rule select_cells:
        input:
            census_inputs(),
            pinned_labels_input(),
            obo=ontology_obo(),
        output:
            cells=result(layout.SELECTION_CELLS),
            labels=result(layout.SELECTION_LABELS),
            report=result(layout.SELECTION_REPORT),
        log:
            f"{LOGS}/select_cells.log",
        benchmark:
            f"{BENCHMARKS}/select_cells.tsv",
        params:
            source=census_source("train"),
            settings=SelectionSettings.from_config(config).params(),
        threads: 1
        resources:
            **rule_resources("select_cells", **config["resources"]["data"]),
        conda:
            ENV
        script:
            "../scripts/select_cells.py"


    rule build_store:
        input:
            census_inputs(),
            gene_list_input(),
            cells=result(layout.SELECTION_CELLS),
            labels=result(layout.SELECTION_LABELS),
        output:
            directory(result(layout.STORE_DIR)),
        log:
            f"{LOGS}/build_store.log",
        benchmark:
            f"{BENCHMARKS}/build_store.tsv",
        params:
            source=census_source("train"),
            settings=StoreSettings.from_config(config).params(),
        threads: CENSUS["build_workers"] or DEFAULT_BUILD_WORKERS
        resources:
            **rule_resources("build_store", **config["resources"]["data"]),
        conda:
            ENV
        script:
            "../scripts/build_store.py"


rule build_ood:
    input:
        census_inputs(),
        gene_list_input() if config["normalisation"]["ood_genes"] == "gene_list" else [],
        store=result(layout.STORE_DIR),
        obo=ontology_obo(),
    output:
        directory(result(layout.OOD_DIR)),
    log:
        f"{LOGS}/build_ood.log",
    benchmark:
        f"{BENCHMARKS}/build_ood.tsv",
    params:
        train_source=census_source("train"),
        ood_source=census_source("ood"),
        settings=OodSettings.from_config(config).params(),
    threads: CENSUS["build_workers"] or DEFAULT_BUILD_WORKERS
    resources:
        **rule_resources("build_ood", **config["resources"]["data"]),
    conda:
        ENV
    script:
        "../scripts/build_ood.py"


rule augmentation_bank:
    input:
        store=result(layout.STORE_DIR),
    output:
        result(layout.BANK),
    log:
        f"{LOGS}/augmentation_bank.log",
    benchmark:
        f"{BENCHMARKS}/augmentation_bank.tsv",
    params:
        settings=BankSettings.from_config(config).params(),
    # Ahead of every other ready job: the augmenting architectures' training, the longest jobs, waits for it.
    priority: 2
    threads: 1
    resources:
        **rule_resources("augmentation_bank", **config["resources"]["data"]),
    conda:
        ENV
    script:
        "../scripts/augmentation_bank.py"
