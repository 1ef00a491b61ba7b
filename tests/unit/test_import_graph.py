"""The import graph: no service imports another service; ``shared`` imports no service.

A worker reaches another worker only over the bus or a control socket. The CLI (and the
supervisor) reach worker classes only through ``services/registry.py``, by module name,
so starting one worker never imports the code of another. Test support lives in
``tests/support`` and production code never imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_WITH_EVERY_SERVICE = {"services.registry"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    return _imports_of(path.read_text(), _module_name(path), path.name == "__init__.py")


def _imports_of(source: str, module_name: str, is_package: bool) -> set[str]:
    """Every module this source imports, at any depth (function-level imports count too)."""
    tree = ast.parse(source)
    here = module_name.split(".")
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _owner(module: str) -> str | None:
    """``services.<name>`` for a module inside a service, else None."""
    parts = module.split(".")
    if parts[0] != "services" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def _files(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def test_no_service_imports_another_service() -> None:
    crossings = []
    for path in _files("services"):
        me = _owner(_module_name(path))
        for module in _imports(path):
            other = _owner(module)
            if other is None or other == me or other in SHARED_WITH_EVERY_SERVICE:
                continue
            if me in SHARED_WITH_EVERY_SERVICE:
                continue  # the registry names worker modules as strings; it imports none
            crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert crossings == []


def test_shared_imports_no_service_and_production_no_test_support() -> None:
    bad = []
    for top in ("shared", "services"):
        for path in _files(top):
            for module in _imports(path):
                if (top == "shared" and module.split(".")[0] == "services") or module.startswith("tests"):
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert bad == []


def test_the_registry_imports_no_worker_module() -> None:
    imported = _imports(ROOT / "services" / "registry.py")
    assert not [m for m in imported if _owner(m) not in (None, "services.registry")]


def test_the_walk_resolves_relative_and_nested_imports() -> None:
    """Else the tests above could pass by not seeing a crossing at all."""
    source = "def f():\n    from ..poller import worker\n    from . import session\n"
    found = _imports_of(source, "services.connector.link", is_package=False)
    assert "services.poller.worker" in found
    assert "services.connector.session" in found
    assert {_owner(m) for m in found} == {"services.poller", "services.connector"}
    assert _owner("shared.bus") is None


def _graph(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` (name -> source) it imports.

    Every import counts, ``if TYPE_CHECKING:`` and function-level ones too: a cycle that only
    the type checker walks is still two modules that cannot be read one without the other.
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
    """
    graph: dict[str, set[str]] = {}
    for name, source in modules.items():
        found = _imports_of(source, name, is_package=False)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle_in_shared_or_services() -> None:
    modules = {
        _module_name(p): p.read_text()
        for top in ("shared", "services")
        for p in _files(top)
        if p.name != "__init__.py"
    }
    assert _cycles(_graph(modules)) == []


def test_the_cycle_check_sees_a_type_checking_only_cycle() -> None:
    modules = {
        "services.x.a": "from services.x.b import B\n",
        "services.x.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from services.x import a\n",
        "services.x.c": "from services.x import a\n",
    }
    assert _cycles(_graph(modules)) == [["services.x.a", "services.x.b"]]
