"""The errors a user can fix: each message names the config key, file or term at fault, and the fix.

Every layer raises these rather than a bare ``ValueError``, so a rule log ends in one line that says what to
change. They live at the root so that any layer may raise them without importing the layer that defines the
concept (the model registry raises ``ConfigError`` without importing the config loader).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that cannot be run; the message names the key."""


class OntologyError(ValueError):
    """An ontology or label set that cannot be used: the message names the term, file and fix."""


class CensusError(ValueError):
    """A census source or request that cannot be served: the message names the key or file and the fix."""


class ScTabStoreError(ValueError):
    """A scTab store that cannot be imported; the message names the file."""


class PredictionsError(ValueError):
    """A predictions file that breaks the contract: the message names the file, the rows at fault and the fix."""


class CheckpointError(ValueError):
    """A model or training checkpoint that cannot be used: refused (it would run code), truncated, or foreign."""


class TrainingError(RuntimeError):
    """Training that cannot go on (a non-finite loss): stopped with no model written; the message says what to check."""


class DataError(ValueError):
    """Data that cannot be used as it entered: bad counts (NaN, infinite, negative, non-integer), or too many
    all-zero cells or cells whose label the ontology lacks; the message names the dataset and the count."""


class NetworkError(RuntimeError):
    """A remote source (a Census release, an ontology URL) that did not answer within its timeout after a few
    attempts; the message names the source, its config key, and how to run offline."""


class FigureCheckError(RuntimeError):
    """A figure that would print badly: text that overlaps other text or leaves the canvas, type below the
    smallest readable size, or a canvas wider than a page; the message names the figure and each offending text."""
