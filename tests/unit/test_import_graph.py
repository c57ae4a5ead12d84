"""The structure, checked over the import graph: no cycles among project modules, and no
project module imported inside a function (lazy imports are for heavy third-party
libraries only)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gis_platform", "layers", "features", "tile_server", "domains", "indicators",
            "policy_maps")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        base = ROOT / pkg
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(path: Path, module: str, modules: dict[str, Path]):
    """(target module, is_module_level, line) for each import of a project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def top_level(node) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return False
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                return False
        return True

    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # ``from pkg import submodule`` depends on the submodule; ``from mod import name``
            # on the module.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        for target in {_resolve(name, modules) for name in names}:
            if not target or target == module:
                continue
            yield target, top_level(node), node.lineno
            # Importing a.b.c runs a/__init__ and a/b/__init__ first - unless the importer
            # is inside that package already (then the package is being initialised).
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and parent != module and not module.startswith(parent + "."):
                    yield parent, top_level(node), node.lineno


def graph():
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    local: list[str] = []
    for module, path in modules.items():
        for target, top, line in _imports(path, module, modules):
            if top:
                edges[module].add(target)
            else:
                local.append(f"{module}:{line} imports {target} inside a function")
    return edges, local


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        n = stack.pop()
                        on.discard(n)
                        comp.append(n)
                        if n == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycles_among_project_modules():
    edges, _ = graph()
    assert _cycles(edges) == []


def test_no_project_module_is_imported_inside_a_function():
    _, local = graph()
    assert local == []
