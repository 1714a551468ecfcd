"""A sweep: one config per value of the swept key, each validated before anything runs, and every point's jobs in
the one DAG of the workflow (rules/sweep.smk loads the run's rules once per point as a Snakemake module)."""

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hcebench.config import load_config
from hcebench.errors import ConfigError
from hcebench.sweep import point_config, point_name, point_run, sweep_points
from snakemake_cli import snakemake_command

ROOT = Path(__file__).parents[1]
MECHANISM = ROOT / "config" / "mechanism.yaml"


@pytest.fixture
def mechanism():
    return load_config(MECHANISM)


def snakemake(workdir: Path, *args: str, cwd: Path | None = None) -> str:
    cmd = snakemake_command(workdir)
    done = subprocess.run(
        [*cmd, "--cores", "2", *args], capture_output=True, text=True, timeout=1200, cwd=cwd
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    return out


def test_a_point_sets_the_key_and_runs_on_its_own(mechanism):
    point = point_config(mechanism, 0.25)
    assert point["census"]["simulate"]["coarse_study_share"] == 0.25
    assert point["run"] == point_run(mechanism, 0.25) == "mechanism_0.25"
    assert "sweep" not in point
    assert (
        mechanism["census"]["simulate"]["coarse_study_share"] is None
    )  # the sweep's own config is untouched
    # Every point of config/mechanism.yaml is a valid config, in the order of sweep.values.
    points = sweep_points(mechanism)
    assert [value for value, _ in points] == mechanism["sweep"]["values"]
    assert [p["census"]["simulate"]["coarse_study_share"] for _, p in points] == mechanism["sweep"]["values"]


def test_a_points_rule_names_are_its_run_with_rule_safe_characters(mechanism):
    assert point_name(mechanism, 0.25) == "mechanism_0_25"
    assert point_name(mechanism, "a-b") == "mechanism_a_b"
    clash = {**mechanism, "sweep": {"key": "census.simulate.coarse_study_share", "values": [0.5, "0_5"]}}
    with pytest.raises(
        ConfigError,
        match=r"sweep.values 0.5 and '0_5' give their points the same run or rule names \(mechanism_0_5\)",
    ):
        sweep_points(clash)


def test_a_sweep_key_that_does_not_exist_is_named_with_the_fix(mechanism):
    """A sweep over a key whose blocks are not in the config (a typo) stops at once; a sweep without a key says
    which key to add."""
    typo = {**mechanism, "sweep": {"key": "census.simulat.coarse_study_share", "values": [0, 0.5]}}
    with pytest.raises(
        ConfigError,
        match=r"sweep.key 'census.simulat.coarse_study_share': census.simulat is not a block of this config; "
        "name a key that exists",
    ):
        point_config(typo, 0.25)
    with pytest.raises(ConfigError, match="sweep.key is missing: name the config key the sweep varies"):
        point_config({**mechanism, "sweep": {"values": [0, 0.5]}}, 0.25)


def test_a_misspelt_last_part_or_a_bad_value_is_named_before_anything_runs(mechanism):
    leaf = {**mechanism, "sweep": {"key": "census.simulate.coarse_study_shar", "values": [0, 0.5]}}
    with pytest.raises(
        ConfigError, match=r"(?s)sweep point census.simulate.coarse_study_shar = 0: .*coarse_study_shar"
    ):
        sweep_points(leaf)
    out_of_range = {**mechanism, "sweep": {"key": "census.simulate.coarse_study_share", "values": [0, 1.5]}}
    with pytest.raises(
        ConfigError, match=r"(?s)coarse_study_share = 1.5: .*1.5 is greater than the maximum of 1"
    ):
        sweep_points(out_of_range)


#: Rules of one run (rules/run.smk) that the sweep's figure needs, as a point's jobs name them after its prefix.
RULES = {
    "simulate_census",
    "select_cells",
    "build_store",
    "ontology_closure",
    "build_ood",
    "train",
    "evaluate",
}
RULES |= {"controls", "aggregate"}


def planned(dry_run: str) -> tuple[dict[str, int], dict[str, list[str]], dict[str, list[str]]]:
    """A dry run's job count per rule (its "Job stats" table), and each rule's jobs' outputs and resources."""
    stats = dry_run[dry_run.index("Job stats:") :]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    outputs: dict[str, list[str]] = {}
    resources: dict[str, list[str]] = {}
    rule = None
    for line in dry_run.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m[1]
        elif rule and (m := re.match(r"^\s+output: (.*)$", line)):
            outputs.setdefault(rule, []).extend(m[1].split(", "))
        elif rule and (m := re.match(r"^\s+resources: (.*)$", line)):
            resources.setdefault(rule, []).append(m[1])
    return counts, outputs, resources


def test_the_sweeps_dry_run_lists_every_job_of_every_point(tmp_path, mechanism):
    """One DAG, planned as `--profile slurm` submits it: each point's training and evaluation jobs (one per loss ×
    seed of the linear model) with the config's resources, its census, store and tables, each writing under
    results/<run>_<value>/, then the figure; no nested run hides them."""
    out = snakemake(
        tmp_path,
        *("--profile", "slurm", "--workflow-profile", "none", "--configfile", str(MECHANISM), "--dry-run"),
        cwd=ROOT,
    )
    counts, outputs, resources = planned(out)
    models = len(mechanism["training"]["losses"]) * len(mechanism["training"]["seeds"])
    assert list(mechanism["architectures"]) == ["linear"] and not mechanism["training"]["seeds_in_one_job"]
    train = mechanism["resources"]["train"]
    points = {
        point_name(mechanism, value): point_run(mechanism, value) for value in mechanism["sweep"]["values"]
    }
    for name, run in points.items():
        assert counts[f"{name}_train"] == counts[f"{name}_evaluate"] == models, counts
        for rule in RULES - {"train", "evaluate", "controls"}:
            assert counts[f"{name}_{rule}"] == 1, (rule, counts)
        assert set(outputs) >= {f"{name}_{rule}" for rule in RULES}
        assert all(f.startswith(f"results/{run}/") for rule in RULES for f in outputs[f"{name}_{rule}"])
        assert len(resources[f"{name}_train"]) == models
        for job in resources[f"{name}_train"]:
            assert f"mem_mb={train['mem_mb']}," in job and f"runtime={train['runtime']}," in job, job
            assert f"gpu={train['gpu']}" in job, job
    assert counts["sweep_figure"] == counts["all"] == 1
    # Nothing but the points' jobs, the figure and the target.
    assert counts["total"] == 2 + sum(n for rule, n in counts.items() if rule.startswith(tuple(points)))


@pytest.mark.workflow
def test_a_tiny_sweep_runs_and_each_point_is_exactly_the_run_of_its_config(tmp_path):
    """Two points of a tiny census end to end in one Snakemake; then each point's tables are up to date for a
    plain run of that point's config: same jobs, params, inputs and code as the run a user would start by hand."""
    tiny = yaml.safe_load((ROOT / "tests" / "data" / "tiny_config.yaml").read_text())
    tiny["census"]["simulate"]["coarse_study_share"] = None
    config = {
        **tiny,
        "run": "tinysweep",
        "sweep": {"key": "census.simulate.coarse_study_share", "values": [0, 0.5]},
        "training": {**tiny["training"], "seeds": [0], "max_epochs": 2},
        "architectures": {"linear": tiny["architectures"]["linear"]},
        "evaluation": {"focus_architecture": "linear", "controls": [], "propagation_decoding": False},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    gains = pd.read_csv(tmp_path / "results" / "tinysweep" / "sweep_gain.tsv", sep="\t")
    assert sorted(gains["census.simulate.coarse_study_share"].unique()) == [0, 0.5]
    assert (tmp_path / "results" / "tinysweep" / "figures" / "sweep_gain.png").stat().st_size > 0
    for value, point in sweep_points(load_config(tmp_path / "config.yaml")):
        path = tmp_path / f"point_{value}.yaml"
        path.write_text(yaml.safe_dump(point))
        run = f"results/{point['run']}"
        out = snakemake(
            tmp_path, "--configfile", str(path), "--dry-run", f"{run}/metrics.tsv", f"{run}/summary.tsv"
        )
        assert "Nothing to be done" in out, out[-3000:]
