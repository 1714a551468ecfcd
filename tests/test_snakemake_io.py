"""hcebench.snakemake_io: a rule script's log holds its progress and, on failure, the traceback and the reason."""

import logging
import sys
from types import SimpleNamespace

from hcebench.errors import ConfigError
from hcebench.snakemake_io import start


def test_progress_and_warnings_stay_in_the_log_and_only_errors_reach_the_terminal(
    tmp_path, monkeypatch, capsys
):
    import warnings

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    log_file = tmp_path / "rule.log"
    log = start(SimpleNamespace(log=[str(log_file)], rule="train", wildcards={"arch": "mlp"}))
    log.info("epoch 1/25")
    warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=1)
    log.error("training loss is nan")
    logging.shutdown()
    terminal = capsys.readouterr().err
    assert "epoch 1/25" not in terminal and "All-NaN" not in terminal and "training loss is nan" in terminal
    text = log_file.read_text()
    assert "epoch 1/25" in text and "All-NaN slice encountered" in text and "training loss is nan" in text


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


def test_a_finished_job_ends_its_log_with_its_exact_peak_memory(tmp_path, monkeypatch):
    import numpy as np
    from hcebench.snakemake_io import PEAK_LINE, append_peak_memory, peak_memory_mb

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    before, _ = peak_memory_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MB touched: the high-water mark passes it whatever was freed since
    del block
    own, child = peak_memory_mb()
    assert own >= before and own >= 64 and child >= 0
    log_file = tmp_path / "rule.log"
    log = start(SimpleNamespace(log=[str(log_file)], rule="build_ood", wildcards={}))
    log.info("done")
    append_peak_memory(str(log_file), log, "build_ood")
    last = log_file.read_text().splitlines()[-1]
    match = PEAK_LINE.search(last)
    assert " hcebench.build_ood INFO " in last and match and match["rule"] == "build_ood"
    assert int(match["own"].replace(",", "")) >= own
