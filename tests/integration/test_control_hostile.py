"""Every control socket of a running ``kxfeed up`` survives a barrage: 20 garbage TCP connections
and ZeroMQ peers sending multipart, non-JSON, wrong-typed, unknown and oversized requests. Then
every socket still answers, ``kxfeed status`` works, and no worker restarted or logged a failure."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from services import registry
from shared.commands.ping import Ping
from shared.control import call, request
from tests.integration.test_supervisor_processes import Up, metric, up_factory
from tests.support.config import make_config, reported_port, write_config
from tests.support.hostile import barrage
from tests.support.procs import ROOT, kxfeed_cmd

__all__ = ["up_factory"]  # the fixture, re-used from the process tests

#: A request with a missing, wrong-typed or bad argument to a real command of each worker.
BAD_ARGS: dict[str, dict[str, Any]] = {
    "supervisor": {"cmd": "restart", "args": {}},
    "sim": {"cmd": "book", "args": {}},
    "connector": {"cmd": "snapshot", "args": {"tickers": 7}},
    "orderbook": {"cmd": "book", "args": {"top": [1]}},
    "writer": {"cmd": "flush", "args": {"timeout_s": "soon"}},
    "gapfill": {"cmd": "snapshot", "args": {}},
    "arb": {"cmd": "fair", "args": {}},
}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text: str = resp.read().decode()
    return text


@pytest.mark.slow(waits=True)
def test_every_control_socket_survives_garbage_and_keeps_answering(tmp_path: Path, up_factory: Any) -> None:
    names = registry.default_workers("sim")
    cfg = make_config(
        tmp_path,
        supervisor={"shutdown_timeout_s": 20.0, "ready_timeout_s": 90.0},
        sim={"rate": 50.0, "markets": 10},
    )
    path = write_config(cfg, tmp_path / "kx.toml")
    up: Up = up_factory(cfg, path)
    before = up.wait_running(*names, timeout=120)
    sockets = {"supervisor": cfg.supervisor.control} | {n: cfg.worker(n).control for n in names}
    assert len(sockets) == len(names) + 1 and all(sockets.values())

    limit = cfg.control.max_msg_bytes
    for name, endpoint in sockets.items():
        out = barrage(endpoint, max_msg_bytes=limit, bad_args=BAD_ARGS.get(name))
        assert out.unanswered == [], f"{name}: requests left unanswered"
        assert "no_envelope" not in out.replies and "oversized" not in out.replies, name
        wrong = {k: r for k, r in out.replies.items() if r.get("ok") is not False}
        assert wrong == {}, f"{name}: answered ok to a bad request"
        if name in BAD_ARGS:
            error = out.replies["bad_args"]["error"]
            assert not error.startswith(("RuntimeError", "AttributeError")), f"{name}: {error}"

    # Every control socket still answers, and the supervisor's status reaches the CLI.
    for name, endpoint in sockets.items():
        assert call(endpoint, Ping(), timeout_s=10).worker == name  # the typed reply of a real worker
        assert "uptime_ms" in request(endpoint, "stats", timeout_s=10)
    cli = subprocess.run(
        kxfeed_cmd("status", "--config", str(path)), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0, cli.stderr
    for name in names:
        assert name in cli.stdout
    after = up.workers()
    assert {n: w["state"] for n, w in after.items()} == dict.fromkeys(names, "running")
    assert {n: w["pid"] for n, w in after.items()} == {n: w["pid"] for n, w in before.items()}, "no restart"

    # Counted where an operator looks: each worker's /metrics.
    text = scrape(reported_port(cfg, "orderbook"))
    for reason in ("envelope", "multipart", "decode", "unknown_command", "bad_args"):
        assert (metric(text, "kxfeed_control_rejected_total", reason=reason) or 0) >= 1, reason
    refused = sum(
        metric(text, "kxfeed_zmq_peer_events_total", socket="control", event=event) or 0
        for event in ("handshake_failed_no_detail", "handshake_failed_protocol")
    )
    assert refused >= 1
    assert (metric(text, "kxfeed_zmq_peer_events_total", socket="control", event="disconnected") or 0) >= 20

    assert up.stop(90) == 0, up.log()
    log = up.log()
    assert "control command failed" not in log, "a caller's mistake is not a worker failure"
    assert "Traceback" not in log
    records = up.log_records()
    assert not [r for r in records if r.get("msg") == "worker crashed"]
    exits = {r["worker"]: r["exit_code"] for r in records if r.get("msg") == "child exited"}
    assert exits == dict.fromkeys(names, 0)
