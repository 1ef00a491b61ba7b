"""Each setup mistake from issue 16 is answered by `kxfeed up` (and `kxfeed check`, `kxfeed
worker`) with ONE line that says what to do, exit 2, no traceback - before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import EX_CONFIG
from shared.kalshi.auth import generate_private_key, private_pem
from tests.support.config import config_file
from tests.support.procs import ROOT, clean_env, kxfeed_cmd


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kxfeed_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def _one_line(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    # `kxfeed worker` exits EX_CONFIG (78) so that no supervisor restarts it; the rest exit 2.
    want = EX_CONFIG if res.args[3:4] == ["worker"] else 2
    assert res.returncode == want, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _key(path: Path, mode: int) -> Path:
    path.write_bytes(private_pem(generate_private_key()))
    os.chmod(path, mode)
    return path


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A listening socket on a port the kernel picked: nobody else can take it while held."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A bound, NOT listening socket: connecting to its port is refused, and no one can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_demo_without_credentials(tmp_path: Path) -> None:
    path = config_file(tmp_path, kalshi={"env": "demo"})
    env = clean_env(ODDS_API_KEY="odds-key")
    for args in (("up", "--config", str(path)), ("check", "--config", str(path))):
        _one_line(_run(*args, env=env), "env=demo needs a Kalshi API key", "export KALSHI_KEY_ID=")
    assert not (tmp_path / "logs").exists(), "nothing started"
    line = _one_line(_run("worker", "connector", "--config", str(path), env=env), "KALSHI_PRIVATE_KEY_PATH")
    assert line.startswith("kxfeed worker connector: ")


def test_key_file_readable_by_others(tmp_path: Path) -> None:
    path = config_file(tmp_path, kalshi={"env": "demo"})
    key = _key(tmp_path / "kalshi.pem", 0o644)
    env = clean_env(KALSHI_KEY_ID="the-key-id", KALSHI_PRIVATE_KEY_PATH=str(key), ODDS_API_KEY="x")
    line = _one_line(_run("up", "--config", str(path), env=env), f"chmod 600 {key}", "mode 0644")
    assert "the-key-id" not in line
    # The one rule: 0600, or 0640 with a group only kxfeed is in (the ops/ install uses root:kxfeed).
    for mode in (0o600, 0o640):
        os.chmod(key, mode)
        res = _run("check", "--offline", "--worker", "connector", "--config", str(path), env=env)
        assert res.returncode == 0 and res.stderr == "", (oct(mode), res.stderr)


def test_unreachable_postgresql(tmp_path: Path, refusing_port: int) -> None:
    url = f"postgresql+asyncpg://kx:hunter2@127.0.0.1:{refusing_port}/kx"
    path = config_file(tmp_path, db={"url": url})
    env = clean_env()
    line = _one_line(
        _run("up", "--config", str(path), env=env),
        f"postgresql+asyncpg://kx:***@127.0.0.1:{refusing_port}/kx",
        f"host 127.0.0.1, port {refusing_port}",
        "is not reachable",
    )
    assert "hunter2" not in line
    _one_line(_run("config", "check", str(path), env=env), f"port {refusing_port}")
    res = _run("check", "--offline", "--config", str(path), env=env)
    assert res.returncode == 0, res.stderr  # offline: the connect is skipped


def test_taken_worker_port(tmp_path: Path, held_port: socket.socket) -> None:
    port = held_port.getsockname()[1]
    path = config_file(tmp_path, connector={"metrics_port": port})
    env = clean_env()
    want = (f"port {port} on 127.0.0.1 ([connector] metrics_port) is taken", "KXFEED_CONNECTOR_METRICS_PORT")
    _one_line(_run("up", "--config", str(path), env=env), *want)
    _one_line(_run("worker", "connector", "--config", str(path), env=env), *want)
    _one_line(_run("check", "--config", str(path), env=env), *want)


def test_simulator_refused_outside_sim(tmp_path: Path) -> None:
    path = config_file(tmp_path, kalshi={"env": "demo"})
    key = _key(tmp_path / "kalshi.pem", 0o600)
    env = clean_env(KALSHI_KEY_ID="k", KALSHI_PRIVATE_KEY_PATH=str(key), ODDS_API_KEY="x")
    _one_line(
        _run("up", "--config", str(path), "--workers", "bus,sim", env=env),
        'the exchange simulator runs only with [kalshi] env = "sim"',
    )
    _one_line(_run("worker", "sim", "--config", str(path), env=env), "simulator runs only")
    _one_line(_run("sim", "--config", str(path), env=env), "simulator runs only")
    res = _run("check", "--offline", "--config", str(path), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok: bus, writer, orderbook,") and " sim" not in res.stdout, res.stdout


def test_environments_keep_their_data_apart(tmp_path: Path) -> None:
    for env in ("sim", "demo", "prod"):
        res = _run("config", "check", "--offline", env=clean_env(KXFEED_KALSHI_ENV=env))
        assert f'data_dir = "data/{env}"' in res.stdout, res.stdout
        assert f'url = "sqlite+aiosqlite:///data/{env}/kxfeed.db"' in res.stdout
        assert f'dir = "data/{env}/journal"' in res.stdout
