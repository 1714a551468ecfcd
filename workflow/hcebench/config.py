"""Run configuration: JSON-schema validation with defaults, plus the checks a schema cannot express.

The Snakefile validates with ``snakemake.utils.validate`` against the same schema and then calls
``check_config``; scripts and tests call ``load_config``. Errors name the offending key and the fix.
Each architecture entry's hyperparameters are checked against its model's dataclass by
``hcebench.models.check_architectures`` (the model layer sits above this one), which the Snakefile calls next.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hcebench.axes import LOSSES
from hcebench.errors import ConfigError
from hcebench.layout import STORE_SPLITS

SCHEMA_PATH = Path(str(resources.files("hcebench") / "schemas" / "config.schema.yaml"))


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML keeps the last one, so
    the first value would be silently lost)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(
                    f"{self.name}, line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same "
                    f"block (first on line {seen[key] + 1}); YAML would keep only the last value: remove one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | os.PathLike) -> dict:
    """A config file's contents, with a key repeated in one block refused (``UniqueKeyLoader``)."""
    path = Path(path)
    with open(path) as f:
        loader = UniqueKeyLoader(f)
        loader.name = str(path)
        try:
            return loader.get_single_data() or {}
        finally:
            loader.dispose()


def check_config_files(paths) -> None:
    """Read every config file the run uses (Snakemake's ``workflow.configfiles``) with ``read_config_file``:
    Snakemake's own loader keeps the last of a repeated key without a word."""
    for path in paths:
        if Path(path).exists():
            read_config_file(path)


def schema_defaults(section: str) -> dict:
    """The defaults the schema declares for the keys of config section ``section`` (e.g. ``filters``)."""
    properties = load_schema()["properties"][section].get("properties", {})
    return {key: copy.deepcopy(sub["default"]) for key, sub in properties.items() if "default" in sub}


def load_config(config: str | os.PathLike | dict) -> dict:
    """Read (if a path), fill defaults, validate against the schema and check cross-key rules."""
    if not isinstance(config, dict):
        path = Path(config)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        config = read_config_file(path)
    config = copy.deepcopy(config)
    validate_schema(config)
    check_config(config)
    return config


