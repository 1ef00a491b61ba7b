"""Which Kalshi to talk to: environment (sim / demo / prod) -> WebSocket and REST URLs.

The defaults are the hosts the current specs list first (the OpenAPI's ``servers``, the
AsyncAPI's ``production`` server: Kalshi's dedicated ``external-api...`` hosts, recommended
since 2026-05-07; the AsyncAPI lists no demo server, so demo WS is the protocol reference's).
The older shared hosts still work and are the documented fallbacks (:data:`FALLBACK`): set
``kalshi.ws_url`` / ``kalshi.rest_url`` to them (or to anything else) to override.

The simulator serves the same paths as Kalshi on ``sim.host:sim.port``, so signatures cover
the same strings. ``[sim] port = 0``: the simulator binds any free port and reports it in the
data dir (shared/ports.py); clients read it when they resolve (at their start: a restarted
simulator's new port reaches a client when it restarts too).

``KALSHI_ENV`` (demo | prod | sim) in the environment overrides ``kalshi.env``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Literal, NamedTuple, cast
from urllib.parse import urlsplit

from shared import ports
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


#: The shared hosts Kalshi still serves ("shared, also supported" in the OpenAPI's server
#: list): a fallback if the dedicated ones are unreachable. Never chosen automatically (a
#: silent switch would hide an outage); put them in ``[kalshi] ws_url`` / ``rest_url``.
FALLBACK: dict[str, Endpoints] = {
    "prod": Endpoints(
        "prod", f"wss://api.elections.kalshi.com{WS_PATH}", f"https://api.elections.kalshi.com{REST_PATH}"
    ),
    "demo": Endpoints("demo", f"wss://demo-api.kalshi.co{WS_PATH}", f"https://demo-api.kalshi.co{REST_PATH}"),
}


def sim_endpoints(host: str, port: int) -> Endpoints:
    return Endpoints("sim", f"ws://{host}:{port}{WS_PATH}", f"http://{host}:{port}{REST_PATH}")


#: How long a client starting beside the simulator (honcho, systemd: no start order) waits for
#: the simulator to report a port configured 0. Under ``kxfeed up`` it has reported already.
SIM_PORT_WAIT_S = 30.0


def sim_port(cfg: Config, wait_s: float = SIM_PORT_WAIT_S) -> int:
    """The simulator's port: the configured one, or the one it reported when configured 0
    (waiting up to ``wait_s`` for the report: this runs once, as a worker starts)."""
    if cfg.sim.port != 0:
        return cfg.sim.port
    deadline = time.monotonic() + wait_s
    while (port := ports.reported(cfg.data_dir, "sim", "http")) is None:
        if time.monotonic() >= deadline:
            where = ports.port_file(cfg.data_dir, "sim", "http")
            raise ConfigError(f"[sim] port = 0 and the simulator has not reported its port ({where})")
        time.sleep(0.1)
    return port


def effective_env(cfg: Config, environ: Mapping[str, str] | None = None) -> Env:
    environ = os.environ if environ is None else environ
    env = environ.get("KALSHI_ENV") or cfg.kalshi.env
    if env not in ("sim", "demo", "prod"):
        raise ConfigError(f"KALSHI_ENV={env!r}: expected sim, demo or prod")
    return cast(Env, env)


def resolve(cfg: Config, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The URLs for this config (env, then per-URL overrides)."""
    env = effective_env(cfg, environ)
    ws_url, rest_url = cfg.kalshi.ws_url, cfg.kalshi.rest_url
    for name, url, schemes in (("ws_url", ws_url, ("ws", "wss")), ("rest_url", rest_url, ("http", "https"))):
        if url and urlsplit(url).scheme not in schemes:
            raise ConfigError(f"[kalshi] {name} = {url!r}: expected a {' or '.join(schemes)}:// URL")
    if not (ws_url and rest_url):  # the simulator's port is needed (and read) only if used
        base = sim_endpoints(cfg.sim.host, sim_port(cfg)) if env == "sim" else KALSHI[env]
        ws_url, rest_url = ws_url or base.ws_url, rest_url or base.rest_url
    return Endpoints(env, ws_url, rest_url)
