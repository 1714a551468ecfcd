"""The command line the workflow tests run: this checkout's Snakefile, in a scratch working directory."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """``python -m snakemake`` on the repository's Snakefile with ``--directory workdir``, then ``args``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
