"""The connector's pure cores write no metric and read no clock: they return counts and
observations, and the worker (the shell) exports them and owns the clocks.

Checked over the source (AST), for the cores and every connector module they import. Their
log rate limiting (``shared.log.BurstLog``) keeps its own clock; that is logging, not state.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_import_graph import ROOT, _imports_of

CORES = ("session", "sequencing", "badframes", "validity", "subscriptions")
FORBIDDEN_MODULES = ("prometheus_client", "time", "services.connector.metrics")
CLOCK_CALLS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns"}


def _path(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def _closure() -> set[str]:
    """The cores and the connector modules they import, at any depth."""
    todo = [f"services.connector.{c}" for c in CORES]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or not _path(module).exists():
            continue
        seen.add(module)
        imports = _imports_of(_path(module).read_text(), module, False)
        todo.extend(m for m in imports if m.startswith("services.connector."))
    return seen


def test_the_closure_holds_every_core() -> None:
    mods = _closure()
    assert {f"services.connector.{c}" for c in CORES} <= mods
    assert "services.connector.counts" in mods  # the one place their counters live


def test_cores_import_neither_prometheus_nor_a_clock_nor_the_metrics_module() -> None:
    bad: list[str] = []
    for module in sorted(_closure()):
        for imported in _imports_of(_path(module).read_text(), module, False):
            if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN_MODULES):
                bad.append(f"{module} imports {imported}")
    assert bad == []


def test_cores_call_no_clock() -> None:
    bad: list[str] = []
    for module in sorted(_closure()):
        for node in ast.walk(ast.parse(_path(module).read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                if name in CLOCK_CALLS:
                    bad.append(f"{module}:{node.lineno} calls {name}()")
    assert bad == []


def test_the_check_would_catch_a_core_that_reads_the_clock() -> None:
    src = "import time\nfrom .metrics import GAPS\n\ndef f():\n    return time.monotonic()\n"
    imports = _imports_of(src, "services.connector.session", False)
    assert "time" in imports and "services.connector.metrics" in imports
    calls = [n.func.attr for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]  # fmt: skip
    assert "monotonic" in calls
