"""Scoring predictions: the predictions contract, prediction itself, and every metric.

Owns the per-cell predictions contract that models and external methods write (``contract``), predicting a split
with a trained model (``predict``), flat and hierarchy-corrected F1 (``metrics``), hierarchical precision/recall,
error distance, accuracy by depth and hop-F1 (``hierarchical_metrics``), calibration, back-off decoding,
propagation decoding with its validation-chosen τ (``propagation``), connectivity, paired statistics (``stats``)
one predictions file to its metrics table (``scoring``), and a trained model applied to a user's ``.h5ad``
(``annotate``, the ``hcebench-annotate`` command). May import root,
``hierarchy``, ``data`` and ``models``; ``contract`` imports no torch, so external methods' environments use it.
"""
