"""Print seproxy's package-level import graph, imports inside functions included, and its cycles.

Run ``python tools/import_graph.py`` from the repository root (``--modules`` for the
file-level graph). Exits 1 when the graph has a cycle, so CI can call it next to the
import-linter contracts (which state which direction each arrow may point).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "seproxy"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """Every seproxy module ``path`` imports, at any depth of its syntax tree
    (``from pkg import mod`` counts as importing ``pkg.mod`` only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}"
                found.add(candidate if candidate in known else prefix)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def group(module: str, depth: int) -> str:
    """The package a module belongs to at ``depth`` (``seproxy.rpc.wire.x`` -> ``rpc.wire``
    for the layer ``seproxy.rpc.wire``, else ``rpc``)."""
    parts = module.split(".")[1:]
    if parts[:2] == ["rpc", "wire"]:
        return "rpc.wire"
    return ".".join(parts[:depth]) or "(top)"


def build(modules_level: bool) -> dict[str, set[str]]:
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in files.items():
        src = name if modules_level else group(name, 1)
        graph.setdefault(src, set())
        for target in imported_modules(path, name, set(files)):
            # "from pkg import name" names a module only when the file exists
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]
            if target not in files:
                continue
            dst = target if modules_level else group(target, 1)
            if dst != src:
                graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="file-level graph instead of packages")
    args = parser.parse_args(argv)
    graph = build(args.modules)
    for node in sorted(graph):
        print(f"{node} -> {', '.join(sorted(graph[node])) or '(nothing)'}")
    found = cycles(graph)
    if found:
        for component in found:
            print("CYCLE: " + " <-> ".join(component))
        return 1
    print("no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
