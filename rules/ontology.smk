# The Cell Ontology: fetched when given as a URL, then closed over the training label set; or scTab's child matrix
# (hierarchy.source), compared with the closure.


rule fetch_ontology:
    output:
        result(layout.ONTOLOGY_COPY),
    log:
        f"{LOGS}/fetch_ontology/{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/fetch_ontology/{{name}}.tsv",
    params:
        url=config["ontology"]["source"],
        sha256=config["ontology"]["sha256"],
    threads: 1
    resources:
        **rule_resources("fetch_ontology", mem_mb=1000, runtime=10),
    conda:
        ENV
    script:
        "../scripts/fetch_ontology.py"


rule ontology_closure:
    input:
        unpack(hierarchy_inputs),
        obo=ontology_obo(),
        labels=result(layout.SELECTION_LABELS),
    output:
        directory(result(layout.HIERARCHY_DIR)),
    log:
        f"{LOGS}/ontology_closure.log",
    benchmark:
        f"{BENCHMARKS}/ontology_closure.tsv",
    params:
        source=config["hierarchy"]["source"],
    threads: 1
    resources:
        **rule_resources("ontology_closure", mem_mb=2000, runtime=10),
    conda:
        ENV
    script:
        "../scripts/ontology_closure.py"
