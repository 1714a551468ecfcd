# Per-cell predictions (the contract external methods also write) and their long-format metrics.


# One job per model predicts every split (one start-up, one model load); the contract paths stay per split.
rule predict:
    input:
        model=result(layout.MODEL),
        store=result(layout.STORE_DIR),
        ood=result(layout.OOD_DIR),
        hierarchy=result(layout.HIERARCHY_DIR),
    output:
        expand(result(layout.PREDICTIONS), split=PREDICTED_SPLITS, allow_missing=True),
    log:
        f"{LOGS}/predict/{{arch}}_{{loss}}_seed{{seed}}.log",
    params:
        split_dirs=split_dirs(PREDICTED_SPLITS),
        save_probabilities=config["evaluation"]["save_probabilities"],
        device=config["training"]["device"],
    threads: 1
    resources:
        mem_mb=config["resources"]["predict"]["mem_mb"],
        runtime=config["resources"]["predict"]["runtime"],
        gpu=config["resources"]["predict"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/predict.py"


rule score:
    input:
        predictions=result(layout.PREDICTIONS),
        hierarchy=result(layout.HIERARCHY_DIR),
        data=split_data,
    output:
        result(layout.METRICS),
    log:
        f"{LOGS}/score/{{arch}}_{{loss}}_seed{{seed}}_{{split}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    script:
        "../scripts/score.py"
