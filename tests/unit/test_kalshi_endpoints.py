"""Environment -> URLs, per the protocol reference's host table."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import ports
from shared.config import ConfigError
from shared.kalshi.endpoints import effective_env, resolve, sim_port
from tests.support.config import make_config


def test_prod_and_demo_use_the_dedicated_hosts(tmp_path: Path) -> None:
    prod = resolve(make_config(tmp_path, kalshi={"env": "prod"}), {})
    assert prod.ws_url == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
    assert prod.rest_url == "https://external-api.kalshi.com/trade-api/v2"
    demo = resolve(make_config(tmp_path, kalshi={"env": "demo"}), {})
    assert demo.ws_url == "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"
    assert demo.rest_url == "https://external-api.demo.kalshi.co/trade-api/v2"
    assert prod.ws_path == demo.ws_path == "/trade-api/ws/v2"


def test_sim_is_local_and_default(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"host": "127.0.0.1", "port": 8765})
    e = resolve(cfg, {})
    assert (e.env, e.ws_url, e.rest_url) == (
        "sim",
        "ws://127.0.0.1:8765/trade-api/ws/v2",
        "http://127.0.0.1:8765/trade-api/v2",
    )


def test_sim_port_zero_is_the_one_the_simulator_reported(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"port": 0})
    with pytest.raises(ConfigError, match="has not reported its port"):
        sim_port(cfg, wait_s=0.0)
    ports.port_file(cfg.data_dir, "sim", "http").parent.mkdir(parents=True, exist_ok=True)
    for junk in ("", "http", "0", "70000", "-5"):  # a torn or foreign file is no report
        ports.port_file(cfg.data_dir, "sim", "http").write_text(junk)
        assert ports.reported(cfg.data_dir, "sim", "http") is None, junk
    ports.report(cfg.data_dir, "sim", "http", 41234)
    assert resolve(cfg, {}).ws_url == "ws://127.0.0.1:41234/trade-api/ws/v2"
    ports.report(cfg.data_dir, "sim", "http", 41235)  # a restarted simulator's new port
    assert resolve(cfg, {}).rest_url == "http://127.0.0.1:41235/trade-api/v2"
    ports.withdraw(cfg.data_dir, "sim", "http")
    with pytest.raises(ConfigError):
        sim_port(cfg, wait_s=0.2)
    with pytest.raises(ValueError):
        ports.report(cfg.data_dir, "sim", "http", 0)


def test_kalshi_env_variable_wins(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    assert effective_env(cfg, {"KALSHI_ENV": "prod"}) == "prod"
    with pytest.raises(ConfigError):
        effective_env(cfg, {"KALSHI_ENV": "staging"})


def test_url_overrides_and_checks(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path, kalshi={"env": "prod", "ws_url": "wss://api.elections.kalshi.com/trade-api/ws/v2"}
    )
    e = resolve(cfg, {})
    assert e.ws_url.startswith("wss://api.elections") and e.rest_url.startswith(
        "https://external-api.kalshi.com"
    )
    with pytest.raises(ConfigError, match="ws_url"):
        resolve(make_config(tmp_path, kalshi={"ws_url": "https://x/trade-api/ws/v2"}), {})
