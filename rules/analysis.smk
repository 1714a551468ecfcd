# Beyond the headline: Fig. 2c/2d, connectivity, stratified views (from the metrics table), and the hierarchical
# panel, back-off, calibration and novel OOD types (from the per-cell predictions). Two jobs for the whole grid.


def _fig(name, caption, category, subcategory):
    return report(f"{RESULTS}/figures/{name}.png", caption=f"../report/{caption}.rst", category=category,
                  subcategory=subcategory)


def _table(name, caption, category):
    return report(f"{RESULTS}/analysis/{name}.tsv", caption=f"../report/{caption}.rst", category=category,
                  subcategory="Tables")


def analysed_predictions():
    """Every predictions file of the grid, plus the novel-type split wherever the OOD split is scored, plus the
    external methods' files (rules/celltypist.smk; they predict the evaluated splits only)."""
    pattern = f"{RESULTS}/predictions/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.parquet"
    return grid(pattern, split=PREDICTED_SPLITS) + external_grid(pattern, split=SPLITS)


rule paper_analyses:
    input:
        metrics=f"{RESULTS}/metrics.tsv",
        hierarchy=f"{RESULTS}/hierarchy",
        store=f"{RESULTS}/store",
        ood=f"{RESULTS}/ood",
    output:
        fig2c=_fig("fig2c_celltype_delta", "fig2c", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        fig2d=_fig("fig2d_ontology_dag", "fig2d", "1. Paper figures (Fig. 2)", "HCE vs CE"),
        connectivity_fig=_fig("connectivity", "connectivity", "2. Hierarchy analyses", "Connectivity"),
        stratified_fig=_fig("stratified_macro_f1", "stratified", "4. Stratified views", "Macro F1 per stratum"),
        celltype_delta=_table("celltype_delta", "celltype_delta_table", "1. Paper figures (Fig. 2)"),
        connectivity=_table("connectivity", "connectivity_table", "2. Hierarchy analyses"),
        stratified=_table("stratified_macro_f1", "stratified_table", "4. Stratified views"),
        provenance=report(f"{RESULTS}/analysis/provenance.tsv", caption="../report/provenance.rst",
                          category="6. Provenance"),
    log:
        f"{LOGS}/paper_analyses.log",
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
        hierarchy=f"{RESULTS}/hierarchy",
        ood=f"{RESULTS}/ood",
    output:
        hierarchical_fig=_fig("hierarchical_metrics", "hierarchical", "2. Hierarchy analyses", "Hierarchical metrics"),
        backoff_fig=_fig("backoff_curves", "backoff", "3. Back-off and calibration", "Back-off"),
        calibration_fig=_fig("calibration", "calibration", "3. Back-off and calibration", "Calibration"),
        novel_fig=_fig("novel_ood_types", "novel", "5. Novel OOD cell types", "Scored at nearest trained ancestor"),
        hierarchical=_table("hierarchical_metrics", "hierarchical_table", "2. Hierarchy analyses"),
        backoff=_table("backoff", "backoff_table", "3. Back-off and calibration"),
        calibration=_table("calibration", "calibration_table", "3. Back-off and calibration"),
        novel=_table("novel_ood_types", "novel_table", "5. Novel OOD cell types"),
    log:
        f"{LOGS}/prediction_analyses.log",
    params:
        n_boot=1000,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/prediction_analyses.py"
