"""Session-wide fixtures. Keep heavy builders in their own modules (sim_fixtures, dag_fixtures, ...)."""

from __future__ import annotations

import time

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


# -- progress of the slow tests -----------------------------------------------------------------------------------
# A workflow test (marker `workflow`) runs Snakemake for minutes behind a single dot: without -v, print each one's
# name as it starts and its time as it ends, so `python -m pytest` shows where it is. (The log hooks run outside
# pytest's output capture; setup and teardown hooks do not.)
_WORKFLOW_TESTS = pytest.StashKey[set]()
_STARTED = pytest.StashKey[dict]()


def pytest_collection_modifyitems(config, items):
    config.stash[_WORKFLOW_TESTS] = {item.nodeid for item in items if item.get_closest_marker("workflow")}
    config.stash[_STARTED] = {}


def _reporter(config, nodeid):
    if config.get_verbosity() >= 1 or nodeid not in config.stash.get(_WORKFLOW_TESTS, ()):
        return None  # -v already names every test
    return config.pluginmanager.get_plugin("terminalreporter")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logstart(nodeid, location):
    reporter = _reporter(_CONFIG[0], nodeid) if _CONFIG else None
    if reporter is not None:
        if _CONFIG[0].get_verbosity() < 0:  # -q: the dots run on one line
            reporter.write("\n")
        else:
            reporter.ensure_newline()
        # Left open: the reporter ends it when it writes the file name (or the dot, after -q) on the next line.
        reporter.write(f"{nodeid} (workflow test) ...")
        if _CONFIG[0].get_verbosity() < 0:
            reporter.write("\n")
        reporter.flush()
        _CONFIG[0].stash[_STARTED][nodeid] = time.monotonic()


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    reporter = _reporter(_CONFIG[0], nodeid) if _CONFIG else None
    if reporter is not None and nodeid in _CONFIG[0].stash[_STARTED]:
        seconds = time.monotonic() - _CONFIG[0].stash[_STARTED].pop(nodeid)
        reporter.write(f" ({seconds:.0f} s)")
        reporter.flush()


_CONFIG: list = []


def pytest_configure(config):
    _CONFIG[:] = [config]
