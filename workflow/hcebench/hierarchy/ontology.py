"""The Cell Ontology as an is_a graph, and its reflexive transitive closure over a label set.

``load_ontology`` reads an OBO file with pronto (or the bundled CL release) into a plain
``Ontology``: term names, is_a parents and obsolescence, nothing else. ``Ontology.closure``
restricts the is_a partial order to an ordered label set and returns a ``LabelHierarchy`` whose
reachability matrix ``R`` is what the HCE loss and the hierarchy-corrected scoring use:

    R[i, j] = 1  iff  j == i  or  label j is a subtype (is_a descendant) of label i.

is_a is reflexive here, so ``R`` has ones on its diagonal; row ``i`` marks every label that counts
as "an ``i``". Only is_a edges are followed (part_of, develops_from and the other relations of
cl-basic are ignored), as in the paper.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from hcebench.errors import OntologyError
from hcebench.hierarchy.labels import LabelHierarchy

#: The CL release CELLxGENE Census 2023-05-15 pins; shipped as package data (CC-BY 4.0).
BUNDLED_CL_RELEASE = "v2022-09-15"
BUNDLED_PREFIX = "bundled:"


def bundled_obo_path(release: str = BUNDLED_CL_RELEASE) -> Path:
    """Path of a Cell Ontology release shipped with the package."""
    path = Path(str(resources.files("hcebench") / "resources" / f"cl-basic_{release}.obo"))
    if not path.exists():
        shipped = sorted(p.name for p in path.parent.glob("cl-basic_*.obo"))
        raise OntologyError(
            f"no bundled Cell Ontology release {release!r}; shipped: {shipped}. "
            "Set ontology.source to a path or URL of an OBO file instead."
        )
    return path


def resolve_source(source: str) -> Path:
    """Turn an ``ontology.source`` config value into a local OBO path.

    ``bundled:<release>`` (or ``bundled``) names a shipped release; anything else is a file path.
    URLs are downloaded by the workflow's fetch rule first, never here, so this stays offline.
    """
    if source == "bundled":
        return bundled_obo_path()
    if source.startswith(BUNDLED_PREFIX):
        return bundled_obo_path(source[len(BUNDLED_PREFIX) :])
    path = Path(source)
    if not path.exists():
        raise OntologyError(
            f"ontology file {source!r} does not exist; set ontology.source to an OBO path, "
            f"a URL, or 'bundled:{BUNDLED_CL_RELEASE}'"
        )
    return path


@dataclass
class Ontology:
    """An is_a graph: ``parents[t]`` are the direct is_a superclasses of term ``t``."""

    names: dict[str, str]
    parents: dict[str, tuple[str, ...]]
    obsolete: dict[str, tuple[str, ...]] = field(default_factory=dict)  # term -> replaced_by
    release: str = "unknown"
    source: str = ""

    def __post_init__(self) -> None:
        self._ancestor_cache: dict[str, frozenset[str]] = {}
        self._check_acyclic()

    # -- queries ---------------------------------------------------------------------------
    def ancestors(self, term: str, *, reflexive: bool = False) -> frozenset[str]:
        """All is_a superclasses of ``term`` (transitively); ``term`` itself only if ``reflexive``."""
        self._require(term)
        if term not in self._ancestor_cache:
            seen: set[str] = set()
            queue = deque(self.parents.get(term, ()))
            while queue:
                t = queue.popleft()
                if t not in seen:
                    seen.add(t)
                    queue.extend(self.parents.get(t, ()))
            self._ancestor_cache[term] = frozenset(seen)
        anc = self._ancestor_cache[term]
        return anc | {term} if reflexive else anc

    def is_subtype(self, term: str, of: str) -> bool:
        """True iff ``term`` is ``of`` or an is_a descendant of it."""
        return term == of or of in self.ancestors(term)

    def name(self, term: str) -> str:
        self._require(term)
        return self.names[term]

    def id_of(self, name: str) -> str:
        """Term id of a label name (Census obs carry both; ids are preferred)."""
        if not hasattr(self, "_by_name"):
            self._by_name = {n: t for t, n in self.names.items() if t not in self.obsolete}
        try:
            return self._by_name[name]
        except KeyError:
            raise OntologyError(
                f"no live term named {name!r} in Cell Ontology {self.release} ({self.source})"
            ) from None

    # -- closure ---------------------------------------------------------------------------
    def closure(self, labels: Sequence[str]) -> LabelHierarchy:
        """Reflexive transitive closure of is_a restricted to ``labels`` (term ids), in that order."""
        labels = list(labels)
        if len(set(labels)) != len(labels):
            dup = sorted({t for t in labels if labels.count(t) > 1})
            raise OntologyError(f"label set lists terms more than once: {dup}")
        for t in labels:
            self._require(t)
            if t in self.obsolete:
                repl = ", ".join(self.obsolete[t]) or "no replacement given"
                raise OntologyError(
                    f"label {t} ({self.names.get(t, '?')}) is obsolete in Cell Ontology {self.release} "
                    f"(replaced by: {repl}); use the CL release your census pins (ontology.source)"
                )
        k = len(labels)
        index = {t: i for i, t in enumerate(labels)}
        reach = np.eye(k, dtype=np.uint8)
        for j, t in enumerate(labels):
            for a in self.ancestors(t):
                i = index.get(a)
                if i is not None:
                    reach[i, j] = 1
        hierarchy = LabelHierarchy(
            term_ids=tuple(labels),
            names=tuple(self.names[t] for t in labels),
            reachability=reach,
            release=self.release,
        )
        hierarchy.validate()
        return hierarchy

    # -- internals -------------------------------------------------------------------------
    def _require(self, term: str) -> None:
        if term not in self.names:
            raise OntologyError(
                f"unknown term {term!r}: not in Cell Ontology {self.release} ({self.source}). "
                "Check the label's term id, or point ontology.source at the CL release that defines it."
            )

    def _check_acyclic(self) -> None:
        # Iterative three-colour DFS; is_a must be a DAG for the closure to be a partial order.
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self.names, white)
        for root in self.names:
            if colour[root] != white:
                continue
            stack: list[tuple[str, Iterable[str]]] = [(root, iter(self.parents.get(root, ())))]
            colour[root] = grey
            path = [root]
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    colour[node] = black
                    stack.pop()
                    path.pop()
                    continue
                if nxt not in colour:
                    raise OntologyError(
                        f"term {node} has is_a parent {nxt!r} that the ontology does not define ({self.source})"
                    )
                if colour[nxt] == grey:
                    cycle = path[path.index(nxt) :] + [nxt]
                    raise OntologyError(f"is_a cycle in {self.source or 'ontology'}: {' -> '.join(cycle)}")
                if colour[nxt] == white:
                    colour[nxt] = grey
                    path.append(nxt)
                    stack.append((nxt, iter(self.parents.get(nxt, ()))))


def load_ontology(source: str | os.PathLike) -> Ontology:
    """Read an OBO file (path, or ``bundled:<release>``) with pronto into an ``Ontology``."""
    import pronto

    path = resolve_source(str(source))
    try:
        onto = pronto.Ontology(str(path))
    except KeyError as err:  # pronto's answer to a term that is referenced but never defined
        raise OntologyError(
            f"ontology {path} refers to term {err.args[0]!r} (as a parent or relation) but does not define it: the "
            "file is incomplete or cut short; fetch the release again, or point ontology.source at a complete OBO"
        ) from err
    except Exception as err:  # pronto raises a variety of parser errors
        raise OntologyError(f"cannot parse ontology {path}: {err}. Is it an OBO file?") from err
    names: dict[str, str] = {}
    parents: dict[str, tuple[str, ...]] = {}
    obsolete: dict[str, tuple[str, ...]] = {}
    for term in onto.terms():
        names[term.id] = term.name or term.id
        # superclasses(distance=1) yields the term itself first, then its direct is_a parents.
        parents[term.id] = tuple(p.id for p in term.superclasses(distance=1, with_self=False))
        if term.obsolete:
            # replaced_by may name terms of other ontologies that the file does not define.
            obsolete[term.id] = tuple(sorted(term._data().replaced_by))
    for term, ps in parents.items():
        for p in ps:
            if p not in names:
                raise OntologyError(f"{path}: term {term} has is_a parent {p} that the file does not define")
    return Ontology(
        names=names, parents=parents, obsolete=obsolete, release=_release_of(onto, path), source=str(path)
    )


def _release_of(onto, path: Path) -> str:
    """The release tag, e.g. 'v2022-09-15', from data-version 'cl/releases/2022-09-15/cl-basic.owl'."""
    version = onto.metadata.data_version or ""
    for part in version.split("/"):
        if len(part) == 10 and part[4] == "-" and part[7] == "-":
            return f"v{part}"
    return version or path.stem
