"""Dependencies run one way: no module of chaoskit imports one that imports it back, even
lazily inside a function, and the library never imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chaoskit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every chaoskit module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(n for n in names if n in modules and n != "chaoskit")
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str], done: set[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*trail, node], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        visit(start, [], done)
    assert cycles == []


def test_the_library_never_imports_the_cli() -> None:
    for name, targets in graph().items():
        if not name.startswith("chaoskit.cli") and name != "chaoskit.__main__":
            assert not any(t.startswith("chaoskit.cli") for t in targets), name
