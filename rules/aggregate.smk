# Across seeds: the metrics table, the summary with the HCE-vs-CE test, and the figures of the report.


rule aggregate:
    input:
        metrics=grid(f"{RESULTS}/metrics/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.tsv", split=SPLITS)
        + external_grid(f"{RESULTS}/metrics/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.tsv", split=SPLITS),  # celltypist.smk
        histories=grid(f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/history.tsv"),
    output:
        metrics=report(
            f"{RESULTS}/metrics.tsv",
            caption="../report/metrics.rst",
            category="7. Tables and training",
        ),
        summary=report(
            f"{RESULTS}/summary.tsv",
            caption="../report/summary.rst",
            category="7. Tables and training",
        ),
        histories=f"{RESULTS}/histories.tsv",
    log:
        f"{LOGS}/aggregate.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        metrics=f"{RESULTS}/metrics.tsv",
        histories=f"{RESULTS}/histories.tsv",
    output:
        fig2b=report(
            f"{RESULTS}/figures/fig2b_ood_macro_f1.png",
            caption="../report/fig2b.rst",
            category="1. Paper figures (Fig. 2)",
            subcategory="HCE vs CE",
        ),
        id_test=report(
            f"{RESULTS}/figures/id_test_macro_f1.png",
            caption="../report/id_test.rst",
            category="1. Paper figures (Fig. 2)",
            subcategory="HCE vs CE",
        ),
        id_vs_ood=report(
            f"{RESULTS}/figures/id_vs_ood.png",
            caption="../report/id_vs_ood.rst",
            category="1. Paper figures (Fig. 2)",
            subcategory="Generalisation",
        ),
        curves=report(
            f"{RESULTS}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="7. Tables and training",
            subcategory="Training",
        ),
    log:
        f"{LOGS}/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/figures.py"
