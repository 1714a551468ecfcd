"""Rule train: one architecture × loss, for the job's seed (or every seed, with training.seeds_in_one_job)."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench import layout  # noqa: E402
from hcebench.data.store import Store  # noqa: E402
from hcebench.io import load_array  # noqa: E402
from hcebench.settings import TrainingSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402
from hcebench.training.loop import TrainSettings, train  # noqa: E402

log = start(snakemake)
wc = snakemake.wildcards
entry = dict(snakemake.params.entry)
bank = load_array(snakemake.input.bank) if "bank" in snakemake.input.keys() else None
# The census stream (training.data_source: tiledbsoma_ml) is the same for every seed of the job.
stream = None
if snakemake.params.stream is not None:
    from hcebench.data.soma_stream import SomaStream

    store = Store(snakemake.input.store)
    stream = SomaStream.for_split(
        snakemake.params.stream["source"],
        snakemake.input.cells,
        store.labels,
        store.genes["feature_id"],
        target_sum=store.meta["target_sum"],
        organism=snakemake.params.stream["organism"],
    )
seeds = list(snakemake.params.seeds)
for done, seed in enumerate(seeds):
    log.info(
        "training %s with %s, seed %d (model %d of %d in this job)",
        wc.arch,
        wc.loss,
        seed,
        done + 1,
        len(seeds),
    )
    # A SIGTERM/SIGUSR1 (preemption, time limit) checkpoints and exits with status 75; rerun the job to resume.
    settings = TrainSettings.for_run(
        TrainingSettings.from_params(snakemake.params.settings),
        wc.loss,
        seed,
        snakemake.threads,
        loss_config=dict(snakemake.params.loss_settings),
    )
    model = layout.of_seed(snakemake.output.model, layout.MODEL, seed)[0]
    summary = train(
        snakemake.input.store,
        snakemake.input.hierarchy,
        wc.arch,
        entry,
        settings,
        Path(model).parent,
        bank=bank,
        stream=stream,
    )
    log.info("trained: %s", summary)
