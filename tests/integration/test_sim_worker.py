"""The sim worker as a real process: ``kxfeed sim`` runs it, its control socket drives it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shared.control import ControlError, request
from shared.kalshi.auth import load_private_key
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import ROOT, kxfeed_cmd, spawn, wait_until
from tests.support.sim_client import BookClient


def _alive(endpoint: str) -> bool:
    try:
        request(endpoint, "ping", timeout_s=0.5)
        return True
    except ControlError:
        return False


def test_kxfeed_sim_runs_serves_signed_clients_and_obeys_control(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    conf = write_config(cfg, tmp_path / "kxfeed.toml")
    proc = spawn(
        "sim", "--config", str(conf), "--seed", "5", "--markets", "10", "--rate", "100", "--port", "0",
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "sim.log").open("wb"),
    )  # fmt: skip
    try:
        assert wait_until(lambda: _alive(cfg.sim.control), timeout=20), (tmp_path / "sim.log").read_text()
        assert wait_until(lambda: request(cfg.sim.control, "stats")["ready"], timeout=10)
        info = request(cfg.sim.control, "info")
        port = reported_port(cfg, "sim", "http")  # --port 0: any free port, reported
        assert info["ws_url"] == f"ws://127.0.0.1:{port}/trade-api/ws/v2"
        assert info["seed"] == 5 and info["markets"] >= 10 and info["rate"] == 100.0
        # The worker created the dev key pair; a client signing with it is let in.
        key = load_private_key(tmp_path / "sim-dev-key.pem")

        async def client() -> None:
            c = await BookClient(info["ws_url"], key).connect()
            books = request(cfg.sim.control, "books")
            tickers = sorted(books)[:3]
            await c.subscribe(["orderbook_delta"], tickers)
            await c.pump(quiet=0.05, limit=0.4)
            out = subprocess.run(
                kxfeed_cmd("sim", "inject", "gap", "count=1", "--config", str(conf)),
                cwd=ROOT, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["connections"] == [1]
            # The skipped number shows on the next delta of these three markets, whenever it comes.
            assert await c.pump_until(lambda: bool(c.seq_errors))
            await c.pump(quiet=0.05, limit=0.5)
            assert len(c.seq_errors) == 1
            paused = subprocess.run(
                kxfeed_cmd("sim", "pause", "--config", str(conf)),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert json.loads(paused.stdout) == {"paused": True}
            await asyncio.sleep(0.2)
            await c.send(
                "update_subscription", {"sid": 1, "market_tickers": tickers, "action": "get_snapshot"}
            )
            await c.pump(quiet=0.3)
            for t in tickers:
                truth = request(cfg.sim.control, "book", {"ticker": t})
                yes, no = c.books[t]
                assert truth["yes"] == [[p, yes[p]] for p in sorted(yes)]
                assert truth["no"] == [[p, no[p]] for p in sorted(no)]
            await c.close()

        asyncio.run(client())
        planted = request(cfg.sim.control, "planted")
        assert isinstance(planted["planted"], list) and isinstance(planted["complement_arbs_now"], list)
        bad = subprocess.run(
            kxfeed_cmd("sim", "inject", "meteor", "--config", str(conf)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode == 1 and "unknown fault" in bad.stderr
        # The typed plane against the real worker: `kxfeed ctl` sends a command built from its
        # class; a refused argument comes back naming the field, not as a traceback.
        ctl = subprocess.run(
            kxfeed_cmd("ctl", "sim", "info", "--config", str(conf)),
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert ctl.returncode == 0 and json.loads(ctl.stdout)["seed"] == 5, ctl.stderr
        with pytest.raises(ControlError, match="step: bad argument 'n': Expected `int` >= 1") as err:
            request(cfg.sim.control, "step", {"n": 0})
        assert err.value.field == "n"
        refused = subprocess.run(
            kxfeed_cmd("ctl", "sim", "step", "--n", "0", "--config", str(conf)),
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert refused.returncode == 2 and "bad argument 'n'" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0


def test_kxfeed_sim_rejects_a_bad_fault_spec(tmp_path: Path) -> None:
    conf = write_config(make_config(tmp_path), tmp_path / "kxfeed.toml")
    out = subprocess.run(
        kxfeed_cmd("sim", "--config", str(conf), "--faults", "gap:often"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "gap:often" in out.stderr


def test_worker_sim_under_the_generic_runner(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"markets": 6, "rate": 5.0})
    conf = write_config(cfg, tmp_path / "kxfeed.toml")
    proc = spawn("worker", "sim", "--config", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _alive(cfg.sim.control), timeout=20)
        t0 = time.monotonic()
        assert wait_until(lambda: request(cfg.sim.control, "info")["steps"] > 0, timeout=10)
        assert time.monotonic() - t0 < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
