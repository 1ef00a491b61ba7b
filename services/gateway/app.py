"""The aiohttp application: routes, and the middleware every request passes through.

Order per request: metrics and the JSON error shape (outermost: whatever happens inside is
counted and answered as JSON), CORS preflight, the per-client rate limit (before auth, so a
token cannot be guessed at line speed), the bearer token, the request size, then the route.
Routes are pure functions of :class:`Deps`; the worker builds Deps and runs the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import GatewayConfig
from shared.log import BurstLog

from . import auth, metrics
from .errors import JSON, ApiError, timeout, unavailable
from .limits import RateLimiter, retry_after

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/v1"
_ENCODER = msgspec.json.Encoder()


@dataclass
class Deps:
    """Everything a route needs: config, the database, the control endpoints, live state."""

    cfg: GatewayConfig
    engine: AsyncEngine
    orderbook: str
    supervisor: str
    log: logging.Logger
    token: str = ""
    #: The live state kept from the bus (latest top of book per market), when the stream runs.
    live: Any = None
    #: Whether the worker has finished starting (its bus subscription and the server are up).
    ready: Callable[[], bool] = lambda: False
    started: float = field(default_factory=time.monotonic)
    #: Bus messages fed so far (readyz shows the bus is flowing).
    bus_messages: Callable[[], int] = lambda: 0


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status, content_type=JSON, headers=headers)


async def db(deps: Deps, aw: Awaitable[Any]) -> Any:
    """Await a database read within the configured time; a database down is a 503, not a 500."""
    try:
        return await asyncio.wait_for(aw, deps.cfg.db_timeout_s)
    except TimeoutError:
        raise timeout(f"the database did not answer within {deps.cfg.db_timeout_s} s") from None
    except (SQLAlchemyError, OSError) as exc:
        raise unavailable(f"the database failed: {type(exc).__name__}") from None


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _http_error(exc: web.HTTPException) -> ApiError:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    err = ApiError(exc.status, codes.get(exc.status, "bad_request"), exc.reason or "refused")
    if exc.status == 405 and "Allow" in exc.headers:
        err.headers["Allow"] = exc.headers["Allow"]
    return err


class Middleware:
    """The per-request pipeline (see the module docstring); holds the rate-limit table."""

    def __init__(self, deps: Deps, clock: Callable[[], float] = time.monotonic) -> None:
        self.deps = deps
        self.clock = clock
        cfg = deps.cfg
        self.limiter = RateLimiter(cfg.rate_per_s, cfg.rate_burst, cfg.rate_clients)
        self.origins = frozenset(cfg.cors_origins)
        self.burst = BurstLog(deps.log)
        metrics.RATE_CLIENTS.set_function(lambda: float(len(self.limiter)))

    @web.middleware
    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route(request)
        try:
            response = await self._inner(request, handler)
        except ApiError as exc:
            response = json_response(exc.body(), exc.status, exc.headers)
        except web.HTTPException as exc:
            err = _http_error(exc)
            response = json_response(err.body(), err.status, err.headers)
        except asyncio.CancelledError:
            raise  # the client went away, or the server is stopping
        except Exception as exc:  # a bug: answered as JSON, counted, logged with its traceback
            metrics.ERRORS.labels(route, "bug").inc()
            self.deps.log.error(
                "request failed", exc_info=exc, extra={"ctx": {"route": route, "error": repr(exc)}}
            )
            response = json_response({"error": "internal", "detail": "the gateway failed (logged)"}, 500)
        self._cors(request, response)
        status = response.status
        metrics.REQUESTS.labels(route, str(status)).inc()
        if status >= 500:
            metrics.ERRORS.labels(route, str(status)).inc()
        if status != 101:  # a WebSocket's time is its whole session, not a latency
            metrics.LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    async def _inner(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and self.origins:
            return self._preflight(request)
        self._limit(request)
        try:
            auth.check(request, self.deps.token)
        except ApiError:
            self._reject("auth", request)
            raise
        length = request.content_length
        if (length is not None and length > self.deps.cfg.max_request_bytes) or (
            length is None and request.body_exists and request.method not in ("GET", "HEAD")
        ):
            self._reject("size", request, length=length)
            raise ApiError(
                413, "too_large", f"requests carry at most {self.deps.cfg.max_request_bytes} bytes"
            )
        return await handler(request)

    def _limit(self, request: web.Request) -> None:
        client = request.remote or "unknown"
        wait = self.limiter.take(client, self.clock())
        if wait > 0:
            self._reject("rate", request)
            raise ApiError(
                429, "rate_limited", f"more than {self.deps.cfg.rate_per_s:g} requests/s from this client",
                headers={"Retry-After": retry_after(wait)},
            )  # fmt: skip

    def _reject(self, reason: str, request: web.Request, **ctx: Any) -> None:
        metrics.REJECTED.labels(reason).inc()
        # Never the Authorization header: only who and what.
        self.burst.event(
            f"reject-{reason}",
            "request refused",
            reason=reason,
            client=request.remote or "",
            path=request.path[:200],
            **ctx,
        )

    def _allowed_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def _preflight(self, request: web.Request) -> web.Response:
        origin = self._allowed_origin(request)
        if origin is None:
            raise ApiError(403, "forbidden", "this origin is not allowed (CORS)")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )

    def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = self._allowed_origin(request)
        if origin is None or response.prepared:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            response.headers["Vary"] = "Origin"


def build(
    deps: Deps, routes: list[tuple[str, Handler]], clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The application serving ``routes`` (GET path -> handler) behind the middleware."""
    app = web.Application(
        middlewares=[Middleware(deps, clock).handle], client_max_size=deps.cfg.max_request_bytes
    )
    for path, handler in routes:
        app.router.add_get(path, handler)
    return app
