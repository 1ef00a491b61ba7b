"""The page's routes on a real aiohttp server (port 0): ``/`` and ``/static/<file>`` answer from
the package's files with their types, an ETag (304 when unchanged) and the CSP; an unknown file
is a JSON 404 through the app's error middleware; and the shipped files stay what the issue
asks: no external fetch, no data through innerHTML, no build step (the page loads the files as
they are in the package)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from services.gateway.app import Deps, build
from services.gateway.static_routes import STATIC_DIR, add_static_routes
from tests.support.config import make_config


class _Server:
    """The page's routes behind the gateway's middleware, on 127.0.0.1:0 in a thread of its own."""

    def __init__(self, tmp: Path) -> None:
        cfg = make_config(tmp).gateway
        deps = Deps(cfg=cfg, engine=None, orderbook="", supervisor="", log=logging.getLogger("test"))  # type: ignore[arg-type]
        self.app = build(deps, [])
        add_static_routes(self.app)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the test server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    s = _Server(tmp_path)
    yield s
    s.close()


def test_the_page_and_its_files_are_served_with_type_etag_and_csp(server: _Server) -> None:
    status, headers, body = server.get("/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == (STATIC_DIR / "index.html").read_bytes()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in (("kxfeed.js", "text/javascript"), ("kxfeed.css", "text/css")):
        status, headers, body = server.get(f"/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind), (name, headers)
        assert body == (STATIC_DIR / name).read_bytes()
        again, h2, empty = server.get(f"/static/{name}", **{"If-None-Match": headers["ETag"]})
        assert (again, empty) == (304, b""), name
        assert h2["ETag"] == headers["ETag"]


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/..%2Fstatic_routes.py", "/static/%2e%2e"])
def test_an_unknown_file_is_a_json_404_and_never_a_file_outside(server: _Server, path: str) -> None:
    status, headers, body = server.get(path)
    assert status == 404, (path, body[:200])
    assert headers["Content-Type"].startswith("application/json")
    assert b"add_static_routes" not in body


def _shipped() -> dict[str, str]:
    return {p.name: p.read_text() for p in STATIC_DIR.iterdir()}


def test_the_page_loads_nothing_from_elsewhere_and_writes_no_html_from_data() -> None:
    files = _shipped()
    assert set(files) >= {"index.html", "kxfeed.js", "kxfeed.css"}
    html = files["index.html"]
    refs: list[Any] = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(not re.match(r"^(?:[a-z]+:)?//", r) for r in refs), refs
    for name, text in files.items():
        assert not re.search(r"https?://|wss?://", text), f"{name} names another origin"
        assert not re.search(r"@import|\burl\(", text), f"{name} fetches a resource"
    js = files["kxfeed.js"]
    # Data reaches the DOM through textContent only.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
