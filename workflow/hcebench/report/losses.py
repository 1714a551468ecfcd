"""The loss axis of the report: what each (architecture, loss) row is, in which order rows go, what they are called.

The grid holds more than CE and HCE: every loss, decoder, control and external method of ``hcebench.axes``; a
row's loss is a loss label (``hcebench.axes.RunKey.label``), so each trained model decoded by propagation is a
row of its own (``ce_prop``: "CE + propagation" sits beside "HCE"). Tables and figures ask this module rather than
listing names themselves, so a loss added to the grid shows up everywhere, in a stable place, without touching
them.

Row roles:

- ``model``: a trained architecture of the grid, with any loss, decoded or not;
- ``reference``: an external method trained on the same store (``REFERENCE_ARCHITECTURES``), drawn beside the
  models but not part of the loss comparison's family;
- ``control``: a method that learns nothing (``control_random`` and ``control_majority`` bound the scores from
  below, ``control_truth`` from above), drawn as reference lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from hcebench.axes import (
    ARGMAX,
    CONTROL_PREFIX,
    CONTROLS,
    DECODERS,
    EXTERNAL_METHODS,
    LOSSES,
    NO_LOSS,
    PAPER_LOSS,
    PROPAGATION,
    split_label,
)
from hcebench.axes import BASELINE_LOSS as BASELINE_LOSS  # the figures and the summary compare with it
from hcebench.axes import (
    loss_label as label_of,
)

#: Comparisons made beside "vs CE", as (baseline, loss): does HCE beat CE decoded by propagation at inference?
DIRECT_COMPARISONS = ((label_of(BASELINE_LOSS, PROPAGATION.name), PAPER_LOSS),)
#: External methods shown as references beside the trained architectures.
REFERENCE_ARCHITECTURES = tuple(EXTERNAL_METHODS)

ROLE_MODEL = "model"
ROLE_REFERENCE = "reference"
ROLE_CONTROL = "control"


def is_decoded(loss: str) -> bool:
    """True for a loss label whose models are decoded by something other than their argmax (``ce_prop``)."""
    return split_label(loss)[1] != ARGMAX.name


def base_loss(loss: str) -> str:
    """The loss the model was trained with: ``base_loss("hce_prop") == "hce"``."""
    return split_label(loss)[0]


def loss_label(loss: str) -> str:
    """The name a figure shows: ``CE``, ``HCE``, ``CE + prop.`` for CE decoded by propagation."""
    base, decoder = split_label(loss)
    known = LOSSES.get(base) or (NO_LOSS if base == NO_LOSS.name else None)
    name = known.display if known else base
    return f"{name}{DECODERS[decoder].display_suffix}"


def is_control(architecture: str) -> bool:
    return architecture.startswith(CONTROL_PREFIX)


def control_name(architecture: str) -> str:
    """``control_random`` → ``random``."""
    return architecture[len(CONTROL_PREFIX) :] if is_control(architecture) else architecture


def control_bound(architecture: str) -> str:
    """``upper`` for a control that scores what a perfect model would (truth), else ``lower``."""
    control = CONTROLS.get(control_name(architecture))
    return control.bound if control else "lower"


def row_role(architecture: str, loss: str) -> str:
    """``model``, ``reference`` or ``control`` (module docstring)."""
    if is_control(architecture) or loss == NO_LOSS.name:
        return ROLE_CONTROL
    if architecture in REFERENCE_ARCHITECTURES:
        return ROLE_REFERENCE
    return ROLE_MODEL


def _loss_rank(loss: str) -> tuple:
    base = base_loss(loss)
    if base == NO_LOSS.name:
        return (2, 0, "", is_decoded(loss))
    if base in LOSSES:
        return (0, list(LOSSES).index(base), "", is_decoded(loss))
    return (1, 0, base, is_decoded(loss))


def loss_order(losses: Iterable[str]) -> list[str]:
    """Distinct ``losses`` in display order: those of ``axes.LOSSES`` in its order (CE first), then any other
    alphabetically, each followed by its propagation-decoded variant; ``none`` last."""
    return sorted(set(losses), key=_loss_rank)


def architecture_order(architectures: Iterable[str]) -> list[str]:
    """Distinct ``architectures`` in display order: trained ones alphabetically, then references, then controls
    (lower bounds before the upper one)."""

    def rank(arch: str) -> tuple:
        if is_control(arch):
            return (2, control_bound(arch) == "upper", arch)
        return (1 if arch in REFERENCE_ARCHITECTURES else 0, False, arch)

    return sorted(set(architectures), key=rank)
