"""The trained label set and its reachability matrix ``R``: what the HCE loss and the hierarchy-corrected scores use.

``R[i, j] = 1`` iff ``j == i`` or label ``j`` is an is_a descendant of label ``i`` (``Ontology.closure`` builds it).
The artifact ``results/<run>/hierarchy/`` is this object on disk: ``labels.tsv``, ``reachability.npy`` and
``hierarchy.json`` with a content hash that every checkpoint and predictions file records.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    def save(self, directory: str | os.PathLike) -> None:
        """Write labels.tsv, reachability.npy and hierarchy.json into ``directory`` (atomically)."""
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
