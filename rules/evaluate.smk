# Per-cell predictions (the contract external methods also write) and their long-format metrics.


# One job per trained model (or per architecture × loss for its seeds, with training.seeds_in_one_job): it predicts
# every split (one start-up, one model load), decodes the predictions by propagation too, and scores both; the
# contract paths and the metrics tables stay one file per split.
rule evaluate:
    input:
        model=per_job(result(layout.MODEL)),
        store=result(layout.STORE_DIR),
        ood=result(layout.OOD_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
    output:
        predictions=per_job(result(layout.PREDICTIONS), split=PREDICTED_SPLITS),
        metrics=per_job(result(layout.METRICS), split=SPLITS),
        decoded=per_job(result(layout.PREDICTIONS, loss=PROPAGATED), split=DECODED_SPLITS) if DECODING else [],
        decoded_metrics=per_job(result(layout.METRICS, loss=PROPAGATED), split=SPLITS) if DECODING else [],
        decoder=per_job(result(layout.DECODER, loss=PROPAGATED)) if DECODING else [],
    log:
        f"{LOGS}/evaluate/{JOB_NAME}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/{JOB_NAME}.tsv",
    wildcard_constraints:
        arch="|".join(ARCHITECTURES),
        loss="|".join(axes.LOSSES),
    params:
        split_dirs=split_dirs(PREDICTED_SPLITS),
        settings=EvaluationSettings.from_config(config).params(),
        seeds=job_seeds,
    threads: 1
    resources:
        mem_mb=config["resources"]["predict"]["mem_mb"],
        runtime=job_runtime(config["resources"]["predict"]["runtime"]),
        gpu=config["resources"]["predict"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


# An external method's predictions (CellTypist, or your own rule's), every split of a run in one job, without torch.
rule score:
    input:
        predictions=expand(result(layout.PREDICTIONS), split=SPLITS, allow_missing=True),
        store=result(layout.STORE_DIR),
        ood=result(layout.OOD_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
    output:
        expand(result(layout.METRICS), split=SPLITS, allow_missing=True),
    log:
        f"{LOGS}/score/{{arch}}_{{loss}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/score/{{arch}}_{{loss}}_seed{{seed}}.tsv",
    wildcard_constraints:
        # Any architecture name but the trained ones and the controls, whose jobs score their own predictions.
        # (the look-ahead ends at the "/" after the name: a wildcard's regex sits inside the whole path's).
        arch=rf"(?!(?:{'|'.join(map(re.escape, ARCHITECTURES))}|{re.escape(axes.CONTROL_PREFIX)}\w+)/)[A-Za-z0-9_]+",
    params:
        split_homes={split: layout.split_home(split) for split in SPLITS},
    threads: 1
    resources:
        # Scoring holds ~0.85 KB per cell (measured): ~3.2 GB for the paper's 3.45 M test cells.
        **rule_resources("score", mem_mb=6000, runtime=20),
    conda:
        ENV
    script:
        "../scripts/score.py"


# The controls that bracket every table (random labels with the training frequencies, the majority label, the
# truth), predicted and scored in one job each.
rule controls:
    input:
        store=result(layout.STORE_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
        ood=result(layout.OOD_DIR),
    output:
        predictions=expand(result(layout.PREDICTIONS, loss=axes.NO_LOSS.name), split=SPLITS, allow_missing=True),
        metrics=expand(result(layout.METRICS, loss=axes.NO_LOSS.name), split=SPLITS, allow_missing=True),
    log:
        f"{LOGS}/controls/{{arch}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/controls/{{arch}}_seed{{seed}}.tsv",
    wildcard_constraints:
        arch="|".join(c.architecture for c in axes.CONTROLS.values()),
    params:
        split_dirs=split_dirs(SPLITS),
        save_probabilities=config["evaluation"]["save_probabilities"],
    threads: 1
    resources:
        # Scoring holds ~0.85 KB per cell (measured): ~3.2 GB for the paper's 3.45 M test cells.
        **rule_resources("controls", mem_mb=6000, runtime=20),
    conda:
        ENV
    script:
        "../scripts/controls.py"
