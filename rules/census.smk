# The census: a simulated one in the real SOMA layout (offline demo), or nothing to do for a real release.


rule simulate_census:
    output:
        manifest=result(layout.CENSUS_MANIFEST),
        train=directory(f"{RESULTS}/{layout.CENSUS_DIR}/{CENSUS['train_release']}"),
        ood=directory(f"{RESULTS}/{layout.CENSUS_DIR}/{CENSUS['ood_release']}"),
    log:
        f"{LOGS}/simulate_census.log",
    benchmark:
        f"{BENCHMARKS}/simulate_census.tsv",
    params:
        simulate=canonical(CENSUS.get("simulate", {})),
        train_release=CENSUS["train_release"],
        ood_release=CENSUS["ood_release"],
        ontology=ontology_obo(),
    threads: 1
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"],
    conda:
        ENV
    script:
        "../scripts/simulate_census.py"
