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
from hcebench.evaluation.contract import (  # noqa: E402
    CHUNK_CELLS,
    OBS_COLUMNS,
    PredictionsWriter,
    predictions_metadata,
)
from hcebench.evaluation.scoring import score_predictions  # noqa: E402
from hcebench.external.controls import control_chunks, label_frequencies_of_chunks  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
method = control_of(wc.arch).name
seed = int(wc.seed)
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
save_probabilities = snakemake.params.save_probabilities
# The training labels are counted chunk by chunk: what stays is one count per label.
train = Store(snakemake.input.store).split("train")
frequencies = label_frequencies_of_chunks(
    (chunk["label"] for chunk in train.obs_chunks(CHUNK_CELLS, ["label"])), hierarchy
)
out = snakemake.output
for path, metrics, (split, directory) in zip(
    out.predictions, out.metrics, snakemake.params.split_dirs.items(), strict=True
):
    # One chunk of cells at a time, straight to its row group: no split-sized table or probability matrix.
    data = Store.holding(directory).split(split)
    meta = predictions_metadata(
        hierarchy, directory, architecture=wc.arch, loss=NO_LOSS.name, seed=seed, split=split
    )
    meta["method"] = f"control: {method} (hcebench.external.controls)"
    chunks = data.obs_chunks(CHUNK_CELLS, OBS_COLUMNS)
    with PredictionsWriter(path, meta) as writer:
        for table in control_chunks(method, chunks, frequencies, hierarchy, seed, save_probabilities):
            writer.write(table)
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
    log.info("%s: %d cells, control %s, %d metric rows", split, writer.n_rows, method, len(scored))
