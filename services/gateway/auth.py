"""Bearer-token check: constant-time, and nothing about the token ever echoed back."""

from __future__ import annotations

import hmac

from aiohttp import web

from .errors import ApiError


def check(request: web.Request, token: str) -> None:
    """Raise a 401 unless ``request`` carries ``Authorization: Bearer <token>`` (when a token is set).

    Every API route, healthz and readyz included: a gateway off loopback tells nobody anything.
    The page and its static files are public: they hold no data, and a browser must load the
    page before it can be given the token."""
    if not token or request.path == "/" or request.path.startswith("/static/"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(
            401, "unauthorized", "this gateway needs Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="kxfeed"'},
        )  # fmt: skip
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode()):
        raise ApiError(
            401, "unauthorized", "the bearer token is not this gateway's",
            headers={"WWW-Authenticate": 'Bearer realm="kxfeed", error="invalid_token"'},
        )  # fmt: skip
