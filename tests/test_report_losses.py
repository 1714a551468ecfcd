"""hcebench.report.losses: what each (architecture, loss) row is, its name and its place in tables and figures."""

from __future__ import annotations

import pytest
from hcebench.axes import CONTROLS, LOSSES, PROPAGATION, RunKey
from hcebench.axes import loss_label as label_of
from hcebench.report.losses import (
    architecture_order,
    base_loss,
    control_bound,
    control_name,
    is_decoded,
    loss_label,
    loss_order,
    row_role,
)

NO_LOSS = "none"


def decoded(loss: str) -> str:
    return label_of(loss, PROPAGATION.name)


def test_a_runs_loss_label_joins_its_loss_and_decoder_and_parses_back():
    key = RunKey("mlp", "hce", 3, PROPAGATION.name)
    assert key.label == "hce_prop" and RunKey.parse("mlp", "hce_prop", "3") == key
    assert RunKey.parse("mlp", "soft_labels", 0) == RunKey("mlp", "soft_labels", 0)  # argmax: no suffix
    assert RunKey.parse("mlp", "_prop", 0).loss == "_prop"  # a bare suffix decodes nothing


def test_decoded_losses_are_named_after_the_loss_they_decode():
    assert decoded("ce") == "ce_prop" and is_decoded("ce_prop") and base_loss("ce_prop") == "ce"
    assert not is_decoded("hce") and base_loss("hce") == "hce"
    assert not is_decoded("_prop")  # a bare suffix decodes nothing
    assert loss_label("ce") == "CE" and loss_label("hce_prop") == "HCE + prop."
    assert loss_label("focal") == "focal" and loss_label("focal_prop") == "focal + prop."  # unknown: its name


@pytest.mark.parametrize(
    "architecture, loss, role",
    [
        ("mlp", "hce", "model"),
        ("mlp", "ce_prop", "model"),
        ("celltypist", "ce", "reference"),
        (CONTROLS["random"].architecture, NO_LOSS, "control"),
        (CONTROLS["truth"].architecture, NO_LOSS, "control"),
    ],
)
def test_row_roles(architecture, loss, role):
    assert row_role(architecture, loss) == role


def test_controls_bracket_the_scores():
    assert control_name("control_majority") == "majority"
    assert control_bound("control_random") == control_bound("control_majority") == "lower"
    assert control_bound("control_truth") == "upper"


def test_loss_order_puts_ce_first_each_decoding_after_its_loss_and_none_last():
    unknown = ["zeta_loss", "alpha_loss"]
    given = [NO_LOSS, *unknown, *map(decoded, unknown), *reversed(LOSSES), *map(decoded, LOSSES)]
    order = loss_order(given + given)  # duplicates collapse
    expected = [x for loss in LOSSES for x in (loss, decoded(loss))]
    expected += ["alpha_loss", "alpha_loss_prop", "zeta_loss", "zeta_loss_prop", NO_LOSS]
    assert order == expected
    assert order[:2] == ["ce", "ce_prop"]


def test_architecture_order_models_then_references_then_controls():
    given = ["control_truth", "mlp", "celltypist", "control_random", "linear", "control_majority"]
    assert architecture_order(given) == [
        "linear",
        "mlp",
        "celltypist",
        "control_majority",
        "control_random",
        "control_truth",
    ]
