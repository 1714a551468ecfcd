# One model per architecture × loss × seed. Hyperparameters are params, so editing one architecture's
# entry reruns that architecture's branch only.


# The census to stream training batches from with training.data_source: tiledbsoma_ml; None with the store.
STREAM = (
    {"source": census_source("train"), "organism": CENSUS["organism"]}
    if config["training"]["data_source"] == "tiledbsoma_ml"
    else None
)


def train_inputs(wc):
    """The store and label hierarchy; the augmentation bank if the entry augments; the census if streaming."""
    inputs = {"store": f"{RESULTS}/store", "hierarchy": f"{RESULTS}/hierarchy"}
    if config["architectures"][wc.arch].get("augment", False):
        inputs["bank"] = f"{RESULTS}/augmentation/bank.npy"
    if config["training"]["data_source"] == "tiledbsoma_ml":
        inputs["cells"] = f"{RESULTS}/selection/cells.parquet"
        census = census_inputs()
        if census:
            inputs["census"] = census
    return inputs


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/history.tsv",
        summary=f"{RESULTS}/models/{{arch}}/{{loss}}/seed{{seed}}/train.json",
    log:
        f"{LOGS}/train/{{arch}}_{{loss}}_seed{{seed}}.log",
    params:
        entry=lambda wc: config["architectures"][wc.arch],
        # Every training key but the grid (seeds, losses), so adding a seed does not rerun the others.
        training={k: v for k, v in config["training"].items() if k not in ("seeds", "losses")},
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
