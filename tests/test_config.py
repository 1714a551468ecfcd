"""Config validation: the demo validates, defaults fill in, and bad values name their key."""

import copy
from pathlib import Path

import pytest
import yaml
from hcebench.config import load_config
from hcebench.errors import ConfigError
from hcebench.models import check_architectures

ROOT = Path(__file__).parents[1]


@pytest.fixture
def demo():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_demo_config_validates_and_fills_defaults(demo):
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["run"] == "demo"
    assert cfg["training"]["hce_form"] == "paper"
    assert set(cfg["architectures"]) >= {"linear", "mlp"}
    # A key the demo leaves out takes the schema default.
    del demo["normalisation"]
    assert load_config(demo)["normalisation"]["target_sum"] == 10000


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["split"].update(fractions=[0.5, 0.2, 0.2]), "split.fractions"),
        (lambda c: c["training"].update(losses=["focal"]), "training.losses"),
        (lambda c: c["training"].update(seeds=[0, 1, 1]), "training.seeds"),
        (lambda c: c["architectures"]["mlp"].update(widht=3), "architectures.mlp"),
        (
            lambda c: c["architectures"].update(resnet={"lr": 1e-3, "weight_decay": 0.0}),
            "architectures.resnet",
        ),
        (lambda c: c["evaluation"].update(focus_architecture="resnet"), "evaluation.focus_architecture"),
        (lambda c: c["census"].update(source="local"), "census.train_uri"),
        (lambda c: c.update(typo_key=1), "typo_key"),
        (lambda c: c["filters"].update(root_term="native cell"), "filters.root_term"),
        (lambda c: c["training"].update(data_source="parquet"), "training.data_source"),
        (lambda c: c["architectures"]["mlp"].update(augment="yes"), "architectures.mlp.augment"),
        (
            lambda c: c["training"].update(float32_matmul_precision="fast"),
            "training.float32_matmul_precision",
        ),
        (lambda c: c["augmentation"].update(min_cells=10), "augmentation.min_cells"),  # not scTab's: gone
        (lambda c: c["augmentation"].update(n_clusters=0), "augmentation.n_clusters"),
        (
            lambda c: (
                c["training"].update(data_source="tiledbsoma_ml"),
                c["training_store"].update(source="sctab", sctab_path="/x"),
            ),
            "training.data_source",
        ),
    ],
)
def test_bad_values_name_their_key(demo, edit, key):
    cfg = copy.deepcopy(demo)
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        check_architectures(
            load_config(cfg)
        )  # as the Snakefile does: schema and cross-key checks, then models
    first = key.split(".")[-1]
    assert first in str(err.value)


def test_an_entry_may_reuse_a_builtin_under_another_name(demo):
    demo["architectures"]["wide_linear"] = {"model": "linear", "lr": 1e-3, "weight_decay": 0.0}
    cfg = load_config(demo)
    check_architectures(cfg)
    assert "wide_linear" in cfg["architectures"]


def test_an_installed_plugin_is_an_architecture_a_config_can_name(demo, tmp_path, monkeypatch):
    import importlib

    from hcebench.models import architecture_modules, model_module
    from plugins import TESTS, install_toy_plugin

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.syspath_prepend(str(install_toy_plugin(tmp_path / "site")))
    importlib.invalidate_caches()
    assert architecture_modules()["toy"] == "toy_arch"
    demo["architectures"]["toy"] = {"lr": 1e-3, "weight_decay": 0.0, "width": 4}
    check_architectures(load_config(demo))
    assert model_module("toy").__name__ == "toy_arch"


@pytest.mark.parametrize("module", ["this", "hcebench.models.linear", "os"])
def test_a_module_named_in_a_config_is_never_imported(demo, module):
    demo["architectures"]["mine"] = {"model": module, "lr": 1e-3, "weight_decay": 0.0}
    with pytest.raises(
        ConfigError,
        match=rf"architectures.mine.model: unknown architecture {module!r}. Known: .*entry-point group",
    ):
        check_architectures(load_config(demo))


