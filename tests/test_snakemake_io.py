"""hcebench.snakemake_io: a rule script's log holds its progress and, on failure, the traceback and the reason."""

import logging
import sys
from types import SimpleNamespace

from hcebench.errors import ConfigError
from hcebench.snakemake_io import start


def test_a_failure_ends_the_log_with_its_traceback_and_one_line_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    log_file = tmp_path / "rule.log"
    job = SimpleNamespace(log=[str(log_file)], rule="build_store", wildcards={})
    log = start(job)
    log.info("cells done")
    try:
        raise ConfigError("genes.source 'x.parquet' does not exist; give a parquet indexed by Ensembl id")
    except ConfigError:
        sys.excepthook(*sys.exc_info())
    logging.shutdown()
    lines = log_file.read_text().splitlines()
    assert "rule build_store" in lines[0] and "cells done" in lines[1]
    assert any("Traceback (most recent call last)" in line for line in lines)
    assert lines[-1].endswith(
        "ConfigError: genes.source 'x.parquet' does not exist; give a parquet indexed by Ensembl id"
    )
