"""The loss axis of the report: what each (architecture, loss) row is, in which order rows go, what they are called.

The grid holds more than CE and HCE: every loss in ``hcebench.layout.LOSSES``; each trained model decoded by
propagation at inference as a loss of its own (``<loss>_prop``: "CE + propagation" sits beside "HCE"); control
methods (architectures ``control_<name>``, loss ``none``) that bracket the scores; and external methods such as
CellTypist. Tables and figures ask this module rather than listing loss names themselves, so a loss added to the
grid shows up everywhere, in a stable place, without touching them.

Row roles:

- ``model``: a trained architecture of the grid, with any loss, decoded or not;
- ``reference``: an external method trained on the same store (``REFERENCE_ARCHITECTURES``), drawn beside the
  models but not part of the loss comparison's family;
- ``control``: a method that learns nothing (``control_random`` and ``control_majority`` bound the scores from
  below, ``control_truth`` from above), drawn as reference lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from hcebench.layout import CONTROL_PREFIX, DECODED_SUFFIX, LOSSES, NO_LOSS

#: The loss every other loss is compared with, within the same architecture.
BASELINE_LOSS = "ce"
#: Comparisons made beside "vs CE", as (baseline, loss): does HCE beat CE decoded by propagation at inference?
DIRECT_COMPARISONS = ((f"ce{DECODED_SUFFIX}", "hce"),)
#: External methods shown as references beside the trained architectures.
REFERENCE_ARCHITECTURES = ("celltypist",)
#: Controls that bound the scores from above; every other control bounds them from below.
UPPER_CONTROLS = ("truth",)

ROLE_MODEL = "model"
ROLE_REFERENCE = "reference"
ROLE_CONTROL = "control"

#: Display names of the losses that have one; any other loss is shown by its name.
LOSS_NAMES = {
    "ce": "CE",
    "hce": "HCE",
    "soft_labels": "soft labels",
    "hxe": "HXE",
    "hace": "HACE",
    NO_LOSS: "no training",
}


def is_decoded(loss: str) -> bool:
    """True for a model decoded by propagation at inference (``ce_prop``)."""
    return loss.endswith(DECODED_SUFFIX) and len(loss) > len(DECODED_SUFFIX)


def base_loss(loss: str) -> str:
    """The loss the model was trained with: ``base_loss("hce_prop") == "hce"``."""
    return loss[: -len(DECODED_SUFFIX)] if is_decoded(loss) else loss


def loss_label(loss: str) -> str:
    """The name a figure shows: ``CE``, ``HCE``, ``CE + prop.`` for CE decoded by propagation."""
    name = LOSS_NAMES.get(base_loss(loss), base_loss(loss))
    return f"{name} + prop." if is_decoded(loss) else name


def is_control(architecture: str) -> bool:
    return architecture.startswith(CONTROL_PREFIX)


def control_name(architecture: str) -> str:
    """``control_random`` → ``random``."""
    return architecture[len(CONTROL_PREFIX) :] if is_control(architecture) else architecture


def control_bound(architecture: str) -> str:
    """``upper`` for a control that scores what a perfect model would (truth), else ``lower``."""
    return "upper" if control_name(architecture) in UPPER_CONTROLS else "lower"


def row_role(architecture: str, loss: str) -> str:
    """``model``, ``reference`` or ``control`` (module docstring)."""
    if is_control(architecture) or loss == NO_LOSS:
        return ROLE_CONTROL
    if architecture in REFERENCE_ARCHITECTURES:
        return ROLE_REFERENCE
    return ROLE_MODEL


def _loss_rank(loss: str) -> tuple:
    base = base_loss(loss)
    if base == NO_LOSS:
        return (2, 0, "", is_decoded(loss))
    if base in LOSSES:
        return (0, LOSSES.index(base), "", is_decoded(loss))
    return (1, 0, base, is_decoded(loss))


def loss_order(losses: Iterable[str]) -> list[str]:
    """Distinct ``losses`` in display order: those of ``layout.LOSSES`` in its order (CE first), then any other
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
