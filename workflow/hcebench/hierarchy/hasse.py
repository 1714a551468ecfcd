"""The label set's Hasse diagram: the covering pairs of ``R`` and shortest paths along them.

The Hasse diagram (transitive reduction) has an edge ``i — j`` iff ``j`` is a subtype of ``i`` with no label of the
set in between. Fig. 2d draws it; the error-distance metric and hierarchy distances walk it.
"""

from __future__ import annotations

import numpy as np


def hasse_edges(reachability) -> np.ndarray:
    """Covering pairs ``(parent, child)`` of the partial order ``R``: child is a subtype of parent with no label
    between them. Shape ``(n_edges, 2)``, sorted by parent then child."""
    r = np.asarray(reachability).astype(bool)
    strict = r & ~np.eye(r.shape[0], dtype=bool)
    s = strict.astype(np.int64)
    cover = strict & ~((s @ s) > 0)
    return np.argwhere(cover)


def hasse_distances(reachability) -> np.ndarray:
    """All-pairs shortest undirected path lengths in the Hasse diagram; ``inf`` between components."""
    k = np.asarray(reachability).shape[0]
    adj = np.zeros((k, k), dtype=bool)
    for a, b in hasse_edges(reachability):
        adj[a, b] = adj[b, a] = True
    dist = np.full((k, k), np.inf)
    np.fill_diagonal(dist, 0.0)
    frontier = np.eye(k, dtype=bool)
    reached = frontier.copy()
    step = 0
    while frontier.any():  # breadth-first from every source at once: one boolean matrix product per layer
        step += 1
        frontier = ((frontier.astype(np.int64) @ adj.astype(np.int64)) > 0) & ~reached
        dist[frontier] = step
        reached |= frontier
    return dist
