"""Rule celltypist: fit CellTypist on the training store, write the predictions contract for every split."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

import pickle  # noqa: E402

from hcebench.axes import EXTERNAL_METHODS  # noqa: E402
from hcebench.evaluation.contract import PredictionsWriter, predictions_metadata  # noqa: E402
from hcebench.external.celltypist import predict_celltypist_chunks, train_celltypist  # noqa: E402
from hcebench.hierarchy.labels import LabelHierarchy  # noqa: E402
from hcebench.io import atomic_path  # noqa: E402
from hcebench.settings import CellTypistSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
METHOD = EXTERNAL_METHODS["celltypist"]
seed = int(snakemake.wildcards.seed)
hierarchy = LabelHierarchy.load(snakemake.input.hierarchy)
names = dict(zip(hierarchy.term_ids, hierarchy.names, strict=True))
settings = CellTypistSettings.from_params(snakemake.params.settings)
model = train_celltypist(snakemake.input.store, settings, seed)
with atomic_path(snakemake.output.model) as tmp, open(tmp, "wb") as f:
    pickle.dump(model, f)
for path, (split, directory) in zip(
    snakemake.output.predictions, snakemake.params.split_dirs.items(), strict=True
):
    meta = predictions_metadata(
        hierarchy, directory, architecture=METHOD.name, loss=METHOD.loss, seed=seed, split=split
    )
    meta["method"] = "celltypist (one-vs-rest logistic regression), scores normalised to sum to 1"
    # Chunk by chunk from the memory-mapped split to the file's row groups: no split-sized matrix.
    with PredictionsWriter(path, meta) as writer:
        for table in predict_celltypist_chunks(
            model, directory, list(hierarchy.term_ids), names, save_probabilities=settings.save_probabilities
        ):
            writer.write(table)
    log.info("%s: %d cells predicted", split, writer.n_rows)
