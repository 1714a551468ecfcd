# One model per architecture × loss × seed, one job each (or one job per architecture × loss for its seeds, with
# training.seeds_in_one_job). Hyperparameters are params, so editing one architecture's entry reruns that
# architecture's branch only.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=per_job(result(layout.MODEL)),
        history=per_job(result(layout.HISTORY)),
        summary=per_job(result(layout.TRAIN_SUMMARY)),
    log:
        f"{LOGS}/train/{JOB_NAME}.log",
    benchmark:
        f"{BENCHMARKS}/train/{JOB_NAME}.tsv",
    wildcard_constraints:
        arch="|".join(TRAINED) or "(?!)",
        loss="|".join(axes.LOSSES),
    params:
        # The entry without its loss list, so adding a loss to an architecture does not rerun its other losses.
        entry=lambda wc: {k: v for k, v in config["architectures"][wc.arch].items() if k != "losses"},
        # Every training key but the grid (seeds, losses), with the entry's overrides: adding a seed reruns no other.
        settings=lambda wc: TrainingSettings.from_config(config, wc.arch).params(),
        # This run's loss's entry of the losses block only, so editing one loss's settings reruns its runs alone.
        loss_settings=lambda wc: canonical(config.get("losses", {}).get(wc.loss, {})),
        stream=STREAM,
        seeds=job_seeds,
    # Training first, the longest jobs of a run: the short ones (evaluation, external methods, controls) then fill
    # the cores at the end instead of leaving one idle beside the last model.
    priority: 1
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=job_runtime(config["resources"]["train"]["runtime"]),
        gpu=config["resources"]["train"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/train.py"


# The authors' checkpoints (an entry with checkpoints:), read into the model files training would write: one job per
# model, seconds each.
rule import_checkpoint:
    input:
        checkpoint=lambda wc: config["architectures"][wc.arch]["checkpoints"].format(loss=wc.loss, seed=wc.seed),
        store=result(layout.STORE_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
    output:
        model=result(layout.MODEL),
        history=result(layout.HISTORY),
        summary=result(layout.TRAIN_SUMMARY),
    log:
        f"{LOGS}/import_checkpoint/{{arch}}_{{loss}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/import_checkpoint/{{arch}}_{{loss}}_seed{{seed}}.tsv",
    wildcard_constraints:
        arch="|".join(IMPORTED) or "(?!)",
        loss="|".join(axes.LOSSES),
    params:
        entry=lambda wc: {k: v for k, v in config["architectures"][wc.arch].items() if k != "losses"},
    threads: 1
    # Measured on a paper-size TabNet (19,331 genes, 164 labels; a 130 MB checkpoint): 1 s, 0.6 GB peak.
    resources:
        **rule_resources("import_checkpoint", mem_mb=2000, runtime=10),
    conda:
        ENV
    script:
        "../scripts/import_checkpoint.py"
