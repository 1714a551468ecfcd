"""benchmarks/scale_rehearsal.py: the per-rule table and closing line from two runs' benchmark files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from hcebench.data.audit import STATE_PEAK_TEXT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scale_rehearsal as rehearsal  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def fake_run(root: Path, train: int, rss: dict[str, list[float]]) -> Path:
    """A results directory with a store meta of ``train`` training cells (val, test, ood a quarter each) and one
    benchmark file per job of each rule (a rule with several jobs gets a subdirectory, as Snakemake's rules do)."""
    (root / "store").mkdir(parents=True)
    (root / "ood").mkdir()
    quarter = train // 4
    (root / "store" / "meta.json").write_text(
        json.dumps({"n_cells": {"train": train, "val": quarter, "test": quarter}})
    )
    (root / "ood" / "meta.json").write_text(json.dumps({"n_cells": {"ood": quarter, "ood_novel": 5}}))
    for rule, peaks in rss.items():
        for i, peak in enumerate(peaks):
            path = root / "benchmarks" / (f"{rule}/job{i}.tsv" if len(peaks) > 1 else f"{rule}.tsv")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(HEADER + f"12.5\t0:00:12\t{peak}\t1\t1\t1\t0\t0\t50\t3\n")
    return root


def table(small: Path, large: Path, declared: dict, *extra) -> list[dict]:
    """The rehearsal table of two fake runs (``extra``: the bank, chunk-run and chunk arguments)."""
    small_peaks, large_peaks = rehearsal.peak_rss(small), rehearsal.peak_rss(large)
    cells = rehearsal.split_cells(small), rehearsal.split_cells(large)
    return rehearsal.rehearsal_table(small_peaks, large_peaks, *cells, declared, *extra)


def test_the_table_extrapolates_each_rule_from_its_driving_split(tmp_path):
    # The simulated census is the rehearsal's own stand-in for the Census: not a rule of the paper, not in the table.
    small = fake_run(
        tmp_path / "a",
        20_000,
        {"evaluate": [300.0, 500.0], "build_store": [400.0], "simulate_census": [500.0]},
    )
    large = fake_run(
        tmp_path / "b",
        80_000,
        {"evaluate": [520.0, 530.0], "build_store": [420.0], "simulate_census": [2000.0]},
    )
    declared = {
        "evaluate": {"mem_mb": 32000.0, "runtime": 120.0},
        "build_store": {"mem_mb": 300.0, "runtime": 5},
        "simulate_census": {"mem_mb": 1000.0, "runtime": 5},
    }
    rows = table(
        small,
        large,
        declared,
    )
    by_rule = {row["rule"]: row for row in rows}
    ev = by_rule["evaluate"]  # the largest job of each run: 500 and 530 MB over 5,000 → 20,000 val cells
    assert (ev["rss_small_mb"], ev["rss_large_mb"], ev["driver"]) == (500.0, 530.0, "val")
    assert ev["bytes_per_cell"] == pytest.approx(2000.0)  # 30 MB over 15,000 cells
    assert ev["paper_gb"] == pytest.approx((530 + 30 / 15_000 * (3_500_000 - 20_000)) / 1000, abs=0.01)
    assert ev["headroom"] == pytest.approx(32.0 / ev["paper_gb"], abs=0.01)
    assert ev["paper_min"] == pytest.approx(12.5 / 60, abs=0.01)  # the same time at both sizes: no slope
    bs = by_rule["build_store"]  # 20 MB over 60,000 training cells → 15.24 M cells
    assert bs["paper_gb"] == pytest.approx((420 + 20 / 60_000 * (15_240_000 - 80_000)) / 1000, abs=0.01)
    line = rehearsal.summary_line(rows)
    assert line.startswith("rules=2 over_limit=1 worst=build_store:5.5/0.3 ")
    assert line.endswith(f"growth_4x={max(530 / 500, 420 / 400):.2f}")


def test_the_bank_is_extrapolated_to_its_pair_cap_not_per_cell(tmp_path):
    """The bank's state is its pairs' differences and groups' means, capped by types × max_pairs_per_type: its
    row extrapolates the large run's peak by the state it lacks of the cap, and it is left out of growth_4x."""
    small = fake_run(tmp_path / "a", 20_000, {"augmentation_bank": [3000.0], "score": [400.0]})
    large = fake_run(tmp_path / "b", 80_000, {"augmentation_bank": [6000.0], "score": [410.0]})
    for run, (groups, pairs) in ((small, (1000, 10_000)), (large, (4000, 40_000))):
        (run / "logs").mkdir()
        (run / "logs" / "augmentation_bank.log").write_text(
            f"x INFO means of {groups} (type, tech_sample) groups in {pairs} pairs × 19331 genes\n"
        )
    counts = rehearsal.bank_counts(large)
    assert counts == (4000, 40_000, 19_331)
    state = rehearsal.bank_state_bytes(*counts)
    assert state == max(8 * 4000 * 19_331 + 4 * 40_000 * 19_331, 8 * 40_000 * 19_331)
    bound = rehearsal.bank_bound(300)  # 164 × 300 pairs of 2 distinct groups each
    assert bound == 8 * 2 * 49_200 * 19_331 + 4 * 49_200 * 19_331
    rows = table(
        small,
        large,
        {
            "augmentation_bank": {"mem_mb": 32000.0, "runtime": 60.0},
            "score": {"mem_mb": 6000.0, "runtime": 20},
        },
        {"state_large": state, "bound": bound},
    )
    bank = {row["rule"]: row for row in rows}["augmentation_bank"]
    assert bank["driver"] == "pairs" and bank["bytes_per_cell"] is None
    assert bank["paper_gb"] == pytest.approx((6000 + (bound - state) / 1e6) / 1000, abs=0.01)
    assert bank["growth"] == 2.0 and not bank["chunk_bounded"]
    assert rehearsal.summary_line(rows).endswith(f"growth_4x={410 / 400:.2f}")
    # A run at the paper's settings with more pairs (--quick draws fewer): it starts from that run's peak and state.
    chunked = fake_run(tmp_path / "c", 80_000, {"augmentation_bank": [9000.0]})
    state_chunked = rehearsal.bank_state_bytes(8000, 45_000, 19_331)
    rows = table(
        small,
        large,
        {"augmentation_bank": {"mem_mb": 32000.0, "runtime": 60.0}},
        {"state_large": state, "bound": bound, "state_chunked": state_chunked},
        rehearsal.peak_rss(chunked),
        rehearsal.split_cells(chunked),
        (2_000, 2_048),
    )
    bank = {row["rule"]: row for row in rows}["augmentation_bank"]
    assert bank["paper_gb"] == pytest.approx((9000 + (bound - state_chunked) / 1e6) / 1000, abs=0.01)


def test_quick_runs_take_the_paper_chunks_cost_from_a_run_at_the_large_size(tmp_path):
    """Small-chunk runs give the per-cell slope; a run at the paper's chunks and the large size gives the start,
    and a prediction chunk it did not fill is completed at the cost per chunk cell the two large runs show."""
    small = fake_run(tmp_path / "a", 20_000, {"evaluate": [400.0], "build_store": [300.0]})
    large = fake_run(tmp_path / "b", 80_000, {"evaluate": [430.0], "build_store": [330.0]})
    chunked = fake_run(tmp_path / "c", 80_000, {"evaluate": [630.0], "build_store": [900.0]})
    declared = {r: {"mem_mb": 32000.0, "runtime": 60.0} for r in ("evaluate", "build_store")}
    rows = table(
        small,
        large,
        declared,
        None,
        rehearsal.peak_rss(chunked),
        rehearsal.split_cells(chunked),
        (rehearsal.QUICK_CENSUS_CHUNK, rehearsal.QUICK_PREDICTION_CHUNK),
    )
    by_rule = {row["rule"]: row for row in rows}
    # evaluate: the OOD split (20,000 cells) filled 20,000 of the paper's 65,536-cell chunk: 200 MB over 17,952
    # chunk cells more than the small chunk; the other 45,536 cost the same per cell.
    per_chunk_cell = 200 / (20_000 - rehearsal.QUICK_PREDICTION_CHUNK)
    ev = by_rule["evaluate"]
    assert ev["chunk_gb"] == pytest.approx(per_chunk_cell * (65_536 - 20_000) / 1000, abs=0.01)
    slope = 30 / 15_000  # MB per validation cell, from the small-chunk runs
    assert ev["paper_gb"] == pytest.approx(
        (630 + per_chunk_cell * (65_536 - 20_000) + slope * (3_500_000 - 20_000)) / 1000, abs=0.01
    )
    bs = by_rule["build_store"]  # census chunks: full in the run at the paper's chunks, so nothing added
    assert bs["chunk_gb"] == 0
    assert bs["paper_gb"] == pytest.approx((900 + 30 / 60_000 * (15_240_000 - 80_000)) / 1000, abs=0.01)
    assert rehearsal.summary_line(rows).endswith(f"growth_4x={max(430 / 400, 330 / 300):.2f}")


def test_quick_runs_fill_every_chunk_and_page_limit_at_both_sizes(tmp_path, monkeypatch):
    # --quick runs Snakemake with the small census chunk in its size config and the small prediction chunk and page
    # limit in its environment; a run at the paper's chunks sets neither.
    calls = []
    monkeypatch.setattr(rehearsal, "ROOT", tmp_path)
    monkeypatch.setattr(rehearsal.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw.get("env"))))
    rehearsal.run_rehearsal(25_000, 2, quick=True)
    rehearsal.run_rehearsal(25_000, 2)
    (quick_cmd, quick_env), (paper_cmd, paper_env) = calls
    assert quick_env["HCEBENCH_CHUNK_CELLS"] == str(rehearsal.QUICK_PREDICTION_CHUNK)
    assert quick_env["HCEBENCH_MAPPED_MB"] == str(rehearsal.QUICK_MAPPED_MB)
    assert paper_env is None
    quick_size = yaml.safe_load(Path(quick_cmd[-1]).read_text())
    assert quick_size["census"]["chunk_size"] == rehearsal.QUICK_CENSUS_CHUNK
    assert quick_size["census"]["build_workers"] == rehearsal.QUICK_BUILD_WORKERS == 1
    # The bank with a third of the pairs: its state is extrapolated to the paper's cap from the pairs it logs.
    assert quick_size["augmentation"] == {
        "max_pairs_per_type": rehearsal.QUICK_BANK_PAIRS,
        "min_cluster_size": rehearsal.QUICK_BANK_MIN_CLUSTER,
    }
    paper_size = yaml.safe_load(Path(paper_cmd[-1]).read_text())
    assert {"chunk_size", "build_workers"}.isdisjoint(paper_size["census"])
    assert "augmentation" not in paper_size


