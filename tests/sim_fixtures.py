"""A tiny simulated census shared by tests: two releases, ~3,000 cells, built in a few seconds.

``build_tiny_census(path)`` writes it; the session-scoped ``tiny_census`` fixture (tests/conftest.py)
builds it once per test session and returns the directory holding both releases and manifest.json.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hcebench.data.simulate import SimulationConfig, simulate_census
from hcebench.hierarchy.ontology import Ontology, load_ontology

TRAIN_RELEASE = "2023-05-15"
OOD_RELEASE = "2023-12-15"


def tiny_config(**overrides) -> SimulationConfig:
    """Small enough for unit tests, big enough that every feature of the simulator occurs."""
    settings = dict(
        seed=11,
        n_genes=300,
        n_genes_dropped=12,
        n_genes_added=9,
        n_train_datasets=6,
        n_ood_datasets=3,
        n_ood_smartseq_datasets=1,
        n_ood_duplicate_datasets=1,
        cells_per_dataset=(250, 450),
    )
    settings.update(overrides)
    return SimulationConfig(**settings)


@lru_cache(maxsize=1)
def bundled_ontology() -> Ontology:
    return load_ontology("bundled")


def build_tiny_census(path: Path, workers: int = 1, **overrides) -> Path:
    """Write the tiny census into ``path`` (created), its cells drawn by ``workers`` processes; return ``path``."""
    simulate_census(path, tiny_config(**overrides), bundled_ontology(), workers=workers)
    return path
