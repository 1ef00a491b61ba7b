"""``kxfeed replay`` as a process: the port it bound printed and reported, bad input refused
with exit 2 and a message, Ctrl-C a clean exit, --exit-when-done ending on its own."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

import websockets
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from shared import ports
from shared.kalshi.auth import ensure_dev_keypair, load_private_key
from tests.support.config import make_config, write_config
from tests.support.procs import spawn, wait_until
from tests.support.recording import write_recording
from tests.support.sim_client import BookClient


def _setup(tmp: Path) -> tuple[Path, Path, dict[str, tuple[dict[int, int], dict[int, int]]]]:
    books, _ = write_recording(tmp / "rec", markets=3, messages=300)
    cfg = make_config(tmp / "run")
    return write_config(cfg, tmp / "kxfeed.toml"), tmp / "rec", books


def _dev_key(tmp: Path) -> RSAPrivateKey:
    """The simulator's dev key of the run's data dir (what the replay trusts, as the sim does)."""
    return load_private_key(ensure_dev_keypair(tmp / "run")[0])


def _port_line(p: subprocess.Popen[bytes]) -> int:
    assert p.stdout is not None
    for raw in p.stdout:
        line = raw.decode()
        if line.startswith("port "):
            return int(line.split()[1])
    raise AssertionError(f"replay exited ({p.wait()}) without printing its port")


def test_bad_input_exits_2_with_the_reason(tmp_path: Path) -> None:
    path, rec, _ = _setup(tmp_path)
    cases = {
        ("--since", "soon"): "is not a time",
        ("--since", "2026-12-03T15:00:00Z", "--until", "2026-12-03T14:00:00Z"): "must be before --until",
        ("--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"): "no data between",
        ("--tickers", "KXNOPE,KXREPLAY-26DEC03-T000"): "not in the recording: KXNOPE",
        ("--speed", "0"): "--speed must be",
        ("--port", "70000"): "--port must be 0..65535",
    }
    for args, why in cases.items():
        p = spawn("replay", "--config", str(path), "--journal", str(rec), *args, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 2, (args, err)
        assert why in err.decode(), (args, err)


def test_port_0_is_reported_and_ctrl_c_stops_it_cleanly(tmp_path: Path) -> None:
    path, rec, books = _setup(tmp_path)
    p = spawn(
        "replay",
        "--config",
        str(path),
        "--journal",
        str(rec),
        "--speed",
        "max",
        "--port",
        "0",
        stdout=subprocess.PIPE,
    )
    try:
        port = _port_line(p)
        data_dir = tmp_path / "run"
        assert ports.reported(data_dir, "sim", "http") == port

        async def read() -> BookClient:
            c = await BookClient(f"ws://127.0.0.1:{port}/trade-api/ws/v2", _dev_key(tmp_path)).connect()
            await c.subscribe(["orderbook_delta"], sorted(books))
            assert await c.pump_until(lambda: c.books == books, 20), c.books
            await c.close()
            return c

        c = asyncio.run(read())
        assert c.seq_errors == []
        # A second replay on the same data dir would take the first one's port report: refused.
        again = spawn("replay", "--config", str(path), "--journal", str(rec), stderr=subprocess.PIPE)
        _, err = again.communicate(timeout=60)
        assert again.returncode == 2 and f"already serves {data_dir} on port {port}" in err.decode(), err
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == 0
        assert ports.reported(data_dir, "sim", "http") is None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_exit_when_done_ends_once_the_client_has_read_the_window(tmp_path: Path) -> None:
    path, rec, books = _setup(tmp_path)
    p = spawn(
        "replay",
        "--config",
        str(path),
        "--journal",
        str(rec),
        "--speed",
        "max",
        "--exit-when-done",
        stdout=subprocess.PIPE,
    )
    try:
        port = _port_line(p)

        async def read() -> None:
            c = await BookClient(f"ws://127.0.0.1:{port}/trade-api/ws/v2", _dev_key(tmp_path)).connect()
            await c.subscribe(["orderbook_delta"], sorted(books))
            await c.pump_until(lambda: c.books == books, 20)
            assert c.books == books
            with contextlib.suppress(websockets.ConnectionClosed):  # the server closes: done
                await c.pump(quiet=0.5, limit=20)

        asyncio.run(read())
        assert wait_until(lambda: p.poll() is not None, 30)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
