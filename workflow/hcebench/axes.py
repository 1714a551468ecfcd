"""The grid's axes, one table each: losses, decoders, controls and external methods, and the key of one run.

A run of the grid is a ``RunKey``: an architecture trained with a loss and a seed, its predictions decoded by one
decoder. The rules expand the grid from these tables, the library names its files and rows from them, and the
report orders and labels rows by them; nothing else lists a loss, a decoder, a control or an external method.
(Architectures are the config's ``architectures:`` entries, whose models are ``hcebench.models.REGISTRY``.)

Files and tables show a run's loss and decoder together as one *loss label*: the loss's name, with the decoder's
suffix when it is not the model's own argmax (``ce`` decoded by propagation is ``ce_prop``), so "CE + propagation"
sits beside "HCE" in every table. ``RunKey.label`` writes that label and ``RunKey.parse`` reads it back; they are
the only code that joins or splits the two.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- losses ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """A training loss of the grid (``training.losses``): its name and the name figures show."""

    name: str
    display: str


#: The losses a run may train with, in display order: the names of ``hcebench.training.losses.REGISTRY``, kept here
#: because this module may not import torch (``tests/test_layout.py`` checks the two agree).
LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("ce", "CE"),
        Loss("hce", "HCE"),
        Loss("soft_labels", "soft labels"),
        Loss("hxe", "HXE"),
        Loss("hace", "HACE"),
    )
}
#: The loss every other loss is compared with, within the same architecture.
BASELINE_LOSS = "ce"
#: The paper's loss: the one Fig. 2c and 2d compare with the baseline, per cell type.
PAPER_LOSS = "hce"
#: Loss of the control methods, which learn nothing (``evaluation.controls``).
NO_LOSS = Loss("none", "no training")

# -- decoders ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoder:
    """How a model's probabilities become a label: its name, the suffix its loss label carries, and the suffix
    figures show after the loss's display name."""

    name: str
    suffix: str
    display_suffix: str


#: The model's own prediction: the most probable label.
ARGMAX = Decoder("argmax", "", "")
#: Propagation decoding at inference (``evaluation.propagation_decoding``): probabilities summed up the hierarchy, then
#: the deepest label whose mass reaches the threshold chosen on the validation split.
PROPAGATION = Decoder("propagation", "_prop", " + prop.")
DECODERS: dict[str, Decoder] = {d.name: d for d in (ARGMAX, PROPAGATION)}

# -- controls and external methods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """A control method (``evaluation.controls``): it learns nothing and bounds the scores from below or above.
    ``per_seed``: it draws at random, so it runs once per training seed; otherwise once."""

    name: str
    bound: str
    per_seed: bool

    @property
    def architecture(self) -> str:
        """The architecture name its results carry (``control_random``)."""
        return f"{CONTROL_PREFIX}{self.name}"


CONTROL_PREFIX = "control_"
CONTROLS: dict[str, Control] = {
    c.name: c
    for c in (
        Control("random", "lower", per_seed=True),
        Control("majority", "lower", per_seed=False),
        Control("truth", "upper", per_seed=False),
    )
}


@dataclass(frozen=True)
class ExternalMethod:
    """A method trained outside the suite's loop on the same store, drawn as a reference beside the models."""

    name: str
    loss: str


EXTERNAL_METHODS: dict[str, ExternalMethod] = {
    m.name: m for m in (ExternalMethod("celltypist", BASELINE_LOSS),)
}

# -- a run ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunKey:
    """One run of the grid: ``architecture`` trained with ``loss`` and ``seed``, decoded by ``decoder``."""

    architecture: str
    loss: str
    seed: int
    decoder: str = ARGMAX.name

    @property
    def label(self) -> str:
        """The loss label of files and tables: the loss, with the decoder's suffix (``hce_prop``)."""
        return loss_label(self.loss, self.decoder)

    @classmethod
    def parse(cls, architecture: str, label: str, seed: int) -> RunKey:
        """The run a file or table row names by ``architecture``, loss ``label`` and ``seed``."""
        loss, decoder = split_label(label)
        return cls(architecture, loss, int(seed), decoder)


def loss_label(loss: str, decoder: str = ARGMAX.name) -> str:
    """The loss label of ``loss``'s models decoded by ``decoder`` (``loss_label("hce", "propagation") == "hce_prop"``)."""
    return f"{loss}{DECODERS[decoder].suffix}"


def split_label(label: str) -> tuple[str, str]:
    """(loss, decoder) of a loss label: ``split_label("hce_prop") == ("hce", "propagation")``."""
    for decoder in DECODERS.values():
        if decoder.suffix and label.endswith(decoder.suffix) and len(label) > len(decoder.suffix):
            return label[: -len(decoder.suffix)], decoder.name
    return label, ARGMAX.name


def control_of(architecture: str) -> Control | None:
    """The control whose results carry ``architecture`` (``control_random``), or None."""
    if not architecture.startswith(CONTROL_PREFIX):
        return None
    return CONTROLS.get(architecture[len(CONTROL_PREFIX) :])
