"""Which Kalshi to talk to: environment (sim / demo / prod) -> WebSocket and REST URLs.

Kalshi's dedicated market-data hosts (recommended since 2026-05-07) are the
defaults; ``kalshi.ws_url`` / ``kalshi.rest_url`` override them (e.g. the shared
``api.elections.kalshi.com`` host). The simulator serves the same paths as
Kalshi on ``sim.host:sim.port``, so signatures cover the same strings.

``KALSHI_ENV`` (demo | prod | sim) in the environment overrides ``kalshi.env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, NamedTuple, cast
from urllib.parse import urlsplit

from shared.config import Config, ConfigError

Env = Literal["sim", "demo", "prod"]

WS_PATH = "/trade-api/ws/v2"
REST_PATH = "/trade-api/v2"


class Endpoints(NamedTuple):
    env: Env
    ws_url: str
    rest_url: str

    @property
    def ws_path(self) -> str:
        """The path the WS handshake signature covers (``/trade-api/ws/v2`` on every host)."""
        return urlsplit(self.ws_url).path or "/"


KALSHI: dict[str, Endpoints] = {
    "prod": Endpoints(
        "prod", f"wss://external-api-ws.kalshi.com{WS_PATH}", f"https://external-api.kalshi.com{REST_PATH}"
    ),
    "demo": Endpoints(
        "demo",
        f"wss://external-api-ws.demo.kalshi.co{WS_PATH}",
        f"https://external-api.demo.kalshi.co{REST_PATH}",
    ),
}


def sim_endpoints(host: str, port: int) -> Endpoints:
    return Endpoints("sim", f"ws://{host}:{port}{WS_PATH}", f"http://{host}:{port}{REST_PATH}")


def effective_env(cfg: Config, environ: Mapping[str, str] | None = None) -> Env:
    environ = os.environ if environ is None else environ
    env = environ.get("KALSHI_ENV") or cfg.kalshi.env
    if env not in ("sim", "demo", "prod"):
        raise ConfigError(f"KALSHI_ENV={env!r}: expected sim, demo or prod")
    return cast(Env, env)


def resolve(cfg: Config, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The URLs for this config (env, then per-URL overrides)."""
    env = effective_env(cfg, environ)
    base = sim_endpoints(cfg.sim.host, cfg.sim.port) if env == "sim" else KALSHI[env]
    ws_url = cfg.kalshi.ws_url or base.ws_url
    rest_url = cfg.kalshi.rest_url or base.rest_url
    for name, url, schemes in (("ws_url", ws_url, ("ws", "wss")), ("rest_url", rest_url, ("http", "https"))):
        if urlsplit(url).scheme not in schemes:
            raise ConfigError(f"[kalshi] {name} = {url!r}: expected a {' or '.join(schemes)}:// URL")
    return Endpoints(env, ws_url, rest_url)
