"""The recipes of docs/recipes.md work verbatim: each one's code blocks, applied to a scratch copy of the repository
as the page says, pass the tests the recipe names and a dry run of the demo that plans the new thing.

Each code block of a recipe follows a comment ``<!-- recipe NAME: ACTION PATH [at KEYS] [:: LINE] -->`` saying
what the prose above it tells a reader: ``create`` the file, ``append`` to it, ``insert-after`` /
``insert-before`` the first line equal to LINE (trailing spaces aside), ``replace-line`` that line, or
``merge-yaml`` the block into a YAML file (under the dotted KEYS). A LINE that is no longer in the file fails the
test: the recipe has gone stale.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "docs" / "recipes.md"
STEP = re.compile(
    r"<!-- recipe (?P<recipe>[\w-]+): (?P<action>[\w-]+) (?P<path>\S+)(?: at (?P<keys>[\w.]+))?"
    r"(?: :: (?P<line>.*?))? -->\n```\w*\n(?P<code>.*?)```",
    re.S,
)
IGNORE = shutil.ignore_patterns(
    ".git",
    "results",
    ".snakemake",
    ".venv",
    "venv",
    "__pycache__",
    "*.egg-info",
    ".ruff_cache",
    ".pytest_cache",
)

#: Per recipe: the tests to run in the scratch copy, and what the dry run must plan.
CHECKS = {
    "architecture": (["tests/test_models.py::test_bottleneck_maps_a_batch_to_logits"], "arch=bottleneck"),
    "loss": (
        [
            "tests/test_training_losses_ls.py",
            "tests/test_layout.py",
            *(
                f"tests/test_training_losses_registry.py::{test}"
                for test in (
                    "test_every_entry_is_complete[ls]",
                    "test_layout_lists_every_registered_loss",
                    "test_schema_declares_each_loss_hyperparameters_as_the_registry_does",
                    "test_config_rejects_bad_losses_blocks",
                    "test_class_weighted_mean_sum_and_none[ls]",
                    "test_bf16_logits_are_computed_in_float32[ls]",
                    "test_gradients_are_finite_and_correct[ls]",
                    "test_validation_loss_on_hierarchy_corrected_targets[ls]",
                )
            ),
        ],
        "loss=ls",
    ),
    "metric": (["tests/test_evaluation_metrics.py"], None),
    "figure": (["tests/test_report_figures_micro.py"], "ood_micro_f1.png"),
    "external": (["tests/test_package.py"], "rule centroid:"),
}


def steps() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for m in STEP.finditer(RECIPES.read_text(encoding="utf-8")):
        found.setdefault(m["recipe"], []).append(m.groupdict())
    return found


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def apply(step: dict, root: Path) -> None:
    path, code, line = root / step["path"], step["code"], step["line"]
    action = step["action"]
    if action == "create":
        assert not path.exists(), f"{step['path']} already exists: the recipe would overwrite it"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    elif action == "append":
        path.write_text(path.read_text() + code)
    elif action == "merge-yaml":
        data = yaml.safe_load(path.read_text())
        target = data
        for key in (step["keys"] or "").split(".") if step["keys"] else []:
            target = target[key]
        merge(target, yaml.safe_load(code))
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    elif action in ("insert-after", "insert-before", "replace-line"):
        lines = path.read_text().splitlines(keepends=True)
        at = [i for i, text in enumerate(lines) if text.rstrip() == line.rstrip()]
        assert at, f"{step['path']} has no line {line!r}: the recipe is stale"
        i = at[0]
        if action == "insert-after":
            lines.insert(i + 1, code)
        elif action == "insert-before":
            lines.insert(i, code)
        else:
            lines[i] = code
        path.write_text("".join(lines))
    else:
        raise ValueError(f"unknown recipe action {action!r} in docs/recipes.md")


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd / "workflow")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_recipe_is_parsed_and_checked():
    assert set(steps()) == set(CHECKS)
    assert all(len(s) >= 3 for s in steps().values())


def test_the_recipes_work_verbatim(tmp_path):
    # All five in one scratch copy (they touch different files, and a user may follow several): one test run of
    # what they name and one dry run, which keeps this test to about a minute.
    scratch = tmp_path / "repo"
    shutil.copytree(ROOT, scratch, ignore=IGNORE, symlinks=True)
    for recipe in CHECKS:
        for step in steps()[recipe]:
            apply(step, scratch)
    tests = [test for names, _ in CHECKS.values() for test in names]
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], scratch)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # What the recipes tell a user to finish with: the code they wrote passes the project's lint and format.
    written = [s["path"] for r in CHECKS for s in steps()[r] if s["path"].endswith(".py")]
    lint = run([sys.executable, "-m", "ruff", "check", *written], scratch)
    assert lint.returncode == 0, lint.stdout[-4000:]
    formatted = run([sys.executable, "-m", "ruff", "format", "--check", "--diff", *written], scratch)
    assert formatted.returncode == 0, formatted.stdout[-4000:] + formatted.stderr[-2000:]
    # Every job's details (the workflow profile leaves them out): the new rule, wildcards and outputs.
    dry = run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "none", "--cores", "1"], scratch
    )
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-4000:]
    for recipe, (_, planned) in CHECKS.items():
        if planned:
            assert planned in out, f"recipe {recipe!r}: the dry run plans no {planned!r}:\n{out[-3000:]}"


@pytest.mark.parametrize("recipe", list(CHECKS))
def test_a_stale_recipe_fails(recipe, tmp_path):
    # Each anchored step names a line of the repository as it is: a step whose line is gone must fail the test.
    scratch = tmp_path / "repo"
    anchored = [step for step in steps()[recipe] if step["line"]]
    for step in anchored:
        source = ROOT / step["path"]
        assert any(t.rstrip() == step["line"].rstrip() for t in source.read_text().splitlines()), step["line"]
    if anchored:
        step = anchored[0]
        (scratch / step["path"]).parent.mkdir(parents=True)
        (scratch / step["path"]).write_text("nothing here\n")
        with pytest.raises(AssertionError, match="the recipe is stale"):
            apply(step, scratch)
