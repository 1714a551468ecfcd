# hcebench: does hierarchical cross-entropy (HCE) make cell-type classifiers generalise better than
# cross-entropy (CE) to studies they have never seen? Table of contents of the workflow.
#
#   snakemake --cores all                              the embedded offline demo (config.yaml)
#   snakemake --cores all --configfile config/paper.yaml   the paper's protocol on the real Census
#   snakemake --report results/<run>/report.html       a self-contained report of what has run
#   snakemake --cores all --configfile config/mechanism.yaml   the coarse-annotation sweep (one run per share)

import sys
from pathlib import Path

from snakemake.utils import min_version

from hcebench import layout
from hcebench.config import check_config, check_config_files, validate_schema
from hcebench.models import check_architectures

min_version("9.0")


# config.yaml (the demo) is the default. A --configfile on the command line replaces it rather than being merged
# into it, so `--configfile config/paper.yaml` runs exactly the paper's grid, not the demo's plus the paper's.
# With --directory, the working directory's own config.yaml when it has one, else the demo's beside this Snakefile.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml" if Path("config.yaml").exists() else f"{workflow.basedir}/config.yaml"


# hcebench's own validation (defaults filled in): its message names the bad key first, without the schema dump. The
# config files are read again first, strictly: Snakemake's reader keeps the last of a key given twice in one block.
check_config_files(workflow.configfiles)
validate_schema(config)
check_config(config)
check_architectures(config)


report: "report/workflow.rst"


if config.get("sweep"):
    # A sweep config (e.g. config/mechanism.yaml): the rules of a run once per value of a key, each point with its
    # own config and results/<run>_<value>/, then the sweep figure, all in this one DAG.
    include: "rules/sweep.smk"

    rule all:
        input:
            rules.sweep_figure.output,
        default_target: True

else:

    include: "rules/run.smk"

    if ANNOTATE_INPUTS:

        include: "rules/annotate.smk"

    rule all:
        input:
            rules.aggregate.output,
            rules.figures.output,
            rules.audit_ood.output,
            rules.cl_release_diff.output if config["ontology"].get("ood_source") else [],
            rules.paper_analyses.output,
            rules.prediction_analyses.output,
            cached_artifacts(),
            annotated_files(),
        default_target: True


# The run's last lines on the terminal: where its headline table is and how to read everything it made.
onsuccess:
    where = f"results/{config['run']}"
    headline = f"{where}/sweep_gain.tsv" if config.get("sweep") else f"{where}/{layout.SUMMARY}"
    print(f"hcebench: done. Headline table: {headline}", file=sys.stderr)
    print(f"hcebench: the report: snakemake --report {where}/report.html", file=sys.stderr)
