"""The gateway worker: the actor shell around the HTTP API and the live stream.

Subscribes the bus to the kinds the stream serves (``StreamHub.topics()``: tob, trade,
signal, bookstate, depth, gap and the market state ones) and feeds every message to the
hub, which keeps the latest state per market (read by the REST ``latest`` route) and fans out
to WebSocket clients. Serves ``/api/v1`` (REST, the OpenAPI document, the stream) and the web
page on ``[gateway] host:port`` (port 0: any free port, reported in the data dir); ready once
the server listens. Answers ``ping``, ``stats`` and ``stop`` on its control socket.

CLI: ``kxfeed worker gateway``; then ``curl 127.0.0.1:8080/api/v1/markets``.
"""

from __future__ import annotations

import errno
import time

from aiohttp import web

from shared import ports
from shared.actor import Actor
from shared.bus import Subscriber
from shared.config import Config, ConfigError, GatewayConfig
from shared.gateway_token import load_token, token_problem
from shared.store.engine import make_engine

from . import api_history, api_live, api_markets, metrics, openapi
from .app import API, Deps, build, json_response
from .static_routes import add_static_routes
from .stream_ws import StreamHub


class GatewayWorker(Actor):
    name = "gateway"

    @classmethod
    def check_config(cls, config: Config) -> list[str]:
        problem = token_problem(config.gateway)
        return [problem] if problem else []

    async def setup(self) -> None:
        cfg = self.config.gateway
        assert isinstance(cfg, GatewayConfig)
        self.cfg = cfg
        problem = token_problem(cfg)
        if problem:
            raise ConfigError(problem)
        self.engine = make_engine(self.config.db)
        self.hub = StreamHub(cfg)
        self.sub: Subscriber = self.subscriber(self.hub.topics())
        self.fed = 0
        self.deps = Deps(
            cfg=cfg,
            engine=self.engine,
            orderbook=self.config.orderbook.control,
            supervisor=self.config.supervisor.control,
            log=self.log,
            token=load_token(cfg),
            live=self.hub.live,
            ready=lambda: self.ready,
            started=time.monotonic(),
            bus_messages=lambda: self.fed,
        )
        self.app = self._app()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        self.port = await self._listen()
        self.ready = True
        self.log.info(
            "serving the HTTP API",
            extra={"ctx": {"host": cfg.host, "port": self.port, "token": bool(self.deps.token)}},
        )

    def _app(self) -> web.Application:
        d = self.deps
        routes = [*api_markets.routes(d), *api_history.routes(d), *api_live.routes(d)]
        document = openapi.document()

        async def spec(_: web.Request) -> web.Response:
            return json_response(document)

        app = build(d, [*routes, (f"{API}/openapi.json", spec)])
        app.router.add_get(f"{API}/stream", self.hub.handler)
        add_static_routes(app)
        return app

    async def _listen(self) -> int:
        cfg = self.cfg
        site = web.TCPSite(self.runner, cfg.host, cfg.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            # A taken port or an address this host does not have: a restart cannot fix it.
            what = "is taken by another process" if exc.errno == errno.EADDRINUSE else f"({exc.strerror})"
            raise ConfigError(
                f"[gateway] cannot listen on {cfg.host}:{cfg.port} {what}: set [gateway] port "
                "(0 = any free port) or host"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = int(sockets[0].getsockname()[1]) if sockets else cfg.port
        if cfg.port == 0:
            ports.report(self.config.data_dir, self.worker_id, "http", port)
        return port

    async def main(self) -> None:
        self.spawn(self.hub.run(), name="stream")
        while not self.stopping.is_set():
            msgs = await self.sub.recv()
            self.hub.feed_many(msgs)
            self.fed += len(msgs)
            metrics.BUS_MESSAGES.inc(len(msgs))

    async def teardown(self) -> None:
        if self.cfg.port == 0:
            ports.withdraw(self.config.data_dir, self.worker_id, "http")
        hub = getattr(self, "hub", None)
        if hub is not None:
            await hub.close()
        runner = getattr(self, "runner", None)
        if runner is not None:
            await runner.cleanup()
        sub = getattr(self, "sub", None)
        if sub is not None:
            sub.close()
        engine = getattr(self, "engine", None)
        if engine is not None:
            await engine.dispose()

    def stats(self) -> dict[str, int]:
        hub = getattr(self, "hub", None)
        return {
            "messages": getattr(self, "fed", 0),
            "port": getattr(self, "port", 0),
            **(hub.stats() if hub is not None else {}),
        }


WORKER = GatewayWorker
