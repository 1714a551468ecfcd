# hcebench: does hierarchical cross-entropy (HCE) make cell-type classifiers generalise better than
# cross-entropy (CE) to studies they have never seen? Table of contents of the workflow.
#
#   snakemake --cores all                              the embedded offline demo (config.yaml)
#   snakemake --cores all --configfile config/paper.yaml   the paper's protocol on the real Census
#   snakemake --report results/<run>/report.html       a self-contained report of what has run

from snakemake.utils import min_version, validate

from hcebench.config import SCHEMA_PATH, check_config
from hcebench.models import check_architectures

min_version("9.0")


# config.yaml (the demo) is the default. A --configfile on the command line replaces it rather than being merged
# into it, so `--configfile config/paper.yaml` runs exactly the paper's grid, not the demo's plus the paper's.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, schema=str(SCHEMA_PATH))
check_config(config)
check_architectures(config)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/census.smk"
include: "rules/ontology.smk"
include: "rules/store.smk"
include: "rules/audit.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/celltypist.smk"
include: "rules/aggregate.smk"
include: "rules/analysis.smk"


rule all:
    input:
        rules.aggregate.output,
        rules.figures.output,
        rules.audit_ood.output,
        rules.paper_analyses.output,
        rules.prediction_analyses.output,
    default_target: True
