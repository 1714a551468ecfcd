"""Rule evaluate: one trained model's predictions contract for every split, decoded by propagation too, and scored."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench import layout  # noqa: E402
from hcebench.evaluation.contract import predictions_metadata, write_predictions  # noqa: E402
from hcebench.evaluation.predict import predict_split  # noqa: E402
from hcebench.evaluation.propagation import choose_threshold, decode_table  # noqa: E402
from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.io import write_json  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc, out, params = snakemake.wildcards, snakemake.output, snakemake.params
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
run = {"architecture": wc.arch, "seed": int(wc.seed)}
decoded_loss = layout.decoded(wc.loss)


def without_probabilities(table):
    return table if params.save_probabilities else table.drop(columns="probs")


# Predict: the decoder needs each cell's probabilities, kept in memory whether or not the files keep them.
tables = {}
for path, (split, directory) in zip(out.predictions, params.split_dirs.items(), strict=True):
    tables[split] = predict_split(snakemake.input.model, directory, names, device=params.device)
    meta = predictions_metadata(hierarchy, directory, loss=wc.loss, split=split, **run)
    write_predictions(without_probabilities(tables[split]), path, meta)
    log.info("%s: %d cells predicted", split, len(tables[split]))

# Decode by propagation with the threshold that does best on the validation split.
if out.decoder:
    tau, per_tau = choose_threshold(tables[layout.VAL_SPLIT], hierarchy)
    write_json(
        out.decoder, {"tau": tau, "chosen_on": layout.VAL_SPLIT, "validation": per_tau.to_dict("records")}
    )
    log.info("propagation decoder: tau %.3f chosen on the validation split", tau)
    decoded_splits = [split for split in params.split_dirs if split != layout.VAL_SPLIT]
    for path, split in zip(out.decoded, decoded_splits, strict=True):
        meta = predictions_metadata(
            hierarchy, params.split_dirs[split], loss=decoded_loss, split=split, **run
        )
        meta["method"] = f"propagation decoding of {wc.arch}/{wc.loss}/seed{wc.seed} at tau {tau:.4g}"
        write_predictions(without_probabilities(decode_table(tables[split], hierarchy, tau)), path, meta)

# Score the argmax and the decoded predictions of every evaluated split.
data_dirs = {"store": snakemake.input.store, "ood": snakemake.input.ood}
scored = [(wc.loss, out.predictions, out.metrics)]
if out.decoder:
    scored.append((decoded_loss, out.decoded, out.decoded_metrics))
for loss, predictions, metrics in scored:
    files = dict(zip(params.split_dirs if loss == wc.loss else decoded_splits, predictions, strict=True))
    for split, output in zip(params.scored, metrics, strict=True):
        home = data_dirs[layout.split_home(split)]
        table = score_predictions(
            files[split], snakemake.input.hierarchy, home, loss=loss, split=split, output=output, **run
        )
        log.info("%s %s: %d metric rows", loss, split, len(table))
