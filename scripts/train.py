"""Rule train: one architecture × loss × seed."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")  # the library, also in a conda env without it installed

from pathlib import Path  # noqa: E402

from hcebench.snakemake_io import start  # noqa: E402
from hcebench.train import TrainSettings, train  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
entry = dict(snakemake.params.entry)
# A SIGTERM/SIGUSR1 (preemption, time limit) checkpoints and exits with status 75; rerun the job to resume.
settings = TrainSettings.from_config(snakemake.params.training, wc.loss, int(wc.seed), snakemake.threads, entry)
summary = train(snakemake.input.store, snakemake.input.hierarchy, wc.arch, entry, settings,
                Path(snakemake.output.model).parent)
log.info("trained: %s", summary)
