# Per-cell predictions (the contract external methods also write) and their long-format metrics.

from types import SimpleNamespace


# One job per model predicts every split (one start-up, one model load); the contract paths stay per split.
# The OOD set also holds "ood_novel" (new types, scored at a trained ancestor) whenever "ood" is evaluated.
PREDICTED_SPLITS = list(SPLITS) + (["ood_novel"] if "ood" in SPLITS else [])


rule predict:
    input:
        model=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/model.pt",
        store=f"{RESULTS}/store",
        ood=f"{RESULTS}/ood",
        hierarchy=f"{RESULTS}/hierarchy",
    output:
        expand(f"{RESULTS}/predictions/{{{{arch}}}}/{{{{loss}}}}/seed{{{{seed}}}}/{{split}}.parquet", split=PREDICTED_SPLITS),
    log:
        f"{LOGS}/predict/{{arch}}_{{loss}}_seed{{seed}}.log",
    params:
        split_dirs={s: split_dir(SimpleNamespace(split=s)) for s in PREDICTED_SPLITS},
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
