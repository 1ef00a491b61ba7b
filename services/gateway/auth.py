"""Bearer-token check: constant-time, and nothing about the token ever echoed back.

Two ways to carry the token: ``Authorization: Bearer <token>`` on any route, and, on a
WebSocket upgrade only (a browser's ``WebSocket`` cannot set headers), the subprotocol
``kxfeed.bearer.<base64url(token), unpadded>`` offered next to ``kxfeed`` (the page does:
``new WebSocket(url, ["kxfeed", "kxfeed.bearer.…"])``). The stream answers ``kxfeed``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from .errors import ApiError

__all__ = ["BEARER_PROTOCOL", "PROTOCOL", "check", "protocol_token"]

#: The subprotocol the stream answers, and the prefix of the one carrying the token.
PROTOCOL = "kxfeed"
BEARER_PROTOCOL = "kxfeed.bearer."
#: Longest Sec-WebSocket-Protocol value looked at (a hostile header is not decoded whole).
MAX_PROTOCOL_HEADER = 4096


def protocol_token(request: web.Request) -> bytes | None:
    """The token a WebSocket upgrade carries as its ``kxfeed.bearer.`` subprotocol (None: none,
    or not decodable: then it is simply not a token)."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    if not header or len(header) > MAX_PROTOCOL_HEADER:
        return None
    for proto in header.split(","):
        proto = proto.strip()
        if not proto.startswith(BEARER_PROTOCOL):
            continue
        encoded = proto[len(BEARER_PROTOCOL) :]
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            return None
    return None


def _refuse(detail: str, error: str = "") -> ApiError:
    challenge = 'Bearer realm="kxfeed"' + (f', error="{error}"' if error else "")
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def check(request: web.Request, token: str) -> None:
    """Raise a 401 unless ``request`` carries the token (when one is set), by header or, on a
    WebSocket upgrade, by subprotocol.

    Every API route, healthz and readyz included: a gateway off loopback tells nobody anything.
    The page and its static files are public: they hold no data, and a browser must load the
    page before it can be given the token."""
    if not token or request.path == "/" or request.path.startswith("/static/"):
        return
    expected = token.encode()
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given:
        if hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected):
            return
        raise _refuse("the bearer token is not this gateway's", "invalid_token")
    offered = protocol_token(request)
    if offered is not None:
        if hmac.compare_digest(offered, expected):
            return
        raise _refuse("the bearer token is not this gateway's", "invalid_token")
    raise _refuse(
        "this gateway needs Authorization: Bearer <token> (a WebSocket may offer the "
        f"subprotocol {BEARER_PROTOCOL}<base64url(token)>)"
    )
