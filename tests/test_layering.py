"""The package's layout: every module imports alone, no import cycle, the core stands alone.

The graph is read from the source (every ``import``, including those inside functions, and
``importlib.import_module("literal")``), so an import hidden in a function still counts.
Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ._process import user_env

SRC = Path(__file__).parent.parent / "src"
PACKAGE = SRC / "bgservices"
# Layers above the core: the built-in services and the command line. The core is the rest.
OUTER = ("bgservices.services", "bgservices.web", "bgservices.cli", "bgservices._console",
         "bgservices._demo", "bgservices.__main__")  # fmt: skip
FORBIDDEN_IN_CORE = ("bgservices.services", "bgservices.web", "bgservices.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_core(name: str) -> bool:
    return not any(name == outer or name.startswith(outer + ".") for outer in OUTER)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking_only(child):
            yield from (n for stmt in child.orelse for n in (stmt, *_walk(stmt)))
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str) -> set[str]:
    """The bgservices modules that module *name* imports, at any level of its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from . import x` may import the submodule x; otherwise the module itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    assert {"bgservices.service", "bgservices.supervisor"} <= GRAPH["bgservices"]
    assert "bgservices._demo" in GRAPH["bgservices.cli"]  # a function-level import counts
    assert "bgservices.services" in GRAPH["bgservices._demo"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_core_imports_no_outer_layer() -> None:
    leaks = {
        name: sorted(t for t in targets if t.startswith(FORBIDDEN_IN_CORE))
        for name, targets in GRAPH.items()
        if is_core(name)
    }
    assert {name: found for name, found in leaks.items() if found} == {}


def test_cli_and_demo_do_not_import_each_other() -> None:
    assert "bgservices._demo" not in GRAPH["bgservices._console"]
    assert "bgservices.cli" not in GRAPH["bgservices._demo"]
    assert "bgservices.cli" not in GRAPH["bgservices._console"]


IMPORTABLE = sorted(name for name in MODULES if name != "bgservices.__main__")  # runs the CLI


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            stderr=subprocess.PIPE,
            text=True,
            env=user_env(),
        )
        for name in IMPORTABLE
    }
    failed = {}
    for name, run in runs.items():
        _, err = run.communicate(timeout=30)
        if run.returncode:
            failed[name] = err.strip().splitlines()[-1]
    assert failed == {}
    assert len(runs) >= 20
