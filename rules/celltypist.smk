# CellTypist as an external method: its own environment, trained on the same store, predictions through the
# contract, so it lands in metrics.tsv, summary.tsv and the figures as architecture "celltypist", loss "ce".
# The worked example of adding an external tool as a rule (docs/recipes.md, "Add an external method").


rule celltypist:
    input:
        store=result(layout.STORE_DIR),
        ood=result(layout.OOD_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
    output:
        model=result(layout.EXTERNAL_MODEL, arch=CELLTYPIST_RUN.name, loss=CELLTYPIST_RUN.loss),
        predictions=expand(
            result(layout.PREDICTIONS, arch=CELLTYPIST_RUN.name, loss=CELLTYPIST_RUN.loss), split=SPLITS, allow_missing=True
        ),
    log:
        f"{LOGS}/celltypist/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/celltypist/seed{{seed}}.tsv",
    params:
        settings=CellTypistSettings.from_config(config).params(),
        split_dirs=split_dirs(SPLITS),
    threads: 1
    resources:
        mem_mb=CELLTYPIST["mem_mb"],
        runtime=CELLTYPIST["runtime"],
    conda:
        "../envs/celltypist.yaml"
    script:
        "../scripts/celltypist.py"
