"""A plugin installed the way pip would: a distribution's metadata on the path, naming an architecture module under
the entry-point group ``hcebench.architectures``."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).parent


def install_toy_plugin(site: Path, name: str = "toy", module: str = "toy_arch") -> Path:
    """Write a ``hcebench_toy`` distribution's metadata into ``site`` (a directory for ``PYTHONPATH``) whose entry
    point ``name`` is ``module``; the module itself comes from ``tests/`` (put it on the path too)."""
    dist = site / "hcebench_toy-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hcebench-toy\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[hcebench.architectures]\n{name} = {module}\n")
    return site
