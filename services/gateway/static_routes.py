"""The web page: ``GET /`` and ``GET /static/<file>`` from the package's ``static/`` directory.

The files are read once, when the routes are added (a few kilobytes; a wheel install ships them
as package data), and served from memory with an ETag, so a page load never touches the disk
and no request path ever becomes a file path. The page holds no data of its own (it asks the
API, with the token when one is set), so these routes need no token: a browser must be able to
load the page before it can be told the token. The Content-Security-Policy keeps the page to
its own files and its own origin's API and stream.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

from .errors import not_found

STATIC_DIR = Path(__file__).resolve().parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
HEADERS = {
    # 'self' covers ws:/wss: to this origin in CSP level 3 (every current browser).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (ETag): an upgraded package's page is never a stale one.
    "Cache-Control": "no-cache",
}


class StaticFile:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    def response(self, request: web.Request) -> web.Response:
        headers = {**HEADERS, "ETag": self.etag}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, headers={**headers, "Content-Type": self.content_type})


def load(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file of ``directory`` by name (one level: the page has no subfolders)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.iterdir()):
        kind = TYPES.get(path.suffix)
        if kind is not None and path.is_file():
            files[path.name] = StaticFile(path.read_bytes(), kind)
    if "index.html" not in files:
        raise FileNotFoundError(f"the gateway's page is missing: no index.html in {directory}")
    return files


def add_static_routes(app: web.Application, directory: Path = STATIC_DIR) -> None:
    """Mount ``/`` (the page) and ``/static/{name}`` (its CSS and JavaScript) on ``app``."""
    files = load(directory)

    async def index(request: web.Request) -> web.Response:
        return files["index.html"].response(request)

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        f = files.get(name)
        if f is None:
            raise not_found(f"no static file {name!r}")
        return f.response(request)

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
