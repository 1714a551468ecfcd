# One model per architecture × loss × seed. Hyperparameters are params, so editing one architecture's
# entry reruns that architecture's branch only.


rule train:
    input:
        store=f"{RESULTS}/store",
        hierarchy=f"{RESULTS}/hierarchy",
    output:
        model=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/history.tsv",
        summary=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/train.json",
    log:
        f"{LOGS}/train/{{arch}}_{{loss}}_seed{{seed}}.log",
    params:
        entry=lambda wc: config["architectures"][wc.arch],
        training=config["training"],
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/train.py"
