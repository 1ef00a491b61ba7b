"""Checks of a running :class:`~tests.e2e.harness.System` shared by the end-to-end tests."""

from __future__ import annotations

import json
import re

from services import registry
from tests.e2e.harness import System
from tests.integration.test_ops_files import exported_series, names_used, ops_files

_HEADER = re.compile(r"^# TYPE (kxfeed_[a-z0-9_]+) (\w+)$", re.M)


def exported_names(body: str) -> set[str]:
    """Series names one /metrics page exports, including labelled metrics with no sample yet."""
    definitions = {name: kind for name, kind in _HEADER.findall(body)}
    out = exported_series(definitions)
    out |= {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("kxfeed_")}
    return out


def ops_names() -> set[str]:
    return set().union(*(names_used(p) for p in ops_files()))


def opt_in_ops_names(worker: str) -> set[str]:
    """The ops/ names of an opt-in worker (``kxfeed_<worker>_*``): a default run does not start
    it, so its own test checks them against its /metrics."""
    return {n for n in ops_names() if n.startswith(f"kxfeed_{worker}_")}


def metrics_report(system: System) -> tuple[dict[str, str], set[str]]:
    """(endpoint -> error for those that did not answer, ops names no endpoint exports)."""
    failed: dict[str, str] = {}
    seen: set[str] = set()
    for name, port in system.metrics_ports().items():
        try:
            body = system.scrape(port)
        except OSError as exc:
            failed[name] = str(exc)
            continue
        if "kxfeed_" not in body:
            failed[name] = "no kxfeed_ metric"
        seen |= exported_names(body)
    absent = set().union(*(opt_in_ops_names(w) for w in registry.OPT_IN))
    return failed, ops_names() - absent - seen


def cli_report(system: System, ticker: str) -> dict[str, str]:
    """Each operator command run against the live system; command -> why it failed (empty: all ok)."""
    bad: dict[str, str] = {}

    def run(label: str, *args: str, check: object = None) -> None:
        r = system.cli(*args)
        if r.returncode != 0:
            bad[label] = f"exit {r.returncode}: {r.stderr[-500:]}"
        elif callable(check):
            why = check(r.stdout)
            if why:
                bad[label] = f"{why}: {r.stdout[-500:]}"

    def status_ok(out: str) -> str:
        workers = {w["worker"]: w["state"] for w in json.loads(out)["workers"]}
        return "" if workers and set(workers.values()) == {"running"} else f"states {workers}"

    def tap_ok(out: str) -> str:
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        return "" if len(lines) == 5 and all(m["kind"] == "tob" for m in lines) else f"{len(lines)} tob lines"

    def book_ok(out: str) -> str:
        b = json.loads(out)
        return "" if b["ticker"] == ticker and b["valid"] else "not the valid book asked for"

    def movers_ok(out: str) -> str:
        return "" if isinstance(json.loads(out), list) and json.loads(out) else "no movers"

    def latest_ok(out: str) -> str:
        return "" if ticker in out else "ticker missing from the answer"

    run("status", "status", "--json", check=status_ok)
    run("tap", "tap", "tob.", "--count", "5", "--timeout", "10", check=tap_ok)
    run("book", "book", ticker, "--depth", "0", "--json", check=book_ok)
    run("scan movers", "scan", "movers", "--json", "--by", "volume", check=movers_ok)
    run("db latest", "db", "latest", ticker, "--json", check=latest_ok)
    return bad