def test_a_jobs_exact_peak_in_its_log_counts_where_the_sampled_one_missed_it(tmp_path):
    # Snakemake's benchmark sampled 400 MB; the job's log ends with the kernel's high-water marks, 700 + 150 MB.
    run = fake_run(tmp_path / "a", 20_000, {"build_ood": [400.0], "controls": [300.0, 310.0]})
    (run / "logs" / "controls").mkdir(parents=True)
    (run / "logs" / "build_ood.log").write_text(
        "x hcebench.build_ood INFO peak memory of rule build_ood: 700 MB in this process, "
        "150 MB in the worker processes it ran at once\n"
    )
    (run / "logs" / "controls" / "majority.log").write_text(
        "x hcebench.controls INFO peak memory of rule controls: 200 MB in this process, "
        "0 MB in the worker processes it ran at once\n"
    )
    peaks = rehearsal.peak_rss(run)
    assert peaks["build_ood"]["max_rss"] == 850.0 and peaks["build_ood"]["jobs"] == 1
    assert peaks["controls"]["max_rss"] == 310.0  # the sampled peak was the larger one


def test_the_audit_is_extrapolated_from_its_state_and_its_reads_added_at_their_bound(tmp_path):
    # The audit's peak grows with its duplicate candidates' reads (tiles of scattered cells, which TileDB's budget
    # bounds): its state's peak, logged before those reads, is what is extrapolated per cell; the reads are added
    # at their bound.
    small = fake_run(tmp_path / "a", 20_000, {"audit_ood": [300.0]})
    large = fake_run(tmp_path / "b", 80_000, {"audit_ood": [500.0]})
    for run, state in ((small, 250), (large, 262)):
        (run / "logs").mkdir()
        (run / "logs" / "audit_ood.log").write_text(
            f"x hcebench.data.audit INFO {STATE_PEAK_TEXT}: {state} MB\n"
        )
    states = rehearsal.state_peaks(small), rehearsal.state_peaks(large)
    assert states == ({"audit_ood": 250.0}, {"audit_ood": 262.0})
    declared = {"audit_ood": {"mem_mb": 24000.0, "runtime": 60}}
    (row,) = table(small, large, declared, None, None, None, None, states)
    cells_small, cells_large = 20_000 * 7 // 4, 80_000 * 7 // 4  # every split and the OOD set ("all")
    slope = 12 / (cells_large - cells_small)
    paper_all = sum(rehearsal.PAPER_CELLS.values())
    bound = rehearsal.count_read_bound_mb()
    assert row["driver"] == "all" and row["chunk_gb"] == pytest.approx(bound / 1000, abs=0.01)
    assert row["bytes_per_cell"] == pytest.approx(slope * 1e6, abs=0.1)
    assert row["paper_gb"] == pytest.approx(
        (262 + slope * (paper_all - cells_large) + bound) / 1000, abs=0.01
    )
    # Extrapolating the peak with the reads per cell would have read 200 MB of tiles as ~40 KB per cell.
    assert row["paper_gb"] < 24
