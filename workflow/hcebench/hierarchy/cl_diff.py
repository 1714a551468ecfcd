"""What changes for a label set between two Cell Ontology releases: the training release's CL and the OOD release's.

A later Census release pins a later CL (Census 2025-11-08: CL v2025-07-30). Its labels are term ids of that
release; the models were trained on ids and a hierarchy from the training release's CL. ``cl_release_diff`` lists,
for each training label, what the newer release changed:

- ``missing``: the id is not a term of the newer release;
- ``obsoleted``: the newer release marks it obsolete (``replaced_by`` / ``consider`` in the detail);
- ``renamed``: same id, another name (the paper's evaluation code matched OOD labels by *name*: a renamed label is
  lost to it; the suite matches by id);
- ``reparented``: the label's ancestors *within the label set* (its live labels) differ (the row of ``R`` that the newer release would
  give this label's subtypes changes; detail: ``+`` gained, ``-`` lost ancestors);
- ``gained_subtypes`` / ``lost_subtypes``: labels of the set that are now / no longer below it (the row of ``R``
  for this label, i.e. which predictions count as correct for its cells, changes).

**Like with like.** The newer release is read from the JSON that ``cellxgene-ontology-guide`` ships
(``CL-ontology-<release>.json.zst``): per term its name, ``deprecated``, ``replaced_by``/``consider`` and
``ancestors``, a map of CL ancestor -> distance built by following ``is_a`` *and* ``part_of`` (BFO:0000050) edges of
the full ``cl.owl``. The JSON does not say which edge led to an ancestor, so its is_a closure cannot be recovered;
the older side is therefore closed over ``is_a`` and ``part_of`` too (``obo_relations``), restricted to CL terms.
For ``cl-basic`` v2022-09-15 (the bundled training CL) that is its is_a closure: the file holds no ``part_of``
relationship (``part_of_edges_old`` in the totals says how many a given OBO holds), so the comparison is the
suite's own ``R`` against the newer release's is_a+part_of closure, and a change in ``reparented`` /
``gained_subtypes`` may come from a new is_a *or* a new part_of edge.

Run it on the real files (the docs' table, ``docs/release_pairs.md``)::

    python -m hcebench.hierarchy.cl_diff --old bundled:v2022-09-15 --new bundled:v2025-07-30 --markdown
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from hcebench.errors import OntologyError
from hcebench.hierarchy.ontology import Ontology, load_ontology, resolve_source

#: Kinds of change, in the order the table lists them.
KINDS = ("missing", "obsoleted", "renamed", "reparented", "gained_subtypes", "lost_subtypes")
#: Columns of the diff table: one row per (label, kind).
DIFF_COLUMNS = ["term_id", "name", "kind", "new_name", "detail", "n_ood_cells"]
#: CL releases shipped as cellxgene-ontology-guide JSON (package data), for ``bundled:<release>``.
BUNDLED_JSON = {"v2025-07-30": "cl-cellxgene_v2025-07-30.json.gz"}
#: The label list scTab trained on (names), the CLI's default.
SCTAB_LABELS = "sctab_cell_types_2023-05-15.txt"
_RELEASE = re.compile(r"v\d{4}-\d{2}-\d{2}")
_PART_OF = ("part_of", "BFO:0000050")


@dataclass
class ReleaseTerms:
    """One CL release as the diff needs it: names, CL ancestors (transitive, irreflexive), obsolete terms."""

    names: dict[str, str]
    ancestors: dict[str, frozenset[str]]
    obsolete: dict[str, tuple[str, ...]] = field(default_factory=dict)  # term -> replaced_by / consider
    release: str = "unknown"
    source: str = ""
    part_of_edges: int = 0  # part_of edges followed (OBO side); the JSON does not tell

    def descendants_in(self, term: str, labels: set[str]) -> set[str]:
        return {t for t in labels if term in self.ancestors.get(t, frozenset())}


def bundled_json_path(release: str) -> Path:
    if release not in BUNDLED_JSON:
        raise OntologyError(
            f"no bundled cellxgene-ontology-guide CL JSON for release {release!r}; shipped: "
            f"{sorted(BUNDLED_JSON)}. Give the path of a CL-ontology-<release>.json(.gz) file instead "
            "(cellxgene-ontology-guide's wheel holds them under cellxgene_ontology_guide/data/)"
        )
    return Path(str(resources.files("hcebench") / "resources" / BUNDLED_JSON[release]))


def read_cellxgene_json(source: str | os.PathLike) -> ReleaseTerms:
    """A CL release from cellxgene-ontology-guide's JSON: ``bundled:<release>``, or a ``.json`` or ``.json.gz`` path
    (the wheel ships ``.json.zst``: decompress it first, ``unzstd CL-ontology-<release>.json.zst``)."""
    spec = str(source)
    path = bundled_json_path(spec.split(":", 1)[1]) if spec.startswith("bundled:") else Path(spec)
    if not path.is_file():
        raise OntologyError(
            f"ontology.ood_source {spec!r} is not a file; give bundled:<release> ({sorted(BUNDLED_JSON)}) or a "
            "cellxgene-ontology-guide CL JSON (CL-ontology-<release>.json or .json.gz)"
        )
    if path.name.endswith(".zst"):
        raise OntologyError(
            f"{path} is zstd-compressed: decompress it first (`unzstd {path.name}`) and "
            "give the .json (or gzip it: .json.gz)"
        )
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise OntologyError(f"{path} is not JSON ({err}); is it a cellxgene-ontology-guide CL file?") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "ancestors" in v for v in data.values()):
        raise OntologyError(
            f"{path}: expected cellxgene-ontology-guide's layout, {{term id: {{label, ancestors, deprecated, ...}}}}"
        )
    names, ancestors, obsolete = {}, {}, {}
    for term, entry in data.items():
        names[term] = str(entry.get("label", term))
        ancestors[term] = frozenset(a for a in entry["ancestors"] if a.startswith("CL:"))
        if entry.get("deprecated"):
            repl = entry.get("replaced_by") or entry.get("consider") or ()
            obsolete[term] = tuple([repl] if isinstance(repl, str) else repl)
    match = _RELEASE.search(path.name)
    return ReleaseTerms(
        names, ancestors, obsolete, release=match.group(0) if match else path.stem, source=str(path)
    )


def obo_relations(path: str | os.PathLike) -> tuple[dict[str, tuple[str, ...]], int]:
    """Direct is_a and part_of parents of every CL term of an OBO file (CL targets only), and how many part_of
    edges among them there are."""
    import pronto

    onto = pronto.Ontology(str(resolve_source(str(path))))
    part_of = next((r for r in onto.relationships() if r.id in _PART_OF or r.name == "part of"), None)
    parents: dict[str, tuple[str, ...]] = {}
    n_part_of = 0
    for term in onto.terms():
        ps = [p.id for p in term.superclasses(distance=1, with_self=False)]
        if part_of is not None:
            extra = [t.id for t in term.relationships.get(part_of, ()) if t.id.startswith("CL:")]
            n_part_of += len(extra)
            ps += extra
        parents[term.id] = tuple(dict.fromkeys(ps))
    return parents, n_part_of


def release_from_obo(ontology: Ontology) -> ReleaseTerms:
    """The older release's side: the ontology's names and obsolete terms, closed over is_a and part_of."""
    parents, n_part_of = obo_relations(ontology.source)
    ancestors: dict[str, frozenset[str]] = {}
    for term in parents:
        seen: set[str] = set()
        queue = deque(parents[term])
        while queue:
            t = queue.popleft()
            if t not in seen:
                seen.add(t)
                queue.extend(parents.get(t, ()))
        ancestors[term] = frozenset(t for t in seen if t.startswith("CL:"))
    return ReleaseTerms(
        dict(ontology.names),
        ancestors,
        dict(ontology.obsolete),
        release=ontology.release,
        source=ontology.source,
        part_of_edges=n_part_of,
    )


def _named(terms, release: ReleaseTerms) -> str:
    return ", ".join(f"{t} {release.names.get(t, '?')}" for t in sorted(terms))


def cl_release_diff(
    labels: list[str], old: ReleaseTerms, new: ReleaseTerms, ood_cells: pd.Series | None = None
) -> tuple[pd.DataFrame, dict]:
    """Per-label changes from ``old`` to ``new`` (module docstring): the table (``DIFF_COLUMNS``) and totals.

    ``ood_cells`` (term id -> OOD cells with that label), when given, fills ``n_ood_cells``: the OOD cells whose
    label is the changed one (0 where none); otherwise the column is empty."""
    # An obsoleted or missing label has no place in the newer hierarchy: it is reported as such, and left out of the
    # structural comparison (else every one would also read as losing all its ancestors).
    label_set = {t for t in labels if t in new.names and t not in new.obsolete}
    rows = []

    def add(term: str, kind: str, detail: str = "") -> None:
        rows.append(
            {
                "term_id": term,
                "name": old.names.get(term, "?"),
                "kind": kind,
                "new_name": new.names.get(term, ""),
                "detail": detail,
            }
        )

    for term in labels:
        if term not in new.names:
            add(term, "missing", f"not a term of CL {new.release}")
            continue
        if term in new.obsolete:
            add(term, "obsoleted", "replaced by: " + (_named(new.obsolete[term], new) or "none given"))
            continue
        if new.names[term] != old.names.get(term):
            add(term, "renamed", f"{old.names.get(term, '?')!r} -> {new.names[term]!r}")
        before = old.ancestors.get(term, frozenset()) & label_set
        after = new.ancestors[term] & label_set
        if before != after:
            detail = "; ".join(
                s
                for s in (
                    "+ " + _named(after - before, new) if after - before else "",
                    "- " + _named(before - after, old) if before - after else "",
                )
                if s
            )
            add(term, "reparented", detail)
        gained = new.descendants_in(term, label_set) - old.descendants_in(term, label_set)
        lost = old.descendants_in(term, label_set) - new.descendants_in(term, label_set)
        if gained:
            add(term, "gained_subtypes", _named(gained, new))
        if lost:
            add(term, "lost_subtypes", _named(lost, old))
    table = pd.DataFrame(rows, columns=DIFF_COLUMNS[:-1])
    table["kind"] = pd.Categorical(table["kind"], categories=KINDS, ordered=True)
    table = table.sort_values(["kind", "name"], kind="stable").reset_index(drop=True)
    table["kind"] = table["kind"].astype(str)
    if ood_cells is not None:
        table["n_ood_cells"] = table["term_id"].map(ood_cells).fillna(0).astype("int64")
    else:
        table["n_ood_cells"] = pd.Series([pd.NA] * len(table), dtype="Int64")
    totals = {
        "old_release": old.release,
        "new_release": new.release,
        "n_labels": len(labels),
        "closure": "is_a + part_of, CL terms only (both sides; module docstring)",
        "part_of_edges_old": old.part_of_edges,
        "labels_changed": int(table["term_id"].nunique()),
        "by_kind": {k: int((table["kind"] == k).sum()) for k in KINDS},
        # Terms the newer release adds below a live label: a newer census may annotate cells with them, which the
        # OOD set scores at their nearest trained ancestor (ood_novel).
        "labels_with_new_cl_subtypes": sum(
            1 for t in label_set if any(t in new.ancestors[x] for x in set(new.names) - set(old.names))
        ),
    }
    if ood_cells is not None:
        totals["ood_cells_by_kind"] = {
            k: int(table.loc[table["kind"] == k, "n_ood_cells"].sum()) for k in KINDS
        }
        totals["ood_cells_with_a_changed_label"] = int(table.drop_duplicates("term_id")["n_ood_cells"].sum())
    return table[DIFF_COLUMNS], totals


def markdown(table: pd.DataFrame, totals: dict) -> str:
    """The diff as the Markdown the docs carry: counts by kind, then one row per change."""
    lines = [
        f"CL {totals['old_release']} -> {totals['new_release']}, {totals['n_labels']} labels, "
        f"{totals['labels_changed']} with a change; closure: {totals['closure']}; part_of edges in the older "
        f"file: {totals['part_of_edges_old']}; labels with CL subtypes new in {totals['new_release']}: "
        f"{totals['labels_with_new_cl_subtypes']}.",
        "",
        "| kind | labels |",
        "|---|---|",
        *(f"| {k} | {n} |" for k, n in totals["by_kind"].items()),
        "",
        "| term | name | kind | detail |",
        "|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.term_id} | {r.name} | {r.kind} | {r.detail.replace('|', '/')} |")
    return "\n".join(lines)


def resolve_labels(path: str | os.PathLike, ontology: Ontology) -> list[str]:
    """Term ids of a label file (one CL id or live term name per line; ``#`` comments and blank lines skipped)."""
    entries = [e.strip() for e in Path(path).read_text().splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    return [e if re.fullmatch(r"CL:\d{7}", e) else ontology.id_of(e) for e in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hcebench.hierarchy.cl_diff",
        description="Labels renamed, obsoleted, re-parented or gaining subtypes between two CL releases.",
    )
    parser.add_argument(
        "--old", default="bundled:v2022-09-15", help="training CL: OBO path or bundled:<release>"
    )
    parser.add_argument("--new", default="bundled:v2025-07-30", help="OOD CL: cellxgene-ontology-guide JSON")
    parser.add_argument(
        "--labels",
        default=str(resources.files("hcebench") / "resources" / SCTAB_LABELS),
        help="label file: one CL id or name (as the old release spells it) per line; default scTab's 164",
    )
    parser.add_argument("--tsv", help="also write the table here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (else a plain table)")
    args = parser.parse_args(argv)
    ontology = load_ontology(args.old)
    labels = resolve_labels(args.labels, ontology)
    table, totals = cl_release_diff(labels, release_from_obo(ontology), read_cellxgene_json(args.new))
    if args.tsv:
        table.to_csv(args.tsv, sep="\t", index=False)
    if args.markdown:
        print(markdown(table, totals))
    else:
        print(json.dumps(totals, indent=1))
        print(table.drop(columns="n_ood_cells").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
