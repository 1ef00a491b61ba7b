"""ops/: the dashboard and alerts read only metrics the code exports; Prometheus scrapes every
worker's port; promtool and systemd-analyze accept the files (where those tools are installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services import registry
from shared.config import Config
from tests.support.procs import ROOT
from tests.support.systemd import assert_units_verify

OPS = ROOT / "ops"
PROMETHEUS = OPS / "prometheus"
SYSTEMD = OPS / "systemd"
DASHBOARD = OPS / "grafana" / "kxfeed-dashboard.json"

# A metric definition: Counter("kxfeed_x_total", ...), Gauge(...), Histogram(...), and the
# project's own histogram collectors (FastHistogram(...)); the name may sit on the next line.
_DEFINITION = re.compile(r"\b(Counter|Gauge|\w*Histogram|Summary)\(\s*[\"'](kxfeed_[a-z0-9_]+)[\"']")
_USE = re.compile(r"\bkxfeed_[a-z0-9_]+")


def metric_definitions(roots: list[Path]) -> dict[str, str]:
    """name -> type, from every Counter/Gauge/Histogram/Summary definition in the code."""
    out: dict[str, str] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            for kind, name in _DEFINITION.findall(path.read_text()):
                out[name] = "histogram" if kind.endswith("Histogram") else kind.lower()
    return out


def exported_series(definitions: dict[str, str]) -> set[str]:
    """The series names Prometheus sees for those definitions (prometheus_client's rules)."""
    out: set[str] = set()
    for name, kind in definitions.items():
        if kind == "counter":
            base = name.removesuffix("_total")
            out |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            out |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        elif kind == "summary":
            out |= {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            out.add(name)
    return out


def names_used(path: Path) -> set[str]:
    return set(_USE.findall(path.read_text()))


def unknown_names(paths: list[Path], exported: set[str]) -> dict[str, set[str]]:
    return {p.name: bad for p in paths if (bad := names_used(p) - exported)}


def ops_files() -> list[Path]:
    return [
        DASHBOARD,
        PROMETHEUS / "alerts.yml",
        PROMETHEUS / "prometheus.yml",
        PROMETHEUS / "alerts_test.yml",
    ]


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_series(metric_definitions([ROOT / "shared", ROOT / "services"]))


def test_code_defines_the_supervisor_metrics(exported: set[str]) -> None:
    for name in (
        "kxfeed_worker_up",
        "kxfeed_worker_restarts_total",
        "kxfeed_worker_uptime_seconds",
        "kxfeed_worker_last_exit_code",
    ):
        assert name in exported


def test_ops_use_only_metrics_the_code_exports(exported: set[str]) -> None:
    used = set().union(*(names_used(p) for p in ops_files()))
    assert len(used) >= 10, f"the ops files should read the metrics: found only {sorted(used)}"
    assert unknown_names(ops_files(), exported) == {}


def test_the_name_check_catches_a_misspelt_metric(tmp_path: Path, exported: set[str]) -> None:
    bad = tmp_path / "alerts.yml"
    bad.write_text("expr: rate(kxfeed_ws_mesages_total[1m]) > 0 and kxfeed_worker_up == 0\n")
    assert unknown_names([bad], exported) == {"alerts.yml": {"kxfeed_ws_mesages_total"}}


def test_metric_collection_sees_multiline_and_histogram_definitions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        'A = Counter(\n    "kxfeed_a_total", "doc"\n)\nB = FastHistogram("kxfeed_b_seconds", "doc")\n'
        "C = Gauge('kxfeed_c', 'doc')\n"
    )
    defs = metric_definitions([tmp_path])
    assert defs == {"kxfeed_a_total": "counter", "kxfeed_b_seconds": "histogram", "kxfeed_c": "gauge"}
    series = exported_series(defs)
    assert {"kxfeed_a_total", "kxfeed_b_seconds_bucket", "kxfeed_b_seconds_count", "kxfeed_c"} <= series


def test_prometheus_scrapes_every_worker_port() -> None:
    conf = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in conf["scrape_configs"] if j["job_name"] == "kxfeed"]
    scraped = {}
    for group in job["static_configs"]:
        (target,) = group["targets"]
        scraped[group["labels"]["process"]] = int(target.rsplit(":", 1)[1])
    defaults = Config()
    expected = {"supervisor": defaults.supervisor.metrics_port}
    expected |= {name: defaults.worker(name).metrics_port for name in registry.WORKER_MODULES}
    assert scraped == expected
    assert "worker" not in {k for g in job["static_configs"] for k in g["labels"]}, (
        "a target label 'worker' would clash with the metrics' own worker label"
    )


