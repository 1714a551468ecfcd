"""The Cell Ontology and the trained label set's hierarchy.

Owns reading an OBO release (``ontology``: is_a only, checked acyclic, obsolete terms named), fetching one from a
URL (``fetch``), the label set's reachability matrix ``R`` and its on-disk artifact (``labels``:
``LabelHierarchy``), the Hasse diagram of ``R`` (``hasse``), and the training labels' changes between
two CL releases (``cl_diff``). May import the root modules only (``errors``,
``io``); everything above reads ``R`` from here.
"""
