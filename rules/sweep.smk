# A sweep (config `sweep:`, e.g. config/mechanism.yaml): the whole workflow once per value of one config key, each
# value its own run under results/<run>_<value>/, then one figure of each loss's OOD gain over CE against the value.
# Included by the Snakefile instead of rules/run.smk when the config has a `sweep:` block.
#
# Each point is rules/run.smk loaded as a Snakemake module with the point's config (hcebench.sweep.sweep_points),
# its rules renamed <run>_<value>_<rule> (mechanism_0_25_train), so one DAG holds every job of every point: a dry
# run lists them, progress is Snakemake's own, and an executor (--profile slurm) submits each job on its own.

from hcebench import layout
from hcebench.models import check_architectures
from hcebench.sweep import point_name, sweep_points

SWEEP = config["sweep"]
# (value, validated config) of every point, in the order of sweep.values.
SWEEP_POINTS = sweep_points(config)


for SWEEP_VALUE, SWEEP_CONFIG in SWEEP_POINTS:
    check_architectures(SWEEP_CONFIG)
    # The module's name, and the prefix of its rules' names (`use rule` resolves both from these globals).
    POINT = point_name(config, SWEEP_VALUE)
    POINT_RULES = f"{POINT}_"

    module:
        name: POINT
        snakefile: "run.smk"
        config: SWEEP_CONFIG

    use rule * from POINT as POINT_RULES*


rule sweep_figure:
    input:
        metrics=[f"results/{point['run']}/{layout.METRICS_TABLE}" for _, point in SWEEP_POINTS],
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
        "../envs/hcebench.yaml"
    script:
        "../scripts/sweep_figure.py"
