"""The trained label set and its reachability matrix ``R``: what the HCE loss and the hierarchy-corrected scores use.

``R[i, j] = 1`` iff ``j == i`` or label ``j`` is an is_a descendant of label ``i`` (``Ontology.closure`` builds it).
The artifact ``results/<run>/hierarchy/`` is this object on disk: ``labels.tsv``, ``reachability.npy`` and
``hierarchy.json`` with a content hash that every checkpoint and predictions file records.

``R`` has two sources (``hierarchy.source``): the is_a closure of the configured Cell Ontology release (``ontology``,
the default) or scTab's ``cell_type_hierarchy/child_matrix.npy`` (``sctab``, from an imported scTab store, or a path),
the paper's: built from Ubergraph's ``rdfs:subClassOf`` over a mid-2023 CL, so it can differ from the closure of
CL v2022-09-15. ``from_child_matrix`` validates such a matrix; ``source_disagreements`` lists the pairs where two
sources differ, which ``save`` writes as ``sources_disagree.tsv`` when both were at hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hcebench.errors import OntologyError
from hcebench.io import atomic_path, load_array


@dataclass(frozen=True)
class LabelHierarchy:
    """An ordered label set with its reachability matrix.

    ``reachability[i, j] == 1`` iff ``j == i`` or label ``j`` is a subtype of label ``i``; a prediction
    ``j`` for true label ``i`` is hierarchy-correct exactly when ``reachability[i, j] == 1``.
    """

    term_ids: tuple[str, ...]
    names: tuple[str, ...]
    reachability: np.ndarray
    release: str

    @property
    def k(self) -> int:
        return len(self.term_ids)

    @property
    def content_hash(self) -> str:
        """sha256 over the ordered term ids and the matrix: equal hashes mean identical losses."""
        h = hashlib.sha256()
        h.update("\n".join(self.term_ids).encode())
        h.update(np.ascontiguousarray(self.reachability, dtype=np.uint8).tobytes())
        return h.hexdigest()[:16]

    def index(self, term: str) -> int:
        try:
            return self.term_ids.index(term)
        except ValueError:
            raise OntologyError(f"{term} is not in the label set") from None

    def descendants(self, i: int) -> np.ndarray:
        """Indices of labels that count as label ``i`` (itself included)."""
        return np.flatnonzero(self.reachability[i])

    def ancestors(self, j: int) -> np.ndarray:
        """Indices of labels that label ``j`` counts as (itself included)."""
        return np.flatnonzero(self.reachability[:, j])

    def depth(self) -> np.ndarray:
        """Number of strict ancestors of each label within the label set."""
        return self.reachability.sum(axis=0).astype(int) - 1

    def validate(self) -> None:
        """Check ``R`` is a partial order: reflexive, antisymmetric and transitive."""
        r = self.reachability.astype(bool)
        if r.shape != (self.k, self.k):
            raise OntologyError(f"reachability matrix has shape {r.shape}, expected {(self.k, self.k)}")
        if not r.diagonal().all():
            bad = [self.term_ids[i] for i in np.flatnonzero(~r.diagonal())]
            raise OntologyError(f"reachability is not reflexive at {bad}")
        both = r & r.T & ~np.eye(self.k, dtype=bool)
        if both.any():
            i, j = np.argwhere(both)[0]
            raise OntologyError(
                f"reachability is not antisymmetric: {self.term_ids[i]} and {self.term_ids[j]} "
                "are each a subtype of the other (an is_a cycle)"
            )
        two_step = (r.astype(np.int64) @ r.astype(np.int64)) > 0
        if (two_step & ~r).any():
            i, j = np.argwhere(two_step & ~r)[0]
            raise OntologyError(
                f"reachability is not transitive: {self.term_ids[j]} reaches {self.term_ids[i]} in two steps only"
            )

    # -- artifacts -------------------------------------------------------------------------
    def save(
        self,
        directory: str | os.PathLike,
        *,
        source: str = "ontology",
        disagreements: pd.DataFrame | None = None,
    ) -> None:
        """Write labels.tsv, reachability.npy and hierarchy.json into ``directory`` (atomically); with
        ``disagreements`` (``source_disagreements``) also sources_disagree.tsv, and their count in the json.
        ``source`` is recorded in the json when it is not the default."""
        with atomic_path(directory, is_dir=True) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            depth = self.depth()
            lines = ["index\tterm_id\tname\tdepth_in_label_set"]
            lines += [
                f"{i}\t{t}\t{n}\t{depth[i]}"
                for i, (t, n) in enumerate(zip(self.term_ids, self.names, strict=True))
            ]
            (tmp / "labels.tsv").write_text("\n".join(lines) + "\n")
            np.save(tmp / "reachability.npy", self.reachability.astype(np.uint8))
            meta = {
                "cl_release": self.release,
                "reachability_hash": self.content_hash,
                "n_labels": self.k,
                "n_subtype_pairs": int(self.reachability.sum() - self.k),
            }
            if source != "ontology":
                meta["reachability_source"] = source
            if disagreements is not None:
                meta["n_pairs_sources_disagree"] = int(len(disagreements))
                disagreements.to_csv(tmp / "sources_disagree.tsv", sep="\t", index=False)
            (tmp / "hierarchy.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> LabelHierarchy:
        directory = Path(directory)
        rows = [line.split("\t") for line in (directory / "labels.tsv").read_text().splitlines()[1:]]
        meta = json.loads((directory / "hierarchy.json").read_text())
        h = cls(
            term_ids=tuple(r[1] for r in rows),
            names=tuple(r[2] for r in rows),
            reachability=load_array(directory / "reachability.npy"),
            release=meta["cl_release"],
        )
        if h.content_hash != meta["reachability_hash"]:
            raise OntologyError(
                f"{directory}: reachability hash {h.content_hash} differs from the recorded "
                f"{meta['reachability_hash']}; the files were edited by hand. Delete the directory to rebuild it."
            )
        return h


#: ``hierarchy.source`` values besides a path to a child matrix (.npy).
HIERARCHY_SOURCES = ("ontology", "sctab")
#: The ``release`` a hierarchy whose R is scTab's child matrix records (the CL that built it is not named in it).
CHILD_MATRIX_RELEASE = "scTab child_matrix (Ubergraph CL, 2023)"


def from_child_matrix(labels: LabelHierarchy, child: np.ndarray, where: str) -> LabelHierarchy:
    """``labels``' term ids and names with ``R`` = scTab's child matrix ``child`` (``child[i, j] = 1`` iff label
    ``j`` is label ``i`` or a subtype of it, in the same label order), read from ``where`` (named in errors).

    The matrix must be k × k for the k labels, hold only 0 and 1, be reflexive (scTab's has the identity: the HCE
    loss needs ``R[y, y] = 1``) and a partial order (``LabelHierarchy.validate``)."""
    child = np.asarray(child)
    k = labels.k
    if child.ndim != 2 or child.shape != (k, k):
        raise OntologyError(
            f"{where}: the child matrix has shape {child.shape}, but the run has {k} labels; it must be {k} × {k} "
            "in the run's label order (scTab's categorical order: filters.label_order sctab, or an imported store)"
        )
    if not np.isin(child, (0, 1)).all():
        bad = np.unique(child[~np.isin(child, (0, 1))])[:5]
        raise OntologyError(f"{where}: the child matrix holds values other than 0 and 1 ({bad.tolist()})")
    if not (np.diagonal(child) == 1).all():
        missing = [labels.term_ids[i] for i in np.flatnonzero(np.diagonal(child) != 1)][:5]
        raise OntologyError(
            f"{where}: the child matrix is not reflexive (diagonal 0 at {missing}); scTab's holds the identity "
            "(each type counts as itself, which the HCE loss needs): add it or use the file scTab wrote"
        )
    out = LabelHierarchy(labels.term_ids, labels.names, child.astype(np.uint8), CHILD_MATRIX_RELEASE)
    try:
        out.validate()
    except OntologyError as err:
        raise OntologyError(f"{where}: {err}") from None
    return out


def source_disagreements(a: LabelHierarchy, b: LabelHierarchy, names: tuple[str, str]) -> pd.DataFrame:
    """The (ancestor, descendant) label pairs where ``a`` and ``b`` (same labels, same order) disagree: columns
    ``ancestor, ancestor_name, descendant, descendant_name`` and one boolean column per source, named ``names``."""
    if a.term_ids != b.term_ids:
        raise OntologyError(
            "the two hierarchies hold other labels or another label order; compare like with like"
        )
    ra, rb = a.reachability.astype(bool), b.reachability.astype(bool)
    rows = np.argwhere(ra != rb)
    return pd.DataFrame(
        {
            "ancestor": [a.term_ids[i] for i, _ in rows],
            "ancestor_name": [a.names[i] for i, _ in rows],
            "descendant": [a.term_ids[j] for _, j in rows],
            "descendant_name": [a.names[j] for _, j in rows],
            names[0]: [bool(ra[i, j]) for i, j in rows],
            names[1]: [bool(rb[i, j]) for i, j in rows],
        }
    )


def choose_reachability(
    closure: LabelHierarchy, child: np.ndarray | None, where: str | None, source: str
) -> tuple[LabelHierarchy, pd.DataFrame | None]:
    """The run's hierarchy for ``hierarchy.source`` ``source`` and, when a child matrix is at hand, the pairs where it
    and the closure disagree (``source_disagreements``).

    ``closure`` is the is_a closure over the label set; ``child`` scTab's child matrix read from ``where`` (None
    without one). ``source`` ``ontology`` keeps the closure and only compares (the child matrix's identity filled
    in, as the store import records it); any other source makes the validated child matrix R
    (``from_child_matrix``); without a child matrix that is an error naming the fix.
    """
    if child is None:
        if source != "ontology":
            raise OntologyError(
                f"hierarchy.source is {source!r} but {where or 'the imported scTab store'} holds no child matrix: "
                "import scTab's store again with this version (it keeps cell_type_hierarchy/child_matrix.npy) or give "
                "the path of child_matrix.npy"
            )
        return closure, None
    if source == "ontology":
        child = np.asarray(child)
        if child.shape != (closure.k, closure.k):
            raise OntologyError(
                f"{where}: the child matrix has shape {child.shape}, the run has {closure.k} labels"
            )
        filled = ((child != 0) | np.eye(closure.k, dtype=bool)).astype(np.uint8)
        sctab = LabelHierarchy(closure.term_ids, closure.names, filled, CHILD_MATRIX_RELEASE)
        chosen = closure
    else:
        sctab = from_child_matrix(closure, child, str(where))
        chosen = sctab
    return chosen, source_disagreements(closure, sctab, (f"cl_{closure.release}", "sctab_child_matrix"))
