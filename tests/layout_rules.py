"""The package's layout rules, read from the source with ``ast`` (nothing is imported).

Rules (issue 14): no module imports an underscore name of another module, except from a private
``_x.py`` module of its own subpackage; no import cycles between our modules, counting imports made
inside functions; at most ~10 modules at the package's top level; our own modules imported at
module top unless a comment gives a measured reason (this one is counted, not enforced).

Run standalone to print the counts for any checkout:
``python tests/layout_rules.py [path/to/harmonyset_hf]``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import of our own code: who imports what, and where."""

    importer: str  # dotted module name
    target: str  # dotted module the import resolves to (the most specific existing module)
    names: tuple[str, ...]  # names taken from the target ("" for a plain ``import x``)
    lineno: int
    in_function: bool
    private: tuple[str, ...] = ()  # underscore names (or private modules) reached by this import
    attribute: bool = False  # ``module._name`` read through an imported module, not an import statement


@dataclass
class Layout:
    """Every module of one package and every import between them."""

    package: str
    modules: dict[str, Path]
    imports: list[Import] = field(default_factory=list)
    unresolved: list[tuple[str, int, str]] = field(default_factory=list)  # (importer, line, name)


def module_name(root: Path, path: Path, package: str) -> str:
    """Dotted name of ``path`` inside the package rooted at ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _package_of(module: str, modules: dict[str, Path]) -> str:
    """The package a module belongs to (itself for an ``__init__``)."""
    if modules[module].name == "__init__.py":
        return module
    return module.rpartition(".")[0]


def _resolve_from(importer: str, is_init: bool, level: int, mod: str | None) -> str:
    if level == 0:
        return mod or ""
    base = importer.split(".")
    if not is_init:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *(mod.split(".") if mod else [])])


def _function_ranges(tree: ast.AST) -> list[tuple[int, int]]:
    return [
        (n.lineno, n.end_lineno or n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    ]


def scan(root: Path) -> Layout:
    """Read every ``.py`` under ``root`` (a package directory) and collect its imports of itself."""
    root = Path(root)
    package = root.name
    modules = {module_name(root, p, package): p for p in sorted(root.rglob("*.py"))}
    layout = Layout(package, modules)
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        funcs = _function_ranges(tree)
        is_init = path.name == "__init__.py"
        module_aliases: dict[str, str] = {}  # local name -> our module it is bound to

        def add(target: str, names: tuple[str, ...], node: ast.stmt, private: tuple[str, ...],
                importer: str = importer, funcs: list[tuple[int, int]] = funcs) -> None:
            inside = any(a <= node.lineno <= b for a, b in funcs)
            layout.imports.append(Import(importer, target, names, node.lineno, inside, private))

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != package:
                        continue
                    target = _longest_module(alias.name, modules)
                    if target != alias.name:
                        layout.unresolved.append((importer, node.lineno, alias.name))
                        continue
                    module_aliases[alias.asname or alias.name] = target
                    add(target, ("",), node, _private_module_parts(importer, target, modules))
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_from(importer, is_init, node.level, node.module)
                if base.split(".")[0] != package:
                    continue
                if base not in modules:
                    layout.unresolved.append((importer, node.lineno, base))
                    continue
                names_from_base: list[str] = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:  # ``from pkg import module``: an import of that module
                        module_aliases[alias.asname or alias.name] = sub
                        add(sub, ("",), node, _private_module_parts(importer, sub, modules))
                    else:
                        names_from_base.append(alias.name)
                if names_from_base:
                    private = _private_module_parts(importer, base, modules)
                    if not _same_package_private_module(importer, base, modules):
                        private += tuple(n for n in names_from_base if _is_private(n))
                    add(base, tuple(names_from_base), node, private)
        # ``mod._name`` on a module bound by an import above is a private import in disguise.
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and _is_private(node.attr)
            ):
                target = module_aliases[node.value.id]
                if target != importer and not _same_package_private_module(importer, target, modules):
                    inside = any(a <= node.lineno <= b for a, b in funcs)
                    layout.imports.append(
                        Import(importer, target, (node.attr,), node.lineno, inside, (node.attr,), attribute=True)
                    )
    return layout


def _longest_module(dotted: str, modules: dict[str, Path]) -> str:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return ""


def _same_package_private_module(importer: str, target: str, modules: dict[str, Path]) -> bool:
    """True when ``target`` is a private ``_x.py`` of the importer's own subpackage."""
    last = target.rpartition(".")[2]
    return _is_private(last) and target.rpartition(".")[0] == _package_of(importer, modules)


def _private_module_parts(importer: str, target: str, modules: dict[str, Path]) -> tuple[str, ...]:
    """Private module names on the path to ``target`` that the importer has no right to."""
    if importer == target or _same_package_private_module(importer, target, modules):
        return ()
    parts = target.split(".")
    return tuple(p for p in parts if _is_private(p))


def private_imports(layout: Layout) -> list[Import]:
    """Imports that take an underscore name (or a private module) across a module boundary."""
    return [i for i in layout.imports if i.private and i.importer != i.target]


def import_graph(layout: Layout) -> dict[str, set[str]]:
    """Module -> modules it imports (function-level imports included; the package root excluded).

    An edge to a parent package's ``__init__`` is kept: importing it runs it.
    """
    graph: dict[str, set[str]] = {m: set() for m in layout.modules}
    for imp in layout.imports:
        if imp.target != imp.importer and imp.target != layout.package:
            graph[imp.importer].add(imp.target)
    return graph


def cycles(layout: Layout) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph = import_graph(layout)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def top_level_modules(layout: Layout) -> list[str]:
    """Plain modules directly in the package (not ``__init__``, not subpackages)."""
    return sorted(
        m for m, p in layout.modules.items() if m.count(".") == 1 and p.name != "__init__.py"
    )


def function_level_imports(layout: Layout) -> list[Import]:
    """Imports of our own modules made inside a function body."""
    return [i for i in layout.imports if i.in_function and not i.attribute and i.importer != i.target]


def counts(layout: Layout) -> dict[str, int]:
    """The four numbers issue 14 asks for, plus the size of the import graph."""
    statements = [i for i in layout.imports if not i.attribute and i.importer != i.target]
    return {
        "modules": len(layout.modules),
        "top_level_modules": len(top_level_modules(layout)),
        "imports_between_own_modules": len(statements),
        "private_cross_imports": sum(len(i.private) for i in private_imports(layout)),
        "cycles": len(cycles(layout)),
        "function_level_imports": len(function_level_imports(layout)),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "harmonyset_hf"
    result = scan(target)
    for key, value in counts(result).items():
        print(f"{key}: {value}")
    for imp in private_imports(result):
        print(f"  private: {imp.importer}:{imp.lineno} -> {imp.target} {list(imp.private)}")
    for comp in cycles(result):
        print(f"  cycle: {' <-> '.join(comp)}")
    for name in result.unresolved:
        print(f"  unresolved: {name}")
