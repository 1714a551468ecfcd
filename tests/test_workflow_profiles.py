"""The SLURM profile resolves the tiny workflow: GPU jobs ask for GPUs and are requeueable, CPU jobs stay off GPUs.

A dry run plans every job's resources without submitting anything, so this needs no SLURM installation
(the real cluster run is .ci/slurm_cluster.sh).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake_cli import snakemake_command

ROOT = Path(__file__).parents[1]
TINY = ROOT / "tests" / "data" / "tiny_config.yaml"
#: Rules that ask for GPUs, and the config resources entry each one reads.
GPU_RULES = {"train": "train", "evaluate": "predict"}


def dry_run(workdir: Path, *args: str, env: dict | None = None) -> str:
    # From the repository root, as a user types it: `--profile slurm` is looked up in the current directory.
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "slurm",
        # Every job's details (the workflow profile leaves them out of the terminal).
        "--workflow-profile",
        "none",
        "--snakefile",
        "Snakefile",
        "--directory",
        str(workdir),
        "--dry-run",
        *args,
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return out


def planned_jobs(out: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job in a dry run's listing."""
    jobs, rule = [], None
    for line in out.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+resources: (.*)$", line)):
            pairs = re.findall(r"(\w+)=(.*?)(?=, \w+=|$)", m.group(1))
            jobs.append((rule, dict(pairs)))
            rule = None
    return jobs


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("profile")
    (workdir / "config.yaml").write_text(TINY.read_text())
    return workdir


def test_slurm_profile_is_found_from_the_repository_root():
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["latency-wait"] >= 10 and profile["jobs"] >= 1
    assert "--requeue" in profile["set-resources"]["train"]["slurm_extra"]
    # profiles/default/ would be loaded on every run: it must never switch the executor.
    default = ROOT / "profiles" / "default" / "config.yaml"
    assert not default.exists() or "executor" not in (yaml.safe_load(default.read_text()) or {})


def test_gpu_jobs_ask_for_gpus_and_cpu_jobs_do_not(tiny_workdir):
    jobs = planned_jobs(dry_run(tiny_workdir))
    rules = [rule for rule, _ in jobs]
    assert rules.count("train") == 8 and rules.count("evaluate") == 8, rules  # one evaluate job per model
    config = yaml.safe_load(TINY.read_text())["resources"]
    for rule, res in jobs:
        if rule in GPU_RULES:
            assert res.get("gpu") == str(config[GPU_RULES[rule]]["gpu"]) == "1", (rule, res)
            assert res["mem_mb"] == str(config[GPU_RULES[rule]]["mem_mb"]) and res["runtime"] == str(
                config[GPU_RULES[rule]]["runtime"]
            )
            assert "--requeue" in res.get("slurm_extra", ""), (rule, res)
        elif rule != "all":
            assert "gpu" not in res and "gres" not in res, (rule, res)
            assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0, (rule, res)
    # Training is told before its time limit, so it can checkpoint and be resumed.
    train = next(res for rule, res in jobs if rule == "train")
    assert re.search(r"--signal=TERM@\d+", train["slurm_extra"]), train


