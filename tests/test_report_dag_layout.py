"""hcebench.report.dag_layout: the layered layout of Fig. 2d."""

from __future__ import annotations

import numpy as np
from dag_fixtures import R_DAG, B, C, D, E
from hcebench.report.dag_layout import count_crossings, layered_layout


# -- layout ---------------------------------------------------------------------------------------------
def test_layered_layout_of_five_node_dag():
    lay = layered_layout(R_DAG)
    # longest-path layers: A 0, B 1, C 1, D 2, E 2; edges point down
    assert lay.layer.tolist() == [0, 1, 1, 2, 2]
    for parent, child in lay.edges:
        assert lay.xy[parent, 1] > lay.xy[child, 1]
    # unit spacing within a layer
    assert abs(lay.xy[B, 0] - lay.xy[C, 0]) >= 1 - 1e-9 and abs(lay.xy[D, 0] - lay.xy[E, 0]) >= 1 - 1e-9


def test_layout_removes_avoidable_crossings_and_routes_long_edges():
    # Two chains whose initial order crosses: 0→3, 1→2 ; plus a long edge 0→4 via a layer-1 dummy (0→3→5, 0→4... )
    r = np.eye(6, dtype=np.uint8)
    for a, b in [(0, 3), (1, 2), (3, 5), (0, 5), (2, 4), (1, 4)]:
        r[a, b] = 1
    lay = layered_layout(r)
    order = [sorted(np.flatnonzero(lay.layer == li), key=lambda v: lay.xy[v, 0]) for li in range(3)]
    links = [(int(a), int(b)) for a, b in lay.edges]
    assert count_crossings(order, links) == 0
    assert all(
        len(p) == abs(lay.layer[e[0]] - lay.layer[e[1]]) + 1
        for p, e in zip(lay.paths, lay.edges, strict=True)
    )


def test_layout_of_the_papers_164_labels_is_fast_and_spaced():
    import time
    from importlib import resources

    from hcebench.hierarchy.ontology import load_ontology

    onto = load_ontology("bundled:v2022-09-15")
    names = (
        (resources.files("hcebench") / "resources" / "sctab_cell_types_2023-05-15.txt")
        .read_text()
        .split("\n")
    )
    h = onto.closure([onto.id_of(n.strip()) for n in names if n.strip()])
    assert h.k == 164
    start = time.perf_counter()
    lay = layered_layout(h.reachability)
    assert time.perf_counter() - start < 5
    for li in np.unique(lay.layer):
        xs = np.sort(lay.xy[lay.layer == li, 0])
        assert (np.diff(xs) >= 1 - 1e-9).all()  # no two labels of a layer overlap
    for parent, child in lay.edges:
        assert lay.layer[parent] < lay.layer[child]
