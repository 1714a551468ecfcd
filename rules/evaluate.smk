# Per-cell predictions (the contract external methods also write) and their long-format metrics.


rule predict:
    input:
        model=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/model.pt",
        data=split_data,
        hierarchy=f"{RESULTS}/hierarchy",
    output:
        f"{RESULTS}/predictions/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.parquet",
    log:
        f"{LOGS}/predict/{{arch}}_{{loss}}_seed{{seed}}_{{split}}.log",
    params:
        split_dir=split_dir,
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
        predictions=f"{RESULTS}/predictions/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.parquet",
        hierarchy=f"{RESULTS}/hierarchy",
        data=split_data,
    output:
        f"{RESULTS}/metrics/{{arch}}/{{loss}}/seed{{seed}}/{{split}}.tsv",
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