def validate_schema(config: dict) -> None:
    """Validate in place, filling every default the schema declares (nested objects included).

    Every number must be finite first: YAML's ``.nan`` and ``.inf`` pass a JSON schema's bounds (a comparison with
    NaN is false), and a job that rejects one later has already had its finished outputs deleted by Snakemake.
    """
    import jsonschema

    bad = non_finite_numbers(config)
    if bad:
        lines = [f"  {key}: {value!r} is not a finite number" for key, value in bad]
        raise ConfigError(
            "config holds numbers that are not finite (YAML .nan / .inf); give finite values:\n"
            + "\n".join(lines)
        )

    validator_cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(validator_cls(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ConfigError(f"config does not match the schema ({SCHEMA_PATH.name}):\n" + "\n".join(lines))


def non_finite_numbers(value: Any, key: str = "") -> list[tuple[str, float]]:
    """(dotted key, value) of every NaN or infinite float in ``value``, a loaded config or part of it."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(key or "<top level>", value)]
    if isinstance(value, dict):
        return [
            bad for k, v in value.items() for bad in non_finite_numbers(v, f"{key}.{k}" if key else str(k))
        ]
    if isinstance(value, list | tuple):
        return [bad for i, v in enumerate(value) for bad in non_finite_numbers(v, f"{key}[{i}]")]
    return []


def check_config(config: dict) -> None:
    """Rules that span keys: fractions sum to 1, sources have what they need, names exist."""
    census = config["census"]
    if census["source"] == "simulated" and "simulate" not in census:
        raise ConfigError(
            "census.source is 'simulated' but census.simulate is missing: add its settings block"
        )
    if census["source"] == "local":
        for key in ("train_uri", "ood_uri"):
            if not census.get(key):
                raise ConfigError(f"census.source is 'local' but census.{key} is not set: give the SOMA path")
    if census["source"] == "anndata":
        check_anndata(census)
    store = config["training_store"]
    if store["source"] == "sctab" and not store["sctab_path"]:
        raise ConfigError(
            "training_store.source is 'sctab' but training_store.sctab_path is not set: "
            "give the directory of scTab's store"
        )
    hierarchy = config["hierarchy"]["source"]
    if hierarchy == "sctab" and store["source"] != "sctab":
        raise ConfigError(
            "hierarchy.source is 'sctab' but training_store.source is not: scTab's child matrix comes with its "
            "store; import it (training_store.source: sctab) or give the path of child_matrix.npy"
        )
    if hierarchy not in ("ontology", "sctab") and not hierarchy.endswith(".npy"):
        raise ConfigError(
            f"hierarchy.source {hierarchy!r} is neither 'ontology', 'sctab' nor the path of a child matrix (.npy)"
        )
    if config["training"]["data_source"] == "tiledbsoma_ml" and store["source"] == "sctab":
        raise ConfigError(
            "training.data_source is 'tiledbsoma_ml' but training_store.source is 'sctab': scTab's "
            "store has no census to stream from; set training.data_source to 'store'"
        )
    source = config["ontology"]["source"]
    if source.startswith("http://"):
        raise ConfigError(
            f"ontology.source {source!r} is plain http: a file altered in transit would become the hierarchy; "
            "use https:// (and pin ontology.sha256) or a local path"
        )
    fractions = config["split"]["fractions"]
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split.fractions {fractions} sum to {sum(fractions):.4f}; they must sum to 1")
    for i, (split, fraction) in enumerate(zip(STORE_SPLITS, fractions, strict=False)):
        if fraction <= 0:
            raise ConfigError(
                f"split.fractions[{i}] ({split}) is {fraction}: every split needs cells (training, early stopping "
                "and the in-distribution test read one each); give it a positive share"
            )
    check_losses(config)
    check_annotate(config)
    archs = config["architectures"]
    focus = config["evaluation"]["focus_architecture"]
    if focus not in archs:
        raise ConfigError(
            f"evaluation.focus_architecture is {focus!r}, which is not under architectures "
            f"({', '.join(archs)}): name one of them"
        )


def check_annotate(config: dict) -> None:
    """``annotate.model`` names a trained model of the grid when ``annotate.inputs`` are given, its back-off
    threshold has a source, and no two inputs share a file name (their outputs would collide)."""
    block = config["annotate"]
    if not block["inputs"]:
        return
    model = block["model"]
    if not model:
        raise ConfigError(
            "annotate.inputs are given but annotate.model is not: name the model as <architecture>/<loss>/<seed> "
            "of this run (e.g. the best row of summary.tsv)"
        )
    arch, loss, seed = model.split("/")
    archs = config["architectures"]
    losses = (archs.get(arch) or {}).get("losses") or config["training"]["losses"]
    if arch not in archs or loss not in losses or int(seed) not in config["training"]["seeds"]:
        raise ConfigError(
            f"annotate.model {model!r} is not a model of this run: choose an architecture of architectures "
            f"({', '.join(archs)}), one of its losses and a seed of training.seeds ({config['training']['seeds']})"
        )
    if block["tau"] is None and not config["evaluation"]["propagation_decoding"]:
        raise ConfigError(
            "annotate.tau is null, which takes the propagation decoder's threshold, but "
            "evaluation.propagation_decoding is false: turn it on or give annotate.tau"
        )
    names = [Path(p).name for p in block["inputs"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"annotate.inputs share file names {repeated}: their outputs would collide; rename them"
        )


def check_anndata(census: dict) -> None:
    """``census.source: anndata`` names datasets of both releases, each id once, and two distinct release names."""
    datasets = census["anndata"]["datasets"]
    if not datasets:
        raise ConfigError(
            "census.source is 'anndata' but census.anndata.datasets is empty: list the .h5ad files (id, path, "
            "release: train or ood); docs/real_data.md"
        )
    ids = [d["id"] for d in datasets]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(
            f"census.anndata.datasets: id(s) {repeated} appear more than once; give each file its own id"
        )
    releases = set()
    for i, entry in enumerate(datasets):
        release = entry["release"]
        values = set(release.values()) if isinstance(release, dict) else {release}
        if not values <= {"train", "ood"} or (isinstance(release, dict) and not entry.get("dataset_column")):
            raise ConfigError(
                f"census.anndata.datasets[{i}] ({entry['id']}).release is {release!r}: give train or ood (a mapping "
                "of values to train/ood only with dataset_column)"
            )
        releases |= values
    if releases != {"train", "ood"}:
        missing = sorted({"train", "ood"} - releases)
        raise ConfigError(
            f"census.anndata.datasets: no dataset has release {missing}: the benchmark trains on the train datasets "
            "and tests out of distribution on the ood ones, so it needs both"
        )
    if census["train_release"] == census["ood_release"]:
        raise ConfigError(
            "census.train_release and census.ood_release must differ: each names one ingested release"
        )


def check_losses(config: dict) -> None:
    """Loss names (``training.losses``, the ``losses:`` block) are in ``hcebench.axes.LOSSES``, and each ``losses:``
    entry sets only hyperparameters the schema lists for that loss.

    The schema lists them as the loss registry defines them (``hcebench.training.losses``, which a test compares;
    this module may not import it), and leaves unknown names to this check so the error can name the choices.
    """
    unknown = [name for name in config["training"]["losses"] if name not in LOSSES]
    if unknown:
        raise ConfigError(f"training.losses: unknown loss(es) {unknown}; choose from {list(LOSSES)}")
    declared = load_schema()["properties"]["losses"]["properties"]
    for name, settings in (config.get("losses") or {}).items():
        if name not in LOSSES:
            raise ConfigError(f"losses.{name}: unknown loss; choose from {list(LOSSES)}")
        allowed = sorted(declared.get(name, {}).get("properties", {}))
        extra = sorted(set(settings or {}) - set(allowed))
        if extra:
            choices = allowed or f"none ({declared.get(name, {}).get('description', 'not in the schema')})"
            raise ConfigError(f"losses.{name}: unknown hyperparameter(s) {extra}; {name} accepts {choices}")


def _with_defaults(validator_cls: Any) -> Any:
    """A validator that writes each property's ``default`` into the instance before validating it."""
    import jsonschema

    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def check_field_types(cls: type, values: dict[str, Any], where: str) -> None:
    """Check ``values`` against the annotated field types of dataclass ``cls`` before anything is built from them.

    A dataclass does not check types, so ``n_layers: "8"`` would build a model entry and fail (or silently misbehave)
    inside a training job; this names the key, the value and the type wanted instead. Numbers may be ints where a
    float is wanted, lists where a tuple is; annotations this does not understand accept anything.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in values and not _fits(values[field.name], hints.get(field.name, Any)):
            raise ConfigError(
                f"{where}.{field.name}: {values[field.name]!r} is not of type {_type_name(hints[field.name])}; "
                f"set a value of that type ({cls.__module__}.{cls.__name__})"
            )


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return all(_fits(v, args[0]) for v in value) if args else True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
