# Across seeds: the metrics table, the summary with the HCE-vs-CE test, and the figures of the report.


rule aggregate:
    input:
        metrics=grid(layout.METRICS, decoded=True, split=SPLITS) + external_grid(layout.METRICS, split=SPLITS),
        histories=grid(layout.HISTORY),
    output:
        metrics=report(
            result(layout.METRICS_TABLE),
            caption="../report/metrics.rst",
            category="7. Tables and training",
        ),
        summary=report(
            result(layout.SUMMARY),
            caption="../report/summary.rst",
            category="7. Tables and training",
        ),
        histories=result(layout.HISTORIES),
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv",
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
        metrics=result(layout.METRICS_TABLE),
        histories=result(layout.HISTORIES),
    output:
        fig2b=figure("fig2b_ood_macro_f1", "fig2b", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        id_test=figure("id_test_macro_f1", "id_test", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        id_vs_ood=figure("id_vs_ood", "id_vs_ood", "1. Paper figures (Fig. 2)", "Generalisation"),
        curves=figure("training_curves", "training_curves", "7. Tables and training", "Training"),
    log:
        f"{LOGS}/figures.log",
    benchmark:
        f"{BENCHMARKS}/figures.tsv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/figures.py"