def test_alerts_cover_the_issue_list() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    wanted = {
        "feed down": "kxfeed_ws_connected",
        "no messages": "kxfeed_ws_messages_total",
        "gap rate": "kxfeed_ws_gaps_total",
        "message age": "kxfeed_ws_message_age_seconds_bucket",
        "restarts": "kxfeed_worker_restarts_total",
        "book invalid too long": "kxfeed_orderbook_books",
        "worker down": "kxfeed_worker_up",
        "worker parked": "kxfeed_worker_parked",
        "writer lag": "kxfeed_writer_lag_seconds",
        "gaps open": "kxfeed_gapfill_open_gaps",
        "gap recovery duration": "kxfeed_gapfill_recovery_seconds_bucket",
        "gaps recovered by method": "kxfeed_gapfill_gaps_recovered_total",
        "poller fallback": "kxfeed_poller_fallback_active",
        "REST 429s": 'kxfeed_rest_requests_total{status="429"}',
        "REST retries": "kxfeed_rest_retries_total",
        "arb breaker": "kxfeed_arb_breaker_open",
        "arb detection latency": "kxfeed_arb_detection_latency_seconds_bucket",
    }
    for what, metric in wanted.items():
        assert any(metric in expr for expr in alerts.values()), f"no alert for {what} ({metric})"


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 10
    for p in graphs:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"h", "w", "x", "y"} <= set(p["gridPos"])
    text = DASHBOARD.read_text()
    for metric in (
        "kxfeed_worker_uptime_seconds",
        "kxfeed_ws_messages_total",
        "kxfeed_ws_gaps_total",
        "kxfeed_worker_restarts_total",
        "kxfeed_writer_lag_seconds",
        "kxfeed_gapfill_gaps_recovered_total",
        "kxfeed_gapfill_open_gaps",
        "kxfeed_gapfill_recovery_seconds_bucket",
        "kxfeed_poller_fallback_active",
        'kxfeed_rest_requests_total{status=\\"429\\"}',
        "kxfeed_rest_retries_total",
        "kxfeed_arb_signals_total",
        "kxfeed_arb_detection_latency_seconds_bucket",
    ):
        assert metric in text
    stages = re.findall(r"histogram_quantile\([^,]+, sum by \(le\) \(rate\((kxfeed_\w+)_bucket", text)
    assert len(set(stages)) >= 3, f"latency percentiles per stage: {sorted(set(stages))}"


# ---- external tools ---------------------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus / systemd)")
    return path


def test_promtool_check_config_and_rules() -> None:
    promtool = _tool("promtool")
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        out = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_alert_unit_tests() -> None:
    promtool = _tool("promtool")
    out = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _installed_units(tmp_path: Path) -> Path:
    """The units as they would be installed, with kxfeed at this checkout instead of /opt/kxfeed."""
    dest = tmp_path / "units"
    shutil.copytree(SYSTEMD, dest)
    for unit in [*dest.glob("*.service"), *dest.glob("*.target")]:
        unit.write_text(unit.read_text().replace("/opt/kxfeed", str(ROOT)))
    return dest


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    units = _installed_units(tmp_path)
    assert_units_verify(tool, units)


def test_systemd_units_are_hardened_and_restart_on_failure() -> None:
    services = [
        SYSTEMD / "kxfeed-bus.service",
        SYSTEMD / "kxfeed-worker@.service",
        SYSTEMD / "kxfeed.service",
    ]
    for unit in services:
        text = unit.read_text()
        for line in (
            "Restart=on-failure",
            "User=kxfeed",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "EnvironmentFile=-/etc/kxfeed/kxfeed.env",
        ):
            assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{unit.name}: missing {line}"
    # A configuration error is not restarted in a loop (workers exit 78, kxfeed up exits 2).
    for unit, code in (("kxfeed-bus.service", 78), ("kxfeed-worker@.service", 78), ("kxfeed.service", 2)):
        assert re.search(rf"^RestartPreventExitStatus={code}$", (SYSTEMD / unit).read_text(), re.M), unit
    target = (SYSTEMD / "kxfeed.target").read_text()
    assert "kxfeed-bus.service" in target and "kxfeed-worker@" in target
    assert "KALSHI_KEY_ID=" in (SYSTEMD / "kxfeed.env.example").read_text()


def _after(name: str) -> set[str]:
    """The units a worker's drop-in orders it after."""
    conf = SYSTEMD / f"kxfeed-worker@{name}.service.d" / "order.conf"
    assert conf.exists(), f"no ordering drop-in for {name}"
    lines = [line for line in conf.read_text().splitlines() if line.startswith("After=")]
    return {unit for line in lines for unit in line.removeprefix("After=").split()}


def test_systemd_order_follows_the_registry_start_order() -> None:
    order = list(registry.WORKER_MODULES)
    assert order[0] == "bus"
    unit = {
        name: "kxfeed-bus.service" if name == "bus" else f"kxfeed-worker@{name}.service" for name in order
    }
    for i, name in enumerate(order[1:], start=1):
        after = _after(name)
        assert {unit[w] for w in order[:i]} <= after, f"{name} must start after {order[:i]}"
        assert not after & {unit[w] for w in order[i + 1 :]}, f"{name} ordered after a later worker"
    wants = re.search(r"^Wants=(.*)$", (SYSTEMD / "kxfeed.target").read_text(), re.M)
    assert wants is not None
    for name in order:
        # The simulator is the embedded default only, not wanted in production; an opt-in
        # worker (the JetStream bridge) is enabled by hand where it is configured.
        if name != "sim" and name not in registry.OPT_IN:
            assert unit[name] in wants.group(1).split()
    readme = (OPS / "README.md").read_text()
    assert ", ".join(order) in readme, "ops/README.md should state the start order"
