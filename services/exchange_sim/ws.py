"""The WebSocket endpoint ``/trade-api/ws/v2``: signed handshake, then commands in, frames out."""

from __future__ import annotations

import time

from aiohttp import WSMsgType, web

from services.exchange_sim import metrics
from services.exchange_sim.app_key import SIM_KEY
from services.exchange_sim.session import SessionLimits

WS_PATH = "/trade-api/ws/v2"


def unauthorized(reason: str) -> web.Response:
    return web.json_response(
        {"code": "authentication_error", "message": "authentication failed", "details": reason}, status=401
    )


async def ws_handler(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    cfg = sim.cfg
    now = time.monotonic()
    if sim.plan.http_fires("auth401", now):
        metrics.AUTH_REJECTED.labels("fault").inc()
        sim.burst.event("auth401", "handshake refused (injected fault)")
        return unauthorized("fault")
    reason = sim.keyring.check(request.headers, "GET", WS_PATH, int(time.time() * 1000))
    if reason is not None:
        metrics.AUTH_REJECTED.labels(reason).inc()
        sim.burst.event(f"auth-{reason}", "WS handshake refused", reason=reason, peer=request.remote or "")
        return unauthorized(reason)
    ws = web.WebSocketResponse(autoping=False, autoclose=True, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    limits = SessionLimits(cfg.max_markets_per_sub, cfg.sub_cmd_rate, ok_consumes_seq=cfg.ok_consumes_seq)
    conn = sim.hub.connect(request.transport, request.protocol, request.remote or "", limits)
    try:
        async for msg in ws:
            if conn.closed:
                break
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                sim.hub.command(conn, msg.data)
            elif msg.type == WSMsgType.PING:
                conn.on_ping(bytes(msg.data or b""))
            elif msg.type == WSMsgType.PONG:
                conn.on_pong()
            elif msg.type == WSMsgType.ERROR:
                break
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        sim.hub.disconnect(conn, "client_closed" if not conn.closed else "closed")
        await conn.wait_tasks()
    return ws
