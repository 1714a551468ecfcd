"""The import graph of the hcebench library, by subpackage: which layer imports which, and any import that breaks
the house rules. ``tests/test_package.py`` asserts it is clean; run it to see the graph::

    python tests/import_graph.py

Rules (docs/library.md, "Map of the library"):

- layers, lowest first: root (``config``, ``errors``, ``io``, ``layout``, ``provenance``, ``snakemake_io``) ←
  ``hierarchy`` ← ``data`` ← ``models`` ← ``evaluation`` ← ``training``, ``external`` ← ``report``;
  a module imports its own subpackage or a lower layer, never a higher one or a sibling of its rank;
- no module imports another module's private (underscore) name;
- imports sit at the top of a module; inside a function only an optional or heavy third-party dependency
  (``OPTIONAL_IMPORTS``), which keeps ``import hcebench.x`` cheap and the CellTypist environment torch-free.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "hcebench"
RANK = {
    "root": 0,
    "hierarchy": 1,
    "data": 2,
    "models": 3,
    "evaluation": 4,
    "training": 5,
    "external": 5,
    "report": 6,
}
#: Third-party modules a function may import on first use: optional, heavy, or only some rules need them.
OPTIONAL_IMPORTS = {
    "anndata",
    "celltypist",
    "cellxgene_census",
    "jsonschema",
    "pronto",
    "tiledbsoma",
    "tiledbsoma_ml",
    "torch.utils.tensorboard",
    # The store densifies batches with torch, but the CellTypist environment reads the store without it.
    "torch",
}


def layer_of(module: str) -> str:
    """``hcebench.data.store`` → ``data``; a root module (``hcebench.io``) → ``root``."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANK:
        return parts[1]
    if len(parts) == 2 and parts[1] in RANK:  # the subpackage itself
        return parts[1]
    return "root"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path
    return out


def imports(path: Path) -> list[tuple[str, list[str], bool, int]]:
    """(imported module, names, inside a function?, line) for every import statement of ``path``."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, [], in_function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    raise ValueError(f"{path}:{child.lineno}: relative import; write hcebench.<module>")
                found.append((child.module or "", [a.name for a in child.names], in_function, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return found


def type_checking_lines(path: Path) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks: imports for annotations only, never executed."""
    lines = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def analyse() -> tuple[Counter, list[str]]:
    """The layer-to-layer edge counts, and every violation of the rules as one line each."""
    mods = modules()
    edges: Counter = Counter()
    problems: list[str] = []
    for name, path in mods.items():
        source_layer = layer_of(name)
        guarded = type_checking_lines(path)
        for target, names, in_function, line in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if target.startswith("hcebench"):
                target_layer = layer_of(target)
                if target_layer != source_layer:
                    edges[(source_layer, target_layer)] += 1
                    if RANK[target_layer] >= RANK[source_layer] and line not in guarded:
                        problems.append(
                            f"{where}: {source_layer} imports {target} ({target_layer}): upward arrow"
                        )
                for imported in names:
                    if imported.startswith("_"):
                        problems.append(f"{where}: imports private name {imported} from {target}")
                if in_function:
                    problems.append(f"{where}: imports {target} inside a function; import it at the top")
            elif (
                in_function
                and target not in OPTIONAL_IMPORTS
                and target.split(".")[0] not in OPTIONAL_IMPORTS
            ):
                problems.append(f"{where}: imports {target} inside a function; only OPTIONAL_IMPORTS may be")
    return edges, problems


def main() -> int:
    edges, problems = analyse()
    layers = sorted(RANK, key=lambda layer: (RANK[layer], layer))
    print("imports between layers (row imports column; count of import statements):")
    width = max(map(len, layers)) + 2
    print(" " * width + "".join(f"{layer:>{width}}" for layer in layers))
    for src in layers:
        print(f"{src:<{width}}" + "".join(f"{edges.get((src, dst), 0) or '.':>{width}}" for dst in layers))
    print(f"{len(problems)} problem(s)")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
