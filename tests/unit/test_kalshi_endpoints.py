"""Environment -> URLs: the current specs' server lists (defaults and fallbacks), the simulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared import ports
from shared.config import ConfigError
from shared.kalshi.endpoints import FALLBACK, KALSHI, effective_env, resolve, sim_port
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


SPECS = Path(__file__).resolve().parents[1] / "fixtures" / "kalshi-spec"


def _spec(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(
        (SPECS / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    return doc


def test_defaults_and_fallbacks_are_the_current_specs_server_lists(tmp_path: Path) -> None:
    """The OpenAPI lists four REST servers: per environment a dedicated one (the default) and a
    shared one "also supported" (the fallback). The AsyncAPI lists the production WS server."""
    servers = _spec("openapi.yaml")["servers"]
    listed: dict[tuple[str, bool], str] = {}
    for s in servers:
        desc = s["description"].lower()
        env = "prod" if desc.startswith("production") else "demo" if desc.startswith("demo") else None
        assert env is not None, s
        listed[env, "shared" in desc] = s["url"]
    assert len(listed) == len(servers) == 4
    for env in ("prod", "demo"):
        assert KALSHI[env].rest_url == listed[env, False], env
        assert FALLBACK[env].rest_url == listed[env, True], env
        resolved = resolve(make_config(tmp_path, kalshi={"env": env}), {})
        assert (resolved.ws_url, resolved.rest_url) == (KALSHI[env].ws_url, KALSHI[env].rest_url)
    ws = _spec("asyncapi.yaml")["servers"]
    assert set(ws) == {"production"}  # no demo WS server in the spec: demo's is the protocol doc's
    prod = ws["production"]
    assert KALSHI["prod"].ws_url == f"{prod['protocol']}://{prod['host']}{prod['pathname']}"
    # Every WS host serves the same path (the handshake signature covers it), and each fallback
    # WS host is its REST host, as the protocol reference's host table has them.
    for e in (*KALSHI.values(), *FALLBACK.values()):
        assert e.ws_path == prod["pathname"]
    for env in ("prod", "demo"):
        assert urlsplit(FALLBACK[env].ws_url).hostname == urlsplit(FALLBACK[env].rest_url).hostname
    assert urlsplit(KALSHI["demo"].ws_url).hostname == "external-api-ws.demo.kalshi.co"


@pytest.mark.parametrize("env", ["prod", "demo"])
def test_the_config_files_name_the_fallback_hosts(env: str) -> None:
    """The commented-out overrides in config/<env>.toml, once uncommented, are the fallback."""
    text = (SPECS.parents[2] / "config" / f"{env}.toml").read_text()
    found = dict(re.findall(r'^# (ws_url|rest_url) = "([^"]+)"$', text, re.M))
    assert found == {"ws_url": FALLBACK[env].ws_url, "rest_url": FALLBACK[env].rest_url}
