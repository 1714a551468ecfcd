"""Rule augmentation_bank: scTab's bank of between-tech_sample differences, from the training split."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

import numpy as np  # noqa: E402
from hcebench.data.augmentation import build_bank  # noqa: E402
from hcebench.data.store import Store  # noqa: E402
from hcebench.io import atomic_path  # noqa: E402
from hcebench.settings import BankSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

log = start(snakemake)
store = Store(snakemake.input.store)
bank = store.shipped_bank  # a store imported from scTab carries scTab's own bank
if bank is not None:
    log.info("using the bank shipped with the store (%s)", store.dir)
else:
    train = store.split("train", store.labels)
    # Of obs only the two columns the bank uses, as categoricals (a few bytes per cell); of X only the
    # subsampled rows, in chunks from the memory map: a store larger than RAM works.
    obs = train.read_obs(["label", "tech_sample"])
    # k-means would take every core of the node: hold it to the threads the rule was given.
    with threadpool_limits(limits=snakemake.threads):
        bank = build_bank(
            train,
            obs["label"].to_numpy(),
            obs["tech_sample"].to_numpy(),
            BankSettings.from_params(snakemake.params.settings),
        )
with atomic_path(snakemake.output[0]) as tmp:
    np.save(tmp, bank.astype(np.float32))
log.info(
    "augmentation bank: %d vectors × %d genes, %.1f%% nonzero",
    bank.shape[0],
    bank.shape[1],
    100 * float((bank != 0).mean()) if bank.size else 0.0,
)
