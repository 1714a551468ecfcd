# One run of the protocol, results/<run>/: the helpers, then every rule. The Snakefile includes it for a run's
# config; a sweep (rules/sweep.smk) loads it once per point as a Snakemake module with that point's config.

include: "common.smk"
include: "census.smk"
include: "ontology.smk"
include: "store.smk"
include: "audit.smk"
include: "train.smk"
include: "evaluate.smk"
include: "celltypist.smk"
include: "aggregate.smk"
include: "analysis.smk"
