"""Rule simulate_census: write the simulated census (two releases) in the Census SOMA layout."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

from pathlib import Path  # noqa: E402

from hcebench.data.simulate import SimulationConfig, simulate_census  # noqa: E402
from hcebench.hierarchy.ontology import load_ontology  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
p = snakemake.params
cfg = SimulationConfig(**p.simulate, train_release=p.train_release, ood_release=p.ood_release)
manifest = simulate_census(
    Path(snakemake.output.manifest).parent, cfg, load_ontology(p.ontology), workers=snakemake.threads
)
log.info("simulated census: %s", {k: manifest[k] for k in manifest if k.startswith("n_")})
