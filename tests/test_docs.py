"""The user docs (README.md, docs/*.md) hold nothing a user cannot follow, and every link in them resolves.

A reader has the repository and nothing else: no commit hashes to check out, no issue tracker of the project's
development, no files outside the repository, no "this machine". Relative links must point at files of the
repository and their ``#anchors`` at headings of the linked page (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

#: What a user of a clone cannot follow, with the reason the test prints.
FORBIDDEN = {
    r"\b[0-9a-f]{40}\b": "a full commit hash",
    # 7+ hex characters with a digit and a letter a-f: an abbreviated commit hash (a plain number or word is not).
    r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,12}\b": "an abbreviated commit hash",
    r"(?i)\bissues? ?#?\d+": "an issue number of the project's development",
    r"(?i)\bPR ?#\d+": "a pull-request number",
    r"\.\./shared|/work/|/tmp/hcebench|/home/": "a path outside the repository",
    r"(?i)\bdesign\.md\b": "a design file outside the repository",
    r"(?i)\bthis (machine|project's machine|project's \d-core)": "a machine the reader does not have",
    r"(?i)\bsessions?\b": "the development's sessions",
    r"(?i)\bthis project can search\b": "the development's tools",
}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```.*?```", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = CODE_BLOCK.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_hold_nothing_a_user_cannot_follow(doc):
    text = doc.read_text(encoding="utf-8")
    found = []
    for pattern, why in FORBIDDEN.items():
        for m in re.finditer(pattern, text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{doc.name}:{line}: {m.group(0)!r} ({why})")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    text = CODE_BLOCK.sub("", doc.read_text(encoding="utf-8"))
    broken = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f"{doc.name}: {target} (no file {resolved.relative_to(ROOT)})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{doc.name}: {target} (no heading with anchor #{anchor})")
        elif ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{doc.name}: {target} (outside the repository)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_a_map_of_at_most_300_lines():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, (
        f"README.md has {n} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_the_readme_defines_every_loss_it_reports():
    from hcebench.axes import LOSSES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for loss in LOSSES.values():
        # A definition row of the losses table: "| <display name> |" followed by its formula.
        assert re.search(rf"^\| \*\*{re.escape(loss.display)}\*\* \|", readme, re.M), (
            f"README.md defines no loss {loss.display!r}: add a row to its losses table"
        )
    assert "our reading" in readme, "README.md must say that HACE is our reading of its paper"


def test_the_checks_catch_what_they_are_for(tmp_path):
    bad = "At 11bed72 on this machine (issue #12, ../shared/x, session 3)."
    hits = [why for pattern, why in FORBIDDEN.items() if re.search(pattern, bad)]
    assert len(hits) == 5, hits
    assert not any(re.search(p, "0.0025, 2026-12-06, 19,331 genes, CL:0000003, facade") for p in FORBIDDEN)
    assert slug("Predictions contract: how any method joins the benchmark") == (
        "predictions-contract-how-any-method-joins-the-benchmark"
    )


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [ROOT / "README.md"]
    while todo:
        doc = todo.pop()
        if doc in seen:
            continue
        seen.add(doc)
        for m in LINK.finditer(CODE_BLOCK.sub("", doc.read_text(encoding="utf-8"))):
            path = m.group(1).partition("#")[0]
            if path.endswith(".md") and not re.match(r"[a-z]+:", path):
                target = (doc.parent / path).resolve()
                if target.exists():
                    todo.append(target)
    unreachable = sorted(p.name for p in DOCS if p.resolve() not in seen)
    assert not unreachable, f"no link from README.md leads to {unreachable}"
