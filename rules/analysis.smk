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
        fig2c=figure("fig2c_celltype_delta", "fig2c", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        fig2d=figure("fig2d_ontology_dag", "fig2d", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        connectivity_fig=figure("connectivity", "connectivity", "2. Hierarchy analyses", "Connectivity"),
        stratified_fig=figure("stratified_macro_f1", "stratified", "4. Stratified views", "Macro F1 per stratum"),
        loss_ranking_fig=figure("loss_ranking", "loss_ranking", "1. Paper figures (Fig. 2)", "Every loss vs CE"),
        celltype_delta=table("celltype_delta", "celltype_delta_table", "1. Paper figures (Fig. 2)"),
        connectivity=table("connectivity", "connectivity_table", "2. Hierarchy analyses"),
        stratified=table("stratified_macro_f1", "stratified_table", "4. Stratified views"),
        loss_comparison=table("loss_comparison", "loss_comparison_table", "1. Paper figures (Fig. 2)"),
        provenance=report(
            result(layout.ANALYSIS_TABLE, name="provenance"),
            caption="../report/provenance.rst",
            category="6. Provenance",
        ),
    log:
        f"{LOGS}/paper_analyses.log",
    benchmark:
        f"{BENCHMARKS}/paper_analyses.tsv",
    params:
        settings=AnalysisSettings.from_config(config).params(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
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
        hierarchical_fig=figure("hierarchical_metrics", "hierarchical", "2. Hierarchy analyses", "Hierarchical metrics"),
        backoff_fig=figure("backoff_curves", "backoff", "3. Back-off and calibration", "Back-off"),
        calibration_fig=figure("calibration", "calibration", "3. Back-off and calibration", "Calibration"),
        novel_fig=figure("novel_ood_types", "novel", "5. Novel OOD cell types", "Scored at nearest trained ancestor"),
        hierarchical=table("hierarchical_metrics", "hierarchical_table", "2. Hierarchy analyses"),
        backoff=table("backoff", "backoff_table", "3. Back-off and calibration"),
        calibration=table("calibration", "calibration_table", "3. Back-off and calibration"),
        novel=table("novel_ood_types", "novel_table", "5. Novel OOD cell types"),
    log:
        f"{LOGS}/prediction_analyses.log",
    benchmark:
        f"{BENCHMARKS}/prediction_analyses.tsv",
    params:
        n_boot=1000,
        settings=AnalysisSettings.from_config(config).params(),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/prediction_analyses.py"
