# CellTypist as an external method: its own environment, trained on the same store, predictions through the
# contract, so it lands in metrics.tsv, summary.tsv and the figures as architecture "celltypist", loss "ce".
# The worked example of adding an external tool as a rule (README, "Adding an architecture").

CELLTYPIST = config["celltypist"]
CELLTYPIST_SEEDS = CELLTYPIST["seeds"] if CELLTYPIST["seeds"] is not None else SEEDS


def external_grid(pattern, **extra):
    """Files of the external methods that are enabled (CE only), for the aggregate rule."""
    if not CELLTYPIST["enabled"]:
        return []
    return expand(pattern, arch="celltypist", loss="ce", seed=CELLTYPIST_SEEDS, **extra)


# The generic predict rule matches the same paths; CellTypist's files come from its own rule.
ruleorder: celltypist > predict


rule celltypist:
    input:
        store=f"{RESULTS}/store",
        ood=f"{RESULTS}/ood",
        hierarchy=f"{RESULTS}/hierarchy",
    output:
        model=f"{RESULTS}/models/celltypist/ce/seed{{seed}}/model.pkl",
        predictions=expand(f"{RESULTS}/predictions/celltypist/ce/seed{{{{seed}}}}/{{split}}.parquet", split=SPLITS),
    log:
        f"{LOGS}/celltypist/seed{{seed}}.log",
    params:
        settings={k: v for k, v in CELLTYPIST.items() if k not in ("enabled", "seeds", "mem_mb", "runtime")},
        split_dirs={s: split_dir(SimpleNamespace(split=s)) for s in SPLITS},
        save_probabilities=config["evaluation"]["save_probabilities"],
    threads: 1
    resources:
        mem_mb=CELLTYPIST["mem_mb"],
        runtime=CELLTYPIST["runtime"],
    conda:
        "../envs/celltypist.yaml"
    script:
        "../scripts/celltypist.py"