def test_with_seeds_in_one_job_a_gpu_job_asks_for_the_time_of_all_its_seeds(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["training"]["seeds_in_one_job"] = True
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(dry_run(tmp_path))
    seeds = len(config["training"]["seeds"])
    for rule, entry in GPU_RULES.items():
        planned = [res for name, res in jobs if name == rule]
        assert len(planned) == 4, (rule, planned)  # 2 architectures × 2 losses, each job for both seeds
        limit = config["resources"][entry]["runtime"] * seeds  # resources.<rule>.runtime is per model
        assert all(res["runtime"] == str(limit) and res.get("gpu") == "1" for res in planned), (rule, planned)


def test_profile_resolves_without_slurm_installed(tiny_workdir, tmp_path):
    # Only the venv and `which` on PATH: no sinfo, sacct or sbatch, as on the machine that runs the unit tests.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "which").symlink_to(shutil.which("which"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{tools}"}
    jobs = planned_jobs(dry_run(tiny_workdir, env=env))
    assert any(rule == "train" and res.get("gpu") == "1" for rule, res in jobs)


def test_paper_config_asks_for_gpus_on_the_cluster(tmp_path):
    out = dry_run(tmp_path, "--configfile", str(ROOT / "config" / "paper.yaml"))
    jobs = planned_jobs(out)
    train = [res for rule, res in jobs if rule == "train"]
    assert len(train) == 3 * 2 * 4 and all(res.get("gpu") == "1" for res in train)  # linear, MLP, TabNet


def test_paper_config_from_the_repository_root_runs_only_its_own_grid():
    """`--configfile config/paper.yaml` from the root replaces the demo's config.yaml instead of merging into it."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        "config/paper.yaml",
        "--workflow-profile",
        "none",
        "--dry-run",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    counts = {
        w[0]: int(w[1]) for w in (line.split() for line in out.splitlines()) if len(w) == 2 and w[1].isdigit()
    }
    assert counts["train"] == 3 * 2 * 4, counts  # linear, MLP, TabNet × CE, HCE × 4 seeds
    assert "celltypist" not in counts and "simulate_census" not in counts, counts  # nothing of the demo's
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert set(demo["architectures"]) - set(
        paper["architectures"]
    )  # the demo does have entries the paper lacks
    assert "results/paper/" in out and "results/demo/" not in out


def dry_run_without_profile(
    workdir: Path, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`snakemake --dry-run` in ``workdir`` (its config.yaml, or ``args``), without the SLURM profile."""
    cmd = snakemake_command(workdir)
    return subprocess.run(
        [*cmd, *args, "--workflow-profile", "none", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=workdir,
    )


def plain_dry_run(workdir: Path, config: dict) -> subprocess.CompletedProcess:
    """`snakemake --dry-run` of ``config`` in ``workdir``, without the SLURM profile, as a user's first command."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return dry_run_without_profile(workdir)


def test_a_clean_config_plans_without_a_json_schema_warning(tmp_path):
    done = plain_dry_run(tmp_path, yaml.safe_load(TINY.read_text()))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "train" in out  # it did plan the jobs
    for line in out.splitlines():
        assert "JSON Schema" not in line and "schema file may not be validated" not in line, line


def _typo_dry_run(tmp_path) -> tuple[subprocess.CompletedProcess, str]:
    config = yaml.safe_load(TINY.read_text())
    config["training"]["epochs"] = 3  # a misspelt max_epochs
    done = plain_dry_run(tmp_path, config)
    return done, done.stdout + done.stderr


def test_an_unknown_config_key_stops_the_plan_naming_the_key_first(tmp_path):
    done, out = _typo_dry_run(tmp_path)
    assert done.returncode != 0 and "Job stats" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    reason = next(i for i, line in enumerate(lines) if "Additional properties are not allowed" in line)
    assert reason <= 3 and "('epochs' was unexpected)" in lines[reason]  # within the error's first lines


def test_an_unknown_config_key_is_a_short_message(tmp_path):
    done, out = _typo_dry_run(tmp_path)
    assert done.returncode != 0 and len(out) < 3000, len(out)


@pytest.mark.parametrize("given", ["workdir", "--configfile"])
def test_a_key_given_twice_in_a_config_file_stops_the_plan(tmp_path, given):
    # Snakemake's YAML reader keeps the last value of a repeated key without a word; the plan stops instead.
    text = TINY.read_text().replace("training: {", "training: {max_epochs: 1, ", 1)
    assert text.count("max_epochs:") == 2
    path = tmp_path / ("config.yaml" if given == "workdir" else "mine.yaml")
    path.write_text(text)
    done = dry_run_without_profile(
        tmp_path, *(["--configfile", str(path)] if given == "--configfile" else [])
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Job stats" not in out, out[-3000:]
    assert f"{path.name}, line" in out and "key 'max_epochs' appears twice in the same block" in out, out[
        -3000:
    ]


def test_a_dry_run_runs_no_code_a_config_names(tmp_path):
    # A module beside the Snakefile's working directory that would write a file when imported: naming it as an
    # architecture's model stops the plan, and the module never runs (nor does `this`, which prints on import).
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('imported')\n")
    for module in ("evil", "this"):
        config = yaml.safe_load(TINY.read_text())
        config["architectures"]["mine"] = {"model": module, "lr": 0.01, "weight_decay": 0.0}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        done = dry_run_without_profile(tmp_path, env=env)
        out = done.stdout + done.stderr
        assert done.returncode != 0 and f"architectures.mine.model: unknown architecture '{module}'" in out, (
            out[-3000:]
        )
        assert "Beautiful is better than ugly" not in out
    assert not (tmp_path / "ran").exists()


def test_a_gene_list_file_is_an_input_of_the_store_build(tmp_path):
    # Every file a step reads is an input of its rule: editing the gene list rebuilds the store.
    genes = tmp_path / "my_genes.parquet"
    genes.write_bytes(b"")  # planning reads nothing: the store build reads it
    config = yaml.safe_load(TINY.read_text())
    config["genes"] = {"source": str(genes)}
    done = plain_dry_run(tmp_path, config)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    block = out.split("rule build_store:", 1)[1].split("\n\n", 1)[0]
    assert "input:" in block and str(genes) in block, block


def test_a_missing_sctab_store_stops_the_plan_naming_it(tmp_path):
    # The scTab store the import reads is an input of its rule: a wrong path is named before any job runs.
    config = yaml.safe_load(TINY.read_text())
    config["training_store"] = {"source": "sctab", "sctab_path": str(tmp_path / "no_such_store")}
    done = plain_dry_run(tmp_path, config)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Missing input files for rule import_sctab_store" in out, out[-3000:]
    assert str(tmp_path / "no_such_store") in out


def test_a_working_directory_without_a_config_runs_the_demo(tmp_path):
    # `--directory` alone: the demo's config.yaml beside the Snakefile, results under the working directory.
    done = dry_run_without_profile(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "results/demo/" in out and "simulate_census" in out


def test_an_entry_with_checkpoints_is_imported_not_trained_and_then_evaluated(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    (tmp_path / "ckpts").mkdir()
    config["training"]["losses"] = ["ce", "hce"]
    for loss in config["training"]["losses"]:
        for seed in config["training"]["seeds"]:
            (tmp_path / "ckpts" / f"{loss}_seed{seed}.ckpt").write_bytes(b"")
    config["architectures"]["paper_linear"] = {
        "model": "linear",
        "checkpoints": "ckpts/{loss}_seed{seed}.ckpt",
    }
    done = plain_dry_run(tmp_path, config)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    jobs = planned_jobs(out)
    n_models = len(config["training"]["losses"]) * len(config["training"]["seeds"])
    assert [rule for rule, _ in jobs].count("import_checkpoint") == n_models
    assert "models/paper_linear/" in out and "predictions/paper_linear/" in out
    # A checkpoints entry of a network the reference code does not have is refused.
    config["architectures"]["paper_linear"]["model"] = "transformer"
    done = plain_dry_run(tmp_path, config)
    assert (
        done.returncode != 0 and "set architectures.paper_linear.model to one of" in done.stdout + done.stderr
    )
