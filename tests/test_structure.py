"""The shape of the code: the runtime package imports no maintainer script, and modules import each other without
cycles (a submodule reading its own package's __init__ is how packages work, and is not counted). Every package
it imports is one pyproject.toml declares (in the core, or in an extra that facelab/extras.py names)."""
from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from facelab.extras import EXTRA_OF_MODULE

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


# -- declared dependencies ---------------------------------------------------------------------------------------
def _third_party_imports() -> dict[str, str]:
    """Top-level module -> the first facelab file importing it, for every module not of the stdlib or facelab."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "facelab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"facelab"}:
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distributions_of(module: str) -> set[str]:
    """The installed distributions that provide `module` (dlib-bin lists no top_level.txt entry for dlib)."""
    names = _packages_distributions().get(module)
    if not names:
        names = [d.metadata["Name"] for d in metadata.distributions()
                 if any(f.parts[0] == module for f in d.files or [])]
    return {canonicalize_name(n) for n in names}


def _closure(requirements: list[str], extras_of_facelab: dict[str, list[str]]) -> set[str]:
    """Every distribution `requirements` bring, following the installed packages' own requirements and extras."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        if key[0] == "facelab":  # facelab[all]: its own extras, read from this checkout's pyproject.toml
            todo += [Requirement(r) for extra in req.extras for r in extras_of_facelab[extra]]
            continue
        try:
            subs = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for sub in map(Requirement, subs):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return {name for name, _ in seen}


def test_every_imported_package_is_declared_and_a_missing_extra_is_named():
    """fasteners (the SQLite store's lock) came only through a dev tool: `library scan` from the wheel crashed with
    ModuleNotFoundError; scipy (the fused models' grouping) was in no extra's message: exit 8, not 10."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = _closure(project["dependencies"], extras)
    everything = _closure(project["dependencies"] + [r for reqs in extras.values() for r in reqs], extras)
    problems = []
    for module, where in sorted(_third_party_imports().items()):
        dists = _distributions_of(module)
        if not dists & everything:
            problems.append(f"{module} ({where}): in no dependency of pyproject.toml, core or extra")
        elif not dists & core and module not in EXTRA_OF_MODULE:
            problems.append(f"{module} ({where}): only in an extra; add it to facelab/extras.py EXTRA_OF_MODULE")
        elif not dists & core and not dists & _closure(extras[EXTRA_OF_MODULE[module]], extras):
            problems.append(f"{module} ({where}): the [{EXTRA_OF_MODULE[module]}] extra named for it does not bring it")
    assert problems == []


def test_no_sql_uses_not_in_with_a_subquery():
    """`x NOT IN (SELECT ...)` is an anti-join in SQLite but, once the subquery outgrows work_mem, a loop over it for
    every row in PostgreSQL: a million-face library's incremental grouping stalled for minutes on one. The SQL of
    the package says NOT EXISTS (SELECT 1 ... WHERE ...) instead."""
    import re

    pattern = re.compile(r"NOT\s+IN\s*\(\s*SELECT", re.IGNORECASE)
    joined = re.compile(r"[\"']\s*\n\s*f?[\"']")  # "... NOT IN "\n "(SELECT ...": literals Python joins
    found = [str(path.relative_to(ROOT)) for path in (ROOT / "facelab").rglob("*.py")
             if pattern.search(joined.sub("", path.read_text()))]
    assert not found, found
