"""Rule augmentation_bank: scTab's bank of between-tech_sample differences, from the training split."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from hcebench.data.augmentation import build_bank  # noqa: E402
from hcebench.data.store import SplitData  # noqa: E402
from hcebench.io import atomic_path, read_json  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

log = start(snakemake)
store = Path(snakemake.input.store)
shipped = store / "augmentations.npy"  # a store imported from scTab carries scTab's own bank
if shipped.exists():
    bank = np.load(shipped)
    log.info("using the bank shipped with the store (%s)", shipped)
else:
    meta = read_json(store / "meta.json")
    train = SplitData.open(store / "train", meta["n_genes"], meta["labels"])
    # Only the subsampled rows are read, in chunks from the memory map: a store larger than RAM works.
    # params.settings is the config's `augmentation:` block, build_bank's keyword arguments.
    # k-means would take every core of the node: hold it to the threads the rule was given.
    with threadpool_limits(limits=snakemake.threads):
        bank = build_bank(
            train,
            train.obs["label"].to_numpy(),
            train.obs["tech_sample"].to_numpy(),
            **snakemake.params.settings,
        )
with atomic_path(snakemake.output[0]) as tmp:
    np.save(tmp, bank.astype(np.float32))
log.info(
    "augmentation bank: %d vectors × %d genes, %.1f%% nonzero",
    bank.shape[0],
    bank.shape[1],
    100 * float((bank != 0).mean()) if bank.size else 0.0,
)