def test_paper_config_validates_with_the_paper_protocol():
    cfg = load_config(ROOT / "config" / "paper.yaml")
    assert (cfg["census"]["train_release"], cfg["census"]["ood_release"]) == ("2023-05-15", "2023-12-15")
    assert cfg["filters"]["min_cells_per_type"] == 5000 and cfg["filters"]["min_tech_samples_per_type"] == 30
    assert len(cfg["filters"]["assays"]) == 7
    assert cfg["split"] == {
        "seed": 1,
        "fractions": [0.70, 0.15, 0.15],
        "by": "tech_sample",
        "row_multiple": 1024,
    }
    assert cfg["training"]["max_epochs"] == 50 and cfg["training"]["patience"] == 10
    # The paper's exactness keys: scTab's label order, its loader's drop_last, torchmetrics' union macro F1.
    assert cfg["filters"]["label_order"] == "sctab"
    assert cfg["training"]["drop_last"] is True and cfg["training"]["selection_f1"] == "union"
    assert "v2022-09-15" in cfg["ontology"]["source"]
    # scTab trains its MLP and TabNet with augmentation; a store larger than the page cache shuffles blocks.
    assert sorted(name for name, entry in cfg["architectures"].items() if entry.get("augment")) == [
        "mlp",
        "tabnet",
    ]
    assert (
        cfg["architectures"]["tabnet"]["n_d"] == 128 and cfg["architectures"]["tabnet"]["n_independent"] == 5
    )
    assert cfg["training"]["shuffle_block_rows"] == 128 and cfg["training"]["data_source"] == "store"
    # scTab's augmentation bank and the paper's numerics (float32, matmul precision "high").
    assert cfg["augmentation"] == {
        "subsample_cells": 500_000,
        "max_pairs_per_type": 300,
        "min_abs": 0.25,
        "clip": 1.5,
        "n_clusters": 50,
        "min_cluster_size": 2000,
        "n_vectors": 5000,
        "seed": 1,
    }
    assert cfg["training"]["bf16"] is False and cfg["training"]["float32_matmul_precision"] == "high"


@pytest.mark.parametrize(
    "edit, key, block",
    [
        (lambda c: c.update(typo_key=1), "typo_key", "<top level>"),
        (lambda c: c["training"].update(epochs=3), "epochs", "training"),
        (lambda c: c["filters"].update(min_cell_per_type=5), "min_cell_per_type", "filters"),
    ],
)
def test_an_unknown_key_is_named_first_in_a_short_message(demo, edit, key, block):
    """What a rule script's load_config answers: the block and the key on the first line that says what is wrong,
    not the schema."""
    edit(demo)
    with pytest.raises(ConfigError) as err:
        load_config(demo)
    lines = str(err.value).splitlines()
    assert lines[0] == "config does not match the schema (config.schema.yaml):"
    assert lines[1] == f"  {block}: Additional properties are not allowed ({key!r} was unexpected)"
    assert len(lines) == 2 and len(str(err.value)) < 200


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["census"]["simulate"].update(n_gens=300), "n_gens"),
        (lambda c: c.setdefault("resources", {}).setdefault("train", {}).update(mem_mbb=300), "mem_mbb"),
    ],
)
def test_an_unknown_key_inside_an_open_block_is_named_too(demo, edit, key):
    edit(demo)
    with pytest.raises(ConfigError, match=key):
        check_architectures(load_config(demo))


def test_the_schema_declares_the_draft_its_validators_use():
    """snakemake.utils.validate warns ("No validator found for JSON Schema version identifier ...") on every run
    whose schema names another draft than its Draft 2020-12 validator; hcebench validates with the same draft."""
    import jsonschema
    from hcebench.config import load_schema

    declared = load_schema()["$schema"]
    assert declared == jsonschema.Draft202012Validator.META_SCHEMA["$schema"]
    assert jsonschema.validators.validator_for(load_schema()) is jsonschema.Draft202012Validator


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["architectures"]["mlp"].update(lr=float("nan")), "architectures.mlp.lr"),
        (lambda c: c["training"].update(lr_gamma=float("inf")), "training.lr_gamma"),
        (lambda c: c["split"].update(fractions=[0.7, float("nan"), 0.15]), "split.fractions[1]"),
        (
            lambda c: c["filters"].update(max_zero_cell_fraction=-float("inf")),
            "filters.max_zero_cell_fraction",
        ),
    ],
)
def test_a_number_that_is_not_finite_is_named_before_anything_else(demo, edit, key):
    # YAML's .nan and .inf pass a JSON schema's minimum and maximum (comparisons with NaN are false).
    edit(demo)
    with pytest.raises(ConfigError, match=r"not finite") as err:
        load_config(demo)
    assert f"  {key}: " in str(err.value)


def schema_leaves(node: dict, path: tuple = ()):
    """(dotted key path, schema) of every leaf key the schema declares (``architectures`` is an open block: its
    entries are checked against each model's dataclass, below)."""
    for key, sub in node.get("properties", {}).items():
        if key == "architectures":
            continue
        if sub.get("properties"):
            yield from schema_leaves(sub, (*path, key))
        elif "type" in sub or "enum" in sub:
            yield (*path, key), sub


