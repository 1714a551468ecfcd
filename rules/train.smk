# One model per architecture × loss × seed. Hyperparameters are params, so editing one architecture's
# entry reruns that architecture's branch only.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=result(layout.MODEL),
        history=result(layout.HISTORY),
        summary=result(layout.TRAIN_SUMMARY),
    log:
        f"{LOGS}/train/{{arch}}_{{loss}}_seed{{seed}}.log",
    wildcard_constraints:
        arch="|".join(ARCHITECTURES),
        loss="|".join(layout.LOSSES),
    params:
        # The entry without its loss list, so adding a loss to an architecture does not rerun its other losses.
        entry=lambda wc: {k: v for k, v in config["architectures"][wc.arch].items() if k != "losses"},
        # Every training key but the grid (seeds, losses), so adding a seed does not rerun the others.
        training={k: v for k, v in config["training"].items() if k not in ("seeds", "losses")},
        # This run's loss's entry of the losses block only, so editing one loss's settings reruns its runs alone.
        loss_settings=lambda wc: config.get("losses", {}).get(wc.loss, {}),
        stream=STREAM,
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/train.py"
