"""Architecture checks on the source of labelsky, read with ``ast`` (nothing is imported).

* no import cycles among the modules' module-level imports (an import inside a
  function runs at call time, after every module has loaded, so it cannot
  make a load-time cycle);
* the layers ``data`` < ``models`` < ``methods`` < ``catalog`` / ``evaluate`` /
  ``reproduce`` < ``cli``: a lower layer never imports a higher one, at module
  level or inside a function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "labelsky"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "labelsky.catalog.local"
    target: str  # imported labelsky module, e.g. "labelsky.catalog.shards"
    line: int
    module_level: bool  # False inside a function (lazy import) or under ``if TYPE_CHECKING:``


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The labelsky module that importing ``name`` loads: itself, or its closest existing parent."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: list[Import] = []

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:  # relative import
            anchor = module.split(".")
            anchor = anchor[:len(anchor) - node.level + (1 if is_pkg else 0)]
            base = ".".join(anchor + ([base] if base else []))
        # ``from pkg import name``: name may be a submodule of pkg
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]

    def visit(node, module_level: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for t in targets(node):
                if t == PACKAGE or t.startswith(PACKAGE + "."):
                    resolved = _resolve(t, modules)
                    if resolved and resolved != module:
                        found.append(Import(module, resolved, node.lineno, module_level))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            module_level = False
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            lazy = module_level and isinstance(node, ast.If) and field == "body" and _is_type_checking(node.test)
            for child in children:
                if isinstance(child, ast.AST):
                    visit(child, module_level and not lazy)

    visit(tree, True)
    return found


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    modules = _modules()
    return [imp for name, path in modules.items() for imp in _imports(name, path, modules)]


def test_scanner_finds_imports(imports):
    """Guard against a vacuous pass: known imports of both kinds are seen."""
    assert len(_modules()) > 30
    pairs = {(i.source, i.target, i.module_level) for i in imports}
    assert ("labelsky.catalog.local", "labelsky.catalog.shards", True) in pairs
    assert ("labelsky.catalog.writer", "labelsky.catalog.shards", True) in pairs
    # lazy (function-level) imports are found too
    assert ("labelsky.catalog.writer", "labelsky.catalog.local", False) in pairs
    assert ("labelsky.catalog.ray_engine", "labelsky.catalog.shards", False) in pairs
    assert ("labelsky.cli.reproduce", "labelsky.catalog.writer", False) in pairs


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_works():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_level_import_cycles(imports):
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.module_level:
            graph.setdefault(i.source, set()).add(i.target)
    cycle = _find_cycle(graph)
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


# Layer rule: modules of the layer on the left never import those on the right.
FORBIDDEN = {
    "data": {"models", "methods", "catalog", "evaluate", "reproduce", "cli"},
    "models": {"methods", "catalog", "evaluate", "reproduce", "cli"},
    "methods": {"catalog", "reproduce", "cli"},
    "catalog": {"cli"},
    "evaluate": {"cli"},
    "reproduce": {"cli"},
}

# Violations of the layer rule in today's code, tolerated until they are fixed:
# (importing module, imported module). Empty: the code follows the rule today.
# Remove an entry when its import goes away; never add one.
KNOWN_LAYER_VIOLATIONS: set[tuple[str, str]] = set()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FORBIDDEN.keys() | {"cli"} else None


def _layer_violations(imports) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i in imports:
        src, dst = _layer(i.source), _layer(i.target)
        if src and dst and dst in FORBIDDEN.get(src, ()):
            out.setdefault((i.source, i.target), []).append(i.line)
    return out


def test_layer_rule(imports):
    found = _layer_violations(imports)
    new = {k: v for k, v in found.items() if k not in KNOWN_LAYER_VIOLATIONS}
    assert not new, "layer rule broken:\n" + "\n".join(
        f"  {s} imports {t} (line {', '.join(map(str, lines))})" for (s, t), lines in sorted(new.items()))
    fixed = KNOWN_LAYER_VIOLATIONS - found.keys()
    assert not fixed, f"no longer violated, remove from KNOWN_LAYER_VIOLATIONS: {sorted(fixed)}"


def test_layer_rule_detects_violations():
    fake = [Import("labelsky.data.io", "labelsky.models.heads", 3, False),
            Import("labelsky.catalog.writer", "labelsky.evaluate.metrics", 4, True),
            Import("labelsky.data.io", "labelsky.utils", 5, True)]
    assert _layer_violations(fake) == {("labelsky.data.io", "labelsky.models.heads"): [3]}