def bad_values(sub: dict) -> list:
    """Values the key's schema refuses: of another type, and past each bound it declares."""
    types = sub.get("type", [])
    types = [types] if isinstance(types, str) else types
    values = [{"a": "mapping"}] if "object" not in types else [["a list"]]
    if "enum" in sub:
        values.append("no-such-choice")
    for bound, step in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1)):
        if bound in sub:
            values.append(sub[bound] + step if step else sub[bound])
    if "pattern" in sub:
        values.append("has spaces/and slashes")
    return values


def with_value(config: dict, path: tuple, value) -> dict:
    config = copy.deepcopy(config)
    node = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {"key": "training.max_epochs", "values": [1, 2]} if key == "sweep" else {}
        node = node[key]
    node[path[-1]] = value
    return config


def test_every_schema_key_refuses_a_bad_value_while_planning_and_names_the_key(demo):
    # What the Snakefile runs before any job: schema, cross-key checks, architectures. A value that passed them and
    # failed inside a job would first cost that job's finished outputs (Snakemake deletes them before it runs).
    from hcebench.config import load_schema

    leaves = list(schema_leaves(load_schema()))
    assert len(leaves) > 80
    checked = 0
    for path, sub in leaves:
        for value in bad_values(sub):
            with pytest.raises(ConfigError) as err:
                check_architectures(load_config(with_value(demo, path, value)))
            assert ".".join(path) in str(err.value), (path, value, str(err.value)[:300])
            checked += 1
    assert checked > 150


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("weight_decay", -0.1),
        ("weight_decay", float("inf")),
    ],
)
def test_the_optimisers_hyperparameters_are_refused_while_planning(demo, key, value):
    # The schema bounds lr and weight_decay of every entry; NaN and infinity are refused before the bounds.
    demo["architectures"]["mlp"][key] = value
    with pytest.raises(ConfigError, match=rf"architectures\.mlp\.{key}: "):
        check_architectures(load_config(demo))


@pytest.mark.parametrize("i, split", [(1, "val"), (2, "test")])
def test_every_split_needs_a_positive_share(demo, i, split):
    fractions = [0.8, 0.1, 0.1]
    fractions[i], fractions[0] = 0.0, fractions[0] + fractions[i]
    demo["split"]["fractions"] = fractions
    with pytest.raises(
        ConfigError, match=rf"split\.fractions\[{i}\] \({split}\) is 0.0: every split needs cells"
    ):
        load_config(demo)


@pytest.mark.parametrize("name", ["../../escape", "mlp/v2", "a.b", "mlp|linear", "9lives", "with space"])
def test_an_architecture_name_that_could_escape_or_break_a_pattern_is_refused(demo, name):
    # A name becomes results/…/models/<name>/ and joins the rules' wildcard patterns.
    demo["architectures"][name] = dict(demo["architectures"]["linear"])
    with pytest.raises(ConfigError, match=r"architectures: .* does not match"):
        load_config(demo)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("sctab", "hierarchy.source is 'sctab' but training_store.source is not"),
        ("my_matrix.csv", "neither 'ontology', 'sctab' nor the path of a child matrix"),
    ],
)
def test_a_hierarchy_source_without_its_data_is_refused(source, message):
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    demo["hierarchy"] = {"source": source}
    with pytest.raises(ConfigError, match=message):
        load_config(demo)
    demo["hierarchy"] = {"source": "child_matrix.npy"}
    assert load_config(demo)["hierarchy"]["source"] == "child_matrix.npy"


def _differences(a, b, path=""):
    """Dotted keys where two validated configs differ (a key of one block absent from the other counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {d for key in set(a) | set(b) for d in _differences(a.get(key), b.get(key), f"{path}{key}.")}
    return set() if a == b else {path.rstrip(".")}


def test_the_rehearsal_is_the_paper_config_on_a_simulated_census():
    """config/rehearsal.yaml measures config/paper.yaml's rules at the paper's dimensions: it may differ only by the
    census it reads, cheap training, and the keys named here with the reason."""
    differences = _differences(
        load_config(ROOT / "config" / "paper.yaml"), load_config(ROOT / "config" / "rehearsal.yaml")
    )
    allowed = {
        # A simulated census at the paper's dimensions instead of the public one (no network), and its ontology.
        "run",
        "census.source",
        "census.simulate",
        "ontology.source",
        "ontology.sha256",
        # Cheap training: one seed, one epoch, on the CPU (memory is measured, not accuracy).
        "training.seeds",
        "training.max_epochs",
        "training.patience",
        "training.device",
    }
    assert differences <= allowed, sorted(differences - allowed)
    assert "resources" not in {
        d.split(".")[0] for d in differences
    }  # the rehearsal asks for the paper's resources
