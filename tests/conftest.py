"""Session-wide fixtures. Keep heavy builders in their own modules (sim_fixtures, dag_fixtures, ...)."""

from __future__ import annotations

import pytest
from sim_fixtures import build_tiny_census
from store_fixtures import write_toy_store


@pytest.fixture(scope="session")
def tiny_census(tmp_path_factory):
    """Directory of a tiny simulated census: ``<dir>/2023-05-15``, ``<dir>/2023-12-15``, manifest.json,
    ground_truth_<release>.parquet. Built once per session; treat it as read-only."""
    return build_tiny_census(tmp_path_factory.mktemp("census") / "sim")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy store (five-node DAG labels separable by gene blocks) and its hierarchy: ``(store, hierarchy)``."""
    return write_toy_store(tmp_path_factory.mktemp("toy"))
