# A sweep (config `sweep:`, e.g. config/mechanism.yaml): the whole workflow once per value of one config key, each
# value its own run under results/<run>_<value>/, then one figure of each loss's OOD gain over CE against the value.
# Included by the Snakefile instead of the other rules when the config has a `sweep:` block.

# One point: the workflow run by a nested Snakemake on the derived config (the outer one holds the lock).
rule sweep_point:
    output:
        metrics=f"results/{config['run']}_{{value}}/{layout.METRICS_TABLE}",
        summary=f"results/{config['run']}_{{value}}/{layout.SUMMARY}",
    log:
        f"results/{config['run']}/{layout.LOG_DIR}/sweep_point_{{value}}.log",
    benchmark:
        f"results/{config['run']}/{layout.BENCHMARK_DIR}/sweep_point_{{value}}.tsv",
    wildcard_constraints:
        value="|".join(map(re.escape, SWEEP_VALUES)),
    params:
        config=lambda wc: point_config(config, sweep_value(wc)),
        snakefile=workflow.main_snakefile,
    threads: workflow.cores
    resources:
        mem_mb=config["resources"]["data"]["mem_mb"],
        runtime=config["resources"]["data"]["runtime"] * 4,
    conda:
        ENV
    script:
        "../scripts/sweep_point.py"


rule sweep_figure:
    input:
        metrics=expand(rules.sweep_point.output.metrics, value=SWEEP_VALUES),
    output:
        figure=report(
            f"results/{config['run']}/figures/sweep_gain.png",
            caption="../report/coarse_share_sweep.rst",
            category="8. Sweep",
        ),
        table=f"results/{config['run']}/sweep_gain.tsv",
    log:
        f"results/{config['run']}/{layout.LOG_DIR}/sweep_figure.log",
    benchmark:
        f"results/{config['run']}/{layout.BENCHMARK_DIR}/sweep_figure.tsv",
    params:
        key=SWEEP["key"],
        values=SWEEP["values"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/sweep_figure.py"
