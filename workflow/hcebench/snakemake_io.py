"""What every rule script does first: send logging and warnings to the rule's log file."""

from __future__ import annotations

import logging
import sys


def start(snakemake) -> logging.Logger:
    """Configure logging to ``snakemake.log[0]`` (and stderr) and return the rule's logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if len(snakemake.log):
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    log = logging.getLogger(f"hcebench.{snakemake.rule}")
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards.items()))
    return log
