"""Rule evaluate: one trained model's predictions contract for every split, decoded by propagation too, and scored."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench import layout  # noqa: E402
from hcebench.evaluation.contract import predictions_metadata, write_predictions  # noqa: E402
from hcebench.evaluation.predict import load_model, predict_loaded  # noqa: E402
from hcebench.evaluation.propagation import choose_threshold, decode_table  # noqa: E402
from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.io import write_json  # noqa: E402
from hcebench.models.device import resolve_device  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc, out, params = snakemake.wildcards, snakemake.output, snakemake.params
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
run = {"architecture": wc.arch, "seed": int(wc.seed)}
decoded_loss = layout.decoded(wc.loss)


def without_probabilities(table):
    return table if params.save_probabilities else table.drop(columns="probs")


def score(loss, path, split):
    """Metrics of one predictions file of an evaluated split, written to its table in the rule's outputs."""
    outputs = out.metrics if loss == wc.loss else out.decoded_metrics
    output = outputs[list(params.scored).index(split)]
    home = {"store": snakemake.input.store, "ood": snakemake.input.ood}[layout.split_home(split)]
    table = score_predictions(
        path, snakemake.input.hierarchy, home, loss=loss, split=split, output=output, **run
    )
    log.info("%s %s: %d metric rows", loss, split, len(table))


# One split at a time, so a job holds one split's probabilities (the paper's val split: ~3.5 M cells × 164), kept
# in memory for the decoder whether or not the files keep them. The validation split comes first: it sets the
# decoder's threshold, the one that does best there, before any other split is decoded.
device = resolve_device(params.device)
model, checkpoint = load_model(snakemake.input.model, device)  # once for every split
decoded_paths = iter(out.decoded)
tau = None
for path, (split, directory) in zip(out.predictions, params.split_dirs.items(), strict=True):
    table = predict_loaded(model, checkpoint, directory, names, device, snakemake.input.model)
    write_predictions(
        without_probabilities(table),
        path,
        predictions_metadata(hierarchy, directory, loss=wc.loss, split=split, **run),
    )
    log.info("%s: %d cells predicted", split, len(table))
    if split == layout.VAL_SPLIT:
        tau, per_tau = choose_threshold(table, hierarchy)
        record = {"tau": tau, "chosen_on": layout.VAL_SPLIT, "validation": per_tau.to_dict("records")}
        write_json(out.decoder, record)
        log.info("propagation decoder: tau %.3f chosen on the validation split", tau)
        continue
    if split in params.scored:
        score(wc.loss, path, split)
    if tau is not None:
        decoded_path = next(decoded_paths)
        meta = predictions_metadata(hierarchy, directory, loss=decoded_loss, split=split, **run)
        meta["method"] = f"propagation decoding of {wc.arch}/{wc.loss}/seed{wc.seed} at tau {tau:.4g}"
        write_predictions(without_probabilities(decode_table(table, hierarchy, tau)), decoded_path, meta)
        if split in params.scored:
            score(decoded_loss, decoded_path, split)
