"""Cells in and cells out: the census, the selection, and the stores that training and evaluation read.

Owns census access (``census``: one ``open_census`` for the real Census, a local SOMA or the simulated one), the
simulated census (``simulate``), ``.h5ad`` files ingested as a census (``anndata_source``), scTab's cell selection and tech_sample split (``selection``), the store format
and its loader (``store``), building a store from the census (``build``, with ``reads``, ``genes``, ``shuffle`` and
``workers``) or importing scTab's (``sctab``), the OOD set (``ood``), what differs between the training and the
OOD release (``releases``) and the leakage audit (``audit``), streaming from SOMA (``soma_stream``), the
augmentation bank (``augmentation``) and a user's ``.h5ad`` read in chunks for ``hcebench-annotate`` (``h5ad``; its
genes matched in ``genes``). May import the root modules and
``hierarchy``; never models, training, evaluation or report. torch is imported only where a batch is densified, so
the CellTypist environment reads stores without it.
"""
