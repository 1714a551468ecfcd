# Across seeds: the metrics table, the summary with the HCE-vs-CE test, and the figures of the report.


rule aggregate:
    input:
        metrics=grid(layout.METRICS, decoded=True, split=SPLITS) + external_grid(layout.METRICS, split=SPLITS),
        histories=grid(layout.HISTORY),
    output:
        # The two headline tables: each as a download (TSV) and as a page to read in the report (HTML).
        metrics=report(
            result(layout.METRICS_TABLE),
            caption="../report/metrics.rst",
            category=REPORT_HEADLINE,
            subcategory="3. All metrics",
        ),
        summary=report(
            result(layout.SUMMARY),
            caption="../report/summary.rst",
            category=REPORT_HEADLINE,
            subcategory="1. Summary",
        ),
        metrics_html=table_view(result(layout.METRICS_TABLE), "metrics", REPORT_HEADLINE, "3. All metrics"),
        summary_html=table_view(result(layout.SUMMARY), "summary", REPORT_HEADLINE, "1. Summary"),
        histories=result(layout.HISTORIES),
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv",
    threads: 1
    resources:
        **rule_resources("aggregate", mem_mb=4000, runtime=20),
    conda:
        ENV
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        metrics=result(layout.METRICS_TABLE),
        histories=result(layout.HISTORIES),
    output:
        fig2b=figure("fig2b_ood_macro_f1", "fig2b", REPORT_FIG2, "HCE vs CE"),
        id_test=figure("id_test_macro_f1", "id_test", REPORT_FIG2, "HCE vs CE"),
        id_vs_ood=figure("id_vs_ood", "id_vs_ood", REPORT_FIG2, "Generalisation"),
        curves=figure("training_curves", "training_curves", REPORT_TRAINING, "Validation macro F1 per epoch"),
    log:
        f"{LOGS}/figures.log",
    benchmark:
        f"{BENCHMARKS}/figures.tsv",
    threads: 1
    resources:
        **rule_resources("figures", mem_mb=2000, runtime=10),
    conda:
        ENV
    script:
        "../scripts/figures.py"
