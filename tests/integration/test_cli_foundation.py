"""The foundation CLI against a live bus: tap, schema, config check, --help."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import zmq

from shared.bus import Proxy, Publisher
from shared.messages import KINDS, BookDelta, Trade
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, kxfeed_cmd


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kxfeed_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_tap_prints_matching_messages_as_json_lines(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, cfg.bus.xsub, cfg.bus.xpub, 10_000)
    proxy.start()
    pub = Publisher(ctx, cfg.bus.xsub, "t")
    tap = subprocess.Popen(
        kxfeed_cmd("tap", "trade.KXNBA", "--count", "2", "--timeout", "20", "--config", str(path)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pub.wait_for_subscriber_sync("trade.KXNBA", 20)
        pub.publish(
            BookDelta(ticker="KXNBAX", market_id="m", conn=1, sid=1, xseq=1, side="yes", price=1, delta=1)
        )
        for i in range(3):
            pub.publish(
                Trade(
                    trade_id=f"t{i}",
                    ticker="KXNBAGAME-X",
                    yes_price=4300,
                    no_price=5700,
                    count=100,
                    taker_side="no",
                )
            )
        out, err = tap.communicate(timeout=30)
    finally:
        if tap.poll() is None:
            tap.kill()
        pub.close(0)
        proxy.stop()
        ctx.destroy(0)
    assert tap.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(m["kind"], m["trade_id"], m["yes_price"]) for m in lines] == [
        ("trade", "t0", 4300),
        ("trade", "t1", 4300),
    ]
    assert lines[0]["pub"] == "t" and lines[0]["seq"] == 1


def test_tap_times_out_with_a_message_when_nothing_arrives(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")
    res = _run("tap", "trade.", "--timeout", "1", "--config", str(path))
    assert res.returncode == 1
    assert "no message for 1.0s" in res.stderr


def test_schema_lists_every_kind_and_one_kind() -> None:
    res = _run("schema")
    assert res.returncode == 0
    text = res.stdout
    for kind in KINDS:
        assert f'"{kind}"' in text
    one = json.loads(_run("schema", "--kind", "delta").stdout)
    assert "BookDelta" in json.dumps(one)


def test_config_check_prints_effective_config_with_secrets_redacted(tmp_path: Path) -> None:
    res = subprocess.run(
        kxfeed_cmd("config", "check", "--offline"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "PATH": "/usr/bin:/bin",
            "KALSHI_KEY_ID": "super-secret-key-id",
            "KXFEED_DB_URL": "postgresql+asyncpg://kx:hunter2@db/kx",
        },
    )
    # A key id without a key file is a mistake the preflight names (exit 2), after the config.
    assert res.returncode == 2, res.stderr
    assert "KALSHI_KEY_ID is set but no private key" in res.stderr and "Traceback" not in res.stderr
    out = res.stdout + res.stderr
    assert "super-secret-key-id" not in out and "hunter2" not in out
    assert 'url = "postgresql+asyncpg://kx:***@db/kx"' in res.stdout
    assert 'key_id = "(set in KALSHI_KEY_ID)"' in res.stdout
    assert "# KALSHI_KEY_ID = (set)" in res.stdout and "# ODDS_API_KEY = (not set)" in res.stdout
    assert "# KXFEED_DB_URL = postgresql+asyncpg://kx:***@db/kx  (override)" in res.stdout
    assert "# ok:" not in res.stdout


@pytest.mark.parametrize("command", ["tap", "worker", "bus", "schema", "config"])
def test_every_command_help_says_what_it_does_with_an_example(command: str) -> None:
    res = _run(command, "--help")
    assert res.returncode == 0
    assert "example" in res.stdout.lower()
    assert len(res.stdout.splitlines()) > 5
