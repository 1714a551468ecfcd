"""hcebench.hierarchy.hasse: the Hasse diagram of the label set."""

from __future__ import annotations

from dag_fixtures import R_DAG, A, B, C, D, E
from hcebench.hierarchy.hasse import hasse_edges


# -- hierarchical precision / recall / F1 ---------------------------------------------------------------
def test_hasse_edges_of_five_node_dag():
    assert hasse_edges(R_DAG).tolist() == [[A, B], [A, C], [B, D], [B, E], [C, E]]
