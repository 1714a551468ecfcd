# Beyond the headline: Fig. 2c/2d, connectivity, stratified views, every loss against CE (from the metrics table),
# and the hierarchical panel, back-off, calibration and novel OOD types (from the per-cell predictions). Two jobs
# for the whole grid.


rule paper_analyses:
    input:
        metrics=result(layout.METRICS_TABLE),
        hierarchy=result(layout.HIERARCHY_DIR),
        store=result(layout.STORE_DIR),
        ood=result(layout.OOD_DIR),
    output:
        fig2c=figure("fig2c_celltype_delta", "fig2c", REPORT_FIG2, "HCE vs CE"),
        fig2d=figure("fig2d_ontology_dag", "fig2d", REPORT_FIG2, "HCE vs CE"),
        connectivity_fig=figure("connectivity", "connectivity", REPORT_HIERARCHY, "Connectivity"),
        stratified_fig=figure("stratified_macro_f1", "stratified", REPORT_STRATIFIED, "Macro F1 per stratum"),
        loss_ranking_fig=figure("loss_ranking", "loss_ranking", REPORT_FIG2, "Every loss vs CE"),
        celltype_delta=table("celltype_delta"),
        connectivity=table("connectivity"),
        stratified=table("stratified_macro_f1"),
        loss_comparison=table("loss_comparison"),
        provenance=table("provenance"),
        celltype_delta_html=table_view(table("celltype_delta"), "celltype_delta_table", REPORT_FIG2),
        connectivity_html=table_view(table("connectivity"), "connectivity_table", REPORT_HIERARCHY),
        stratified_html=table_view(table("stratified_macro_f1"), "stratified_table", REPORT_STRATIFIED),
        loss_comparison_html=table_view(
            table("loss_comparison"), "loss_comparison_table", REPORT_HEADLINE, "2. Every loss vs CE"
        ),
        provenance_html=table_view(table("provenance"), "provenance", REPORT_DATA, "Provenance"),
    log:
        f"{LOGS}/paper_analyses.log",
    benchmark:
        f"{BENCHMARKS}/paper_analyses.tsv",
    params:
        settings=AnalysisSettings.from_config(config).params(),
    threads: 1
    resources:
        **rule_resources("paper_analyses", mem_mb=2000, runtime=20),
    conda:
        ENV
    script:
        "../scripts/paper_analyses.py"


rule prediction_analyses:
    input:
        predictions=analysed_predictions(),
        hierarchy=result(layout.HIERARCHY_DIR),
        ood=result(layout.OOD_DIR),
    output:
        hierarchical_fig=figure("hierarchical_metrics", "hierarchical", REPORT_HIERARCHY, "Hierarchical metrics"),
        backoff_fig=figure("backoff_curves", "backoff", REPORT_BACKOFF, "Back-off"),
        calibration_fig=figure("calibration", "calibration", REPORT_BACKOFF, "Calibration"),
        novel_fig=figure("novel_ood_types", "novel", REPORT_NOVEL, "Scored at nearest trained ancestor"),
        hierarchical=table("hierarchical_metrics"),
        backoff=table("backoff"),
        calibration=table("calibration"),
        novel=table("novel_ood_types"),
        hierarchical_html=table_view(table("hierarchical_metrics"), "hierarchical_table", REPORT_HIERARCHY),
        backoff_html=table_view(table("backoff"), "backoff_table", REPORT_BACKOFF),
        calibration_html=table_view(table("calibration"), "calibration_table", REPORT_BACKOFF),
        novel_html=table_view(table("novel_ood_types"), "novel_table", REPORT_NOVEL),
    log:
        f"{LOGS}/prediction_analyses.log",
    benchmark:
        f"{BENCHMARKS}/prediction_analyses.tsv",
    params:
        n_boot=1000,
        settings=AnalysisSettings.from_config(config).params(),
    threads: 1
    resources:
        **rule_resources("prediction_analyses", mem_mb=8000, runtime=60),
    conda:
        ENV
    script:
        "../scripts/prediction_analyses.py"
