"""The label universe: the Cell Ontology sub-DAG that the simulated cells are labelled from.

Owns ``Universe`` (terms, parents within the set, levels, leaves, ancestors) and ``build_universe``, which
restricts an ontology to ``SimulationConfig.label_universe`` and checks every term is a native cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcebench.data.simulate.vocabulary import NATIVE_CELL
from hcebench.errors import OntologyError
from hcebench.hierarchy.ontology import Ontology


@dataclass
class Universe:
    """The label sub-DAG: terms, their parents within it, levels, and the leaves cells are drawn from."""

    terms: list[str]
    names: dict[str, str]
    parents: dict[str, list[str]]  # direct is_a parents within the universe, primary first
    level: dict[str, int]  # longest is_a path from a root of the universe
    leaves: list[str]
    ancestors: dict[str, list[str]]  # reflexive ancestors within the universe, sorted by level
    n_cl_ancestors: dict[str, int]  # is_a ancestors in the whole of CL (the paper's depth filter)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}


def build_universe(ontology: Ontology, terms: tuple[str, ...] | list[str]) -> Universe:
    """Restrict CL to ``terms``: direct parents are the transitive reduction of is_a within the set."""
    terms = list(dict.fromkeys(terms))
    for t in terms:
        if t not in ontology.names:
            raise OntologyError(
                f"label_universe term {t} is not in Cell Ontology {ontology.release}; fix SimulationConfig.label_universe"
            )
        if t in ontology.obsolete:
            raise OntologyError(f"label_universe term {t} is obsolete in Cell Ontology {ontology.release}")
        if NATIVE_CELL not in ontology.ancestors(t):
            raise OntologyError(
                f"label_universe term {t} ({ontology.names[t]}) is not a descendant of {NATIVE_CELL} "
                "'native cell'; the paper's label set only admits native cells"
            )
    tset = set(terms)
    anc = {t: sorted(ontology.ancestors(t) & tset) for t in terms}
    parents: dict[str, list[str]] = {}
    for t in terms:
        direct = [p for p in anc[t] if not any(p in ontology.ancestors(q) for q in anc[t] if q != p)]
        # Primary parent: the one deepest in CL (the lineage, e.g. CD4 over naive T cell), ties by id.
        parents[t] = sorted(direct, key=lambda p: (-len(ontology.ancestors(p)), p))
    level: dict[str, int] = {}

    def lvl(t: str) -> int:
        if t not in level:
            level[t] = 0 if not parents[t] else 1 + max(lvl(p) for p in parents[t])
        return level[t]

    for t in terms:
        lvl(t)
    has_child = {p for t in terms for p in parents[t]}
    leaves = [t for t in terms if t not in has_child]
    ancestors = {t: sorted(set(anc[t]) | {t}, key=lambda a: (level[a], a)) for t in terms}
    return Universe(
        terms=terms,
        names={t: ontology.names[t] for t in terms},
        parents=parents,
        level=level,
        leaves=leaves,
        ancestors=ancestors,
        n_cl_ancestors={t: len(ontology.ancestors(t)) for t in terms},
    )
