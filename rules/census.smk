# The census: a simulated one in the real SOMA layout (offline demo), .h5ad files ingested into that layout
# (census.source: anndata), or nothing to do for a real release.


if CENSUS["source"] == "anndata":

    rule ingest_anndata:
        input:
            anndata_inputs(),
            obo=ontology_obo(),
        output:
            manifest=result(layout.CENSUS_MANIFEST),
            train=directory(f"{RESULTS}/{layout.CENSUS_DIR}/{CENSUS['train_release']}"),
            ood=directory(f"{RESULTS}/{layout.CENSUS_DIR}/{CENSUS['ood_release']}"),
        log:
            f"{LOGS}/ingest_anndata.log",
        benchmark:
            f"{BENCHMARKS}/ingest_anndata.tsv",
        params:
            settings=IngestSettings.from_config(config).params(),
        threads: 1
        resources:
            **rule_resources("ingest_anndata", **config["resources"]["data"]),
        conda:
            ENV
        script:
            "../scripts/ingest_anndata.py"


else:

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
        # Processes drawing the cells (forked; ~0.7 GB each at 19,331 genes): 1.6x faster with 2 than with 1 at
        # the rehearsal's dimensions. Snakemake lowers it to --cores on one node.
        threads: 4
        resources:
            **rule_resources("simulate_census", **config["resources"]["data"]),
        conda:
            ENV
        script:
            "../scripts/simulate_census.py"
