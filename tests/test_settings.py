"""hcebench.settings: each stage's settings come from the validated config alone, with the schema as the one place
defaults are written; they travel to a rule's script as plain values and come back unchanged. Also: one owner of a
store's files (hcebench.data.store) and of the grid's axes (hcebench.axes)."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml
from hcebench import axes, settings
from hcebench.config import load_config, load_schema
from hcebench.errors import ConfigError
from hcebench.training.loop import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "config.yaml", ROOT / "config" / "paper.yaml", ROOT / "tests" / "data" / "tiny_config.yaml"]


def build(cls, config):
    """``cls.from_config(config)``; a stage built per architecture for the config's first one."""
    if cls is settings.TrainingSettings:
        return cls.from_config(config, next(iter(config["architectures"])))
    return cls.from_config(config)


def schema_keys(section: str) -> dict:
    return load_schema()["properties"][section].get("properties", {})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("stage", sorted(settings.STAGES))
def test_every_stage_round_trips_through_a_rules_params(path, stage):
    config = load_config(path)
    if stage == "import_sctab_store" and not config["training_store"]["sctab_path"]:
        config["training_store"]["sctab_path"] = "/data/sctab"
    cls = settings.STAGES[stage]
    built = build(cls, config)
    params = built.params()
    # Plain values only (what Snakemake stores and compares), keys sorted at every level.
    assert yaml.safe_load(yaml.safe_dump(params)) == params

    def sorted_everywhere(value):
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(sorted_everywhere(v) for v in value.values())
        if isinstance(value, list):
            return all(sorted_everywhere(v) for v in value)
        return True

    assert sorted_everywhere(params)
    assert cls.from_params(params) == built


def test_params_compare_as_values_whatever_the_yaml_key_order():
    config = load_config(ROOT / "config.yaml")
    reordered = load_config(ROOT / "config.yaml")
    reordered["filters"] = dict(reversed(list(reordered["filters"].items())))
    reordered["census"] = dict(reversed(list(reordered["census"].items())))
    for cls in settings.STAGES.values():
        assert build(cls, config).params() == build(cls, reordered).params()
        assert list(build(cls, config).params()) == list(build(cls, reordered).params())


def test_settings_fields_are_config_keys_and_carry_no_default_of_their_own():
    # A field named after a key of its section is that key: its type must hold the schema's default, and the
    # dataclass declares no default (the schema is the one place defaults are written).
    for cls in [
        *settings.STAGES.values(),
        settings.Filters,
        settings.Split,
        settings.Genes,
        settings.CensusReads,
    ]:
        for field in dataclasses.fields(cls):
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, (
                f"{cls.__name__}.{field.name} declares a default; write it in the schema instead"
            )
        if cls.section:
            keys = schema_keys(cls.section)
            for field in dataclasses.fields(cls):
                assert field.name in keys, f"{cls.__name__}.{field.name} is not a key of {cls.section}:"


def test_an_architectures_training_overrides_reach_its_runs_alone():
    config = load_config(ROOT / "config.yaml")
    first, second = list(config["architectures"])[:2]
    config["architectures"][first]["training"] = {"batch_size": 32}
    assert settings.TrainingSettings.from_config(config, first).batch_size == 32
    assert (
        settings.TrainingSettings.from_config(config, second).batch_size == config["training"]["batch_size"]
    )
    run = TrainSettings.for_run(
        settings.TrainingSettings.from_config(config, first), "hxe", 3, loss_config={}
    )
    assert (run.batch_size, run.seed, run.loss) == (32, 3, "hxe") and run.loss_settings  # registry defaults


def test_train_settings_defaults_are_the_schemas():
    # TrainSettings keeps defaults (tests build it by hand); each must be the schema's for training.<key>.
    keys = schema_keys("training")
    hints = typing.get_type_hints(TrainSettings)
    checked = 0
    for field in dataclasses.fields(TrainSettings):
        if field.name in keys and field.default is not dataclasses.MISSING:
            assert field.default == keys[field.name]["default"], (field.name, field.default)
            checked += 1
    assert checked >= 10 and "batch_size" in hints


def test_settings_built_by_hand_without_a_key_name_it():
    values = settings.Filters.from_config(load_config(ROOT / "config.yaml")).params()
    del values["root_term"]
    with pytest.raises(ConfigError, match=r"^filters\.root_term is missing from the settings passed"):
        settings.Filters.from_params(values)


# -- one owner per thing ---------------------------------------------------------------------------------------------
STORE_FILES = re.compile(
    r"meta\.json|var\.parquet|class_weights\.npy|obs\.parquet|X\.(data|indices|indptr)|augmentations\.npy"
)


def test_only_the_store_module_names_a_stores_files():
    # scTab's own store (hcebench.data.sctab) is another format that happens to use some of the same names: it
    # names them once, in SCTAB_FILES.
    found = []
    for folder in ("workflow/hcebench", "scripts", "rules", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".smk") or "data/store" in path.as_posix():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if STORE_FILES.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    sctab = [f for f in found if f.startswith("workflow/hcebench/data/sctab.py")]
    assert [f for f in found if f not in sctab] == []
    # In scTab's importer, only its docstring's picture of scTab's store and the SCTAB_FILES table.
    assert len([f for f in sctab if '": "' in f]) == 3, sctab


def test_each_axis_is_listed_once():
    # Loss, control and decoder names appear as string literals in axes alone (the rules, library and report ask
    # the tables); the training registry maps the same loss names to modules, checked equal in test_layout.
    names = {*axes.LOSSES, *axes.CONTROLS, "_prop"}
    alternatives = "|".join(map(re.escape, sorted(names)))
    literal = re.compile(rf"""["']({alternatives})["']""")
    # Besides the tables: what implements each entry (a loss's module, a control's predictor) and how figures draw
    # it (a colour or line style per name, any other name drawn with a spare one).
    allowed = {
        "workflow/hcebench/axes.py",
        "workflow/hcebench/training/losses/__init__.py",
        "workflow/hcebench/training/losses/hce.py",
        "workflow/hcebench/external/controls.py",
        "workflow/hcebench/report/figures/style.py",
    }
    found = []
    for folder in ("workflow/hcebench", "scripts", "rules"):
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix not in (".py", ".smk") or rel in allowed:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if literal.search(code) and not code.lstrip().startswith(("``", '"""')) and "``" not in code:
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []
