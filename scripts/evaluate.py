"""Rule evaluate: each trained model of the job (one, or every seed with training.seeds_in_one_job) predicts every
split, its predictions are decoded by propagation too, and both are scored (hcebench.evaluation.model_evaluation)."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from hcebench import layout  # noqa: E402
from hcebench.evaluation.model_evaluation import EvaluationFiles, evaluate_model  # noqa: E402
from hcebench.models.device import resolve_device  # noqa: E402
from hcebench.settings import EvaluationSettings  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
wc, out, params = snakemake.wildcards, snakemake.output, snakemake.params
settings = EvaluationSettings.from_params(params.settings)
device = resolve_device(settings.device)
for seed in params.seeds:
    files = EvaluationFiles(
        predictions=layout.of_seed(out.predictions, layout.PREDICTIONS, seed),
        metrics=layout.of_seed(out.metrics, layout.METRICS, seed),
        decoded=layout.of_seed(out.decoded, layout.PREDICTIONS, seed),
        decoded_metrics=layout.of_seed(out.decoded_metrics, layout.METRICS, seed),
        decoder=next(iter(layout.of_seed(out.decoder, layout.DECODER, seed)), None),
    )
    model = layout.of_seed(snakemake.input.model, layout.MODEL, seed)[0]
    log.info("evaluating %s/%s seed %d", wc.arch, wc.loss, seed)
    evaluate_model(
        model,
        snakemake.input.hierarchy,
        params.split_dirs,
        list(settings.scored),
        files,
        architecture=wc.arch,
        loss=wc.loss,
        seed=seed,
        device=device,
        save_probabilities=settings.save_probabilities,
    )
