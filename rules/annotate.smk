# Your own .h5ad files annotated by one trained model of the run (config annotate:, docs/annotate.md). Included only
# when annotate.inputs are given; rule all then asks for every file's annotation.

ANNOTATE = config["annotate"]


rule annotate:
    input:
        h5ad=lambda wc: ANNOTATE_INPUTS[wc.name],
        model=result(layout.MODEL),
        store=result(layout.STORE_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
        # The back-off threshold the propagation decoder chose on the validation split, unless annotate.tau is set.
        decoder=result(layout.DECODER, loss=PROPAGATED) if ANNOTATE["tau"] is None else [],
    output:
        annotated=result(layout.ANNOTATION, ext=ANNOTATE["format"]),
        summary=result(layout.ANNOTATION_SUMMARY),
    log:
        f"{LOGS}/annotate/{{arch}}_{{loss}}_seed{{seed}}_{{name}}.log",
    benchmark:
        f"{BENCHMARKS}/annotate/{{arch}}_{{loss}}_seed{{seed}}_{{name}}.tsv",
    wildcard_constraints:
        name="|".join(map(re.escape, ANNOTATE_INPUTS)),
        arch="|".join(ARCHITECTURES),
        loss="|".join(axes.LOSSES),
    params:
        settings=AnnotateSettings.from_config(config).params(),
    threads: 1
    resources:
        mem_mb=ANNOTATE["mem_mb"],
        runtime=ANNOTATE["runtime"],
    conda:
        ENV
    script:
        "../scripts/annotate.py"
