"""Architecture checks on the source of labelsky, read with ``ast`` (nothing is imported).

* every top-level module and package has a layer, and a module never imports a
  higher layer (at module level or inside a function): ``errors`` / ``outputs``
  / ``utils`` < ``data`` < ``models`` < ``measures`` < ``methods`` <
  ``catalog`` / ``evaluate`` / ``reproduce`` (which never import each other) <
  ``cli`` < the package's front door (``labelsky/__init__``, ``__main__``);
* no package-level import loop at any depth (function-level imports
  included), as ``../shared/tools/package_cycles.py`` reports them, and no
  module-level cycle among modules;
* no module longer than 600 lines;
* building the command line imports no torch (method settings are light).
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


def _packages() -> list[str]:
    """``labelsky`` and every sub-package, dotted."""
    return sorted(_module_name(p.parent / "__init__.py") for p in (SRC / PACKAGE).rglob("__init__.py"))


def _package_graph(imports, package: str) -> dict[str, set[str]]:
    """The import graph among the first-level parts of ``package`` (its modules and sub-packages), every
    import counted, at any depth of the code."""
    depth = package.count(".") + 1
    graph: dict[str, set[str]] = {}
    for i in imports:
        src, dst = i.source.split("."), i.target.split(".")
        if i.source.startswith(package + ".") and i.target.startswith(package + ".") and \
                len(src) > depth and len(dst) > depth and src[depth] != dst[depth]:
            graph.setdefault(src[depth], set()).add(dst[depth])
    return graph


def test_no_package_level_loop_at_any_depth(imports):
    loops = {pkg: cycle for pkg in _packages() if (cycle := _find_cycle(_package_graph(imports, pkg)))}
    assert not loops, "package-level import loops (function-level imports included):\n" + "\n".join(
        f"  {pkg}: {' -> '.join(cycle)}" for pkg, cycle in loops.items())


def test_package_loops_are_found():
    fake = [Import("labelsky.methods.run", "labelsky.evaluate.report", 1, False),
            Import("labelsky.evaluate.report", "labelsky.methods.run", 2, True)]
    assert _find_cycle(_package_graph(fake, "labelsky")) == ["evaluate", "methods", "evaluate"]
    assert _find_cycle(_package_graph(fake, "labelsky.methods")) is None  # one part of methods


# The layers, lowest first; a module may import its own layer and lower ones. "base" may be imported by any.
LAYERS = {
    "errors": 0, "outputs": 0, "utils": 0, "_version": 0,
    "data": 1, "models": 2, "measures": 3, "methods": 4,
    "catalog": 5, "evaluate": 5, "reproduce": 5,
    "cli": 6,
    "__init__": 7, "__main__": 7,  # the front door: labelsky/__init__ (lazy names) and python -m labelsky
}
#: parts of one layer that stay independent of each other
PEERS = {"catalog", "evaluate", "reproduce"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer_violations(imports) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i in imports:
        src, dst = _layer(i.source), _layer(i.target)
        higher = LAYERS[dst] > LAYERS[src]
        peer = src != dst and src in PEERS and dst in PEERS
        if higher or peer:
            out.setdefault((i.source, i.target), []).append(i.line)
    return out


def test_every_top_level_module_has_a_layer():
    parts = {p.name.removesuffix(".py") for p in (SRC / PACKAGE).iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert parts == set(LAYERS), f"without a layer: {sorted(parts - set(LAYERS))}; gone: {sorted(set(LAYERS) - parts)}"


def test_layer_rule(imports):
    found = _layer_violations(imports)
    assert not found, "layer rule broken:\n" + "\n".join(
        f"  {s} imports {t} (line {', '.join(map(str, lines))})" for (s, t), lines in sorted(found.items()))


def test_layer_rule_detects_violations():
    fake = [Import("labelsky.data.io", "labelsky.models.heads", 3, False),
            Import("labelsky.catalog.writer", "labelsky.measures.metrics", 4, True),
            Import("labelsky.data.io", "labelsky.utils", 5, True),
            Import("labelsky.methods.run", "labelsky.evaluate.report", 6, False),
            Import("labelsky.reproduce.khan2019", "labelsky.catalog.writer", 7, False),
            Import("labelsky.methods.registry", "labelsky", 8, False)]
    assert set(_layer_violations(fake)) == {("labelsky.data.io", "labelsky.models.heads"),
                                            ("labelsky.methods.run", "labelsky.evaluate.report"),
                                            ("labelsky.reproduce.khan2019", "labelsky.catalog.writer"),
                                            ("labelsky.methods.registry", "labelsky")}


MAX_LINES = 600


def test_no_module_is_longer_than_600_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


def test_the_command_line_is_built_without_torch():
    """Listing methods and building every generated command imports settings only: ``labelsky surveys`` or
    ``--help`` does not wait for torch."""
    import subprocess
    import sys

    code = ("import sys; from labelsky.cli import build_parser; build_parser(); "
            "from labelsky.methods.registry import list_methods, get_method; "
            "[get_method(n).config_cls for n in list_methods()]; "
            "print(sorted(m for m in ('torch', 'lightning', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
