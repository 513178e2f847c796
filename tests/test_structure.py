"""The shape of the code: the runtime package imports no maintainer script, and modules import each other without
cycles (a submodule reading its own package's __init__ is how packages work, and is not counted)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Dotted name -> file for facelab/ and training/; benchmark scripts by their plain name (how they import)."""
    out = {}
    for top in ("facelab", "training"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    for path in (ROOT / "benchmarks").glob("*.py"):
        out[path.stem] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that `path` imports anywhere (top level or inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        # A submodule importing its own ancestor package's __init__ is not a cycle to remove.
        graph[name] = {t for t in _imports(name, path, known) if not name.startswith(t + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_runtime_package_imports_no_maintainer_script():
    graph = _graph()
    leaks = {m: sorted(t for t in targets if t.startswith("training")) for m, targets in graph.items()
             if m.startswith("facelab")}
    assert {m: t for m, t in leaks.items() if t} == {}
    assert not (ROOT / "facelab" / "attributes" / "training").exists()


def test_no_import_cycles():
    graph = _graph()
    assert "facelab.train.frozen_features" in graph and "fit_fusion" in graph  # the scan sees both areas
    assert _cycles(graph) == []


def test_the_scan_would_see_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
