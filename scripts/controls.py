"""Rule controls: one control's predictions contract (random, majority or truth labels) and metrics, per split.

The control is read from the ``arch`` wildcard (``control_<method>``); the training split's labels give the
random and majority controls their frequencies.
"""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.axes import NO_LOSS, control_of  # noqa: E402
from hcebench.data.store import Store  # noqa: E402
from hcebench.evaluation.contract import predictions_metadata, write_predictions  # noqa: E402
from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.external.controls import control_table  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
method = control_of(wc.arch).name
seed = int(wc.seed)
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
train_labels = Store(snakemake.input.store).obs("train", columns=["label"])["label"]
out = snakemake.output
for path, metrics, (split, directory) in zip(
    out.predictions, out.metrics, snakemake.params.split_dirs.items(), strict=True
):
    obs = Store.holding(directory).obs(split)
    table = control_table(method, obs, train_labels, hierarchy, seed)
    meta = predictions_metadata(
        hierarchy, directory, architecture=wc.arch, loss=NO_LOSS.name, seed=seed, split=split
    )
    meta["method"] = f"control: {method} (hcebench.external.controls)"
    write_predictions(table, path, meta)
    scored = score_predictions(
        path,
        snakemake.input.hierarchy,
        Path(directory).parent,
        architecture=wc.arch,
        loss=NO_LOSS.name,
        seed=seed,
        split=split,
        output=metrics,
    )
    log.info("%s: %d cells, control %s, %d metric rows", split, len(table), method, len(scored))
