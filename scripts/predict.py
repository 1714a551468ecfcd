"""Rule predict: the per-cell predictions contract of one model, one file per split."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench.evaluation.contract import write_predictions  # noqa: E402
from hcebench.evaluation.predict import predict_split  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.io import read_json  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
for path, (split, directory) in zip(snakemake.output, snakemake.params.split_dirs.items(), strict=True):
    table = predict_split(
        snakemake.input.model,
        directory,
        names,
        device=snakemake.params.device,
        save_probabilities=snakemake.params.save_probabilities,
    )
    data_meta = read_json(f"{directory.rsplit('/', 1)[0]}/meta.json")
    write_predictions(
        table,
        path,
        {
            "architecture": wc.arch,
            "loss": wc.loss,
            "seed": wc.seed,
            "split": split,
            "labels": ",".join(hierarchy.term_ids),
            "reachability_hash": hierarchy.content_hash,
            "census_release": data_meta.get("ood_release", data_meta.get("census_release")),
        },
    )
    log.info("%s: %d cells predicted", split, len(table))
