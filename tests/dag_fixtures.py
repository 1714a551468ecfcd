"""The paper's five-node DAG, written out by hand: A→B, A→C, B→D, B→E, C→E (E has two parents).

Index order A=0, B=1, C=2, D=3, E=4. ``R[i, j] = 1`` iff ``j == i`` or ``j`` is a subtype of ``i``:

        A  B  C  D  E
    A   1  1  1  1  1     everything is an A
    B   0  1  0  1  1     D and E are Bs
    C   0  0  1  0  1     E is a C
    D   0  0  0  1  0     leaf
    E   0  0  0  0  1     leaf
"""

from __future__ import annotations

import numpy as np
from hcebench.hierarchy.labels import LabelHierarchy

A, B, C, D, E = range(5)
TERMS = ("A", "B", "C", "D", "E")

R_DAG = np.array(
    [
        [1, 1, 1, 1, 1],
        [0, 1, 0, 1, 1],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ],
    dtype=np.uint8,
)


def five_node_dag() -> LabelHierarchy:
    h = LabelHierarchy(
        term_ids=TERMS,
        names=("cell A", "cell B", "cell C", "cell D", "cell E"),
        reachability=R_DAG.copy(),
        release="test",
    )
    h.validate()
    return h
