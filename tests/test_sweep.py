"""hcebench.sweep: one config per value of the swept key, each validated before anything runs."""

from pathlib import Path

import pytest
from hcebench.config import load_config
from hcebench.errors import ConfigError
from hcebench.sweep import check_sweep, point_config, point_run

ROOT = Path(__file__).parents[1]


@pytest.fixture
def mechanism():
    return load_config(ROOT / "config" / "mechanism.yaml")


def test_a_point_sets_the_key_and_runs_on_its_own(mechanism):
    point = point_config(mechanism, 0.25)
    assert point["census"]["simulate"]["coarse_study_share"] == 0.25
    assert point["run"] == point_run(mechanism, 0.25) == "mechanism_0.25"
    assert "sweep" not in point
    assert (
        mechanism["census"]["simulate"]["coarse_study_share"] is None
    )  # the sweep's own config is untouched
    check_sweep(mechanism)  # every point of config/mechanism.yaml is a valid config


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
        check_sweep(leaf)
    out_of_range = {**mechanism, "sweep": {"key": "census.simulate.coarse_study_share", "values": [0, 1.5]}}
    with pytest.raises(
        ConfigError, match=r"(?s)coarse_study_share = 1.5: .*1.5 is greater than the maximum of 1"
    ):
        check_sweep(out_of_range)
