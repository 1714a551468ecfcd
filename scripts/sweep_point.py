"""Rule sweep_point: the whole workflow for one value of the swept key, run by a nested Snakemake."""

import sys

# The library, also in a conda env without it installed.
sys.path.insert(0, f"{snakemake.scriptdir}/../workflow")

import os  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from hcebench.io import atomic_path  # noqa: E402
from hcebench.snakemake_io import start  # noqa: E402

log = start(snakemake)
config = snakemake.params.config
point_dir = Path(snakemake.output.metrics).parent
point_dir.mkdir(parents=True, exist_ok=True)
config_path = point_dir / "config.yaml"
with atomic_path(config_path) as tmp:
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
command = [
    sys.executable,
    "-m",
    "snakemake",
    "--snakefile",
    str(snakemake.params.snakefile),
    "--configfile",
    str(config_path),
    "--cores",
    str(snakemake.threads),
    "--directory",
    os.getcwd(),
    "--nolock",  # the outer Snakemake holds this directory's lock; the point's files are its own
    "--rerun-incomplete",
    # Only what the sweep figure reads; the point's whole report is one `--configfile <its config.yaml>` away.
    *snakemake.output,
]
log.info("run %s: %s", config["run"], " ".join(command))
with open(snakemake.log[0], "a") as out:
    done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
if done.returncode != 0:
    raise SystemExit(
        f"the sweep point's workflow (run {config['run']}) failed with status {done.returncode}; see {snakemake.log[0]}"
    )
log.info("run %s complete", config["run"])
