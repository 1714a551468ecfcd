"""What every table and the report record about how a result was made.

Census releases, the Cell Ontology release and the reachability hash come from the run's artifacts; the code
version is ``git describe --always --dirty --tags`` of the checkout the package is imported from when that is a
git work tree, else the installed package version; package versions are read from the installed distributions.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = (
    "hcebench",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "torch",
    "snakemake",
    "tiledbsoma",
    "cellxgene-census",
    "pronto",
    "matplotlib",
    "pyarrow",
)
#: Columns appended to every analysis table.
TABLE_COLUMNS = ("train_release", "ood_release", "cl_release", "reachability_hash", "code_version")


def code_version() -> str:
    """``git describe`` of the hcebench checkout, or ``hcebench <version>`` when not run from a git work tree."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass  # no git on this machine: fall back to the package version
    return f"hcebench {package_version('hcebench')}"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_versions(names=PACKAGES) -> dict[str, str]:
    return {name: package_version(name) for name in names}


def collect(
    *,
    train_release: str,
    ood_release: str,
    cl_release: str,
    reachability_hash: str,
    seeds,
    architectures,
    losses,
) -> dict[str, object]:
    """The run's provenance as a flat dict (``TABLE_COLUMNS`` plus seeds, grid and package versions)."""
    return {
        "train_release": str(train_release),
        "ood_release": str(ood_release),
        "cl_release": str(cl_release),
        "reachability_hash": str(reachability_hash),
        "code_version": code_version(),
        "seeds": ",".join(str(s) for s in seeds),
        "architectures": ",".join(architectures),
        "losses": ",".join(losses),
        **{f"version.{k}": v for k, v in package_versions().items()},
    }


def stamp(table: pd.DataFrame, provenance: dict[str, object]) -> pd.DataFrame:
    """``table`` with the ``TABLE_COLUMNS`` of ``provenance`` appended as constant columns."""
    return table.assign(**{c: provenance[c] for c in TABLE_COLUMNS})


def as_table(provenance: dict[str, object]) -> pd.DataFrame:
    """Two columns, ``key`` and ``value``: the form the report shows."""
    return pd.DataFrame({"key": list(provenance), "value": [str(v) for v in provenance.values()]})
