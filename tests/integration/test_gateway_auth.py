"""The gateway off loopback: it refuses to start without a token, and with one every API route
needs it (401 without, 200 with); the per-client rate limit, the request size limit and CORS,
on a real ``kxfeed worker gateway`` process bound to 0.0.0.0 port 0 (the port it reports)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Config
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import ROOT, clean_env, kxfeed_cmd, spawn, stop

TOKEN = "s3cr3t-token-for-the-gateway-test"


def http(
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    data: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers=headers or {}, method=method, data=data
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, hdrs, raw = err.code, dict(err.headers), err.read()
    body = json.loads(raw) if raw and hdrs.get("Content-Type", "").startswith("application/json") else raw
    return status, hdrs, body


class Gateway:
    """One gateway process alone (no bus, no writer: the routes that need them answer 503)."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, **gateway: Any) -> None:
        self.cfg: Config = make_config(tmp, gateway={"host": "0.0.0.0", **gateway})
        self.path = write_config(self.cfg, tmp / "kx.toml")
        self.log = tmp / "gateway.log"
        self.env = clean_env(**(env or {}))

    def __enter__(self) -> Gateway:
        with open(self.log, "wb") as out:
            self.proc = spawn(
                "worker", "gateway", "--config", str(self.path), env=self.env, stdout=out, stderr=out
            )
        self.port = reported_port(self.cfg, "gateway", "http")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            stop(self.proc)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    return f


def test_refuses_a_non_loopback_bind_without_a_token(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, gateway={"host": "0.0.0.0"})
    path = write_config(cfg, tmp_path / "kx.toml")
    out = subprocess.run(
        kxfeed_cmd("worker", "gateway", "--config", str(path)),
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 78, out.stderr
    assert "is not a loopback address: a token is required" in out.stderr
    # kxfeed check says the same before anything starts.
    check = subprocess.run(
        kxfeed_cmd("check", "--config", str(path), "--offline"),
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode != 0 and "a token is required" in check.stderr


def test_a_token_file_others_can_read_is_refused(tmp_path: Path, token_file: Path) -> None:
    token_file.chmod(0o644)
    path = write_config(
        make_config(tmp_path, gateway={"host": "0.0.0.0", "token_file": str(token_file)}),
        tmp_path / "kx.toml",
    )
    out = subprocess.run(
        kxfeed_cmd("worker", "gateway", "--config", str(path)),
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 78 and "chmod 600" in out.stderr
    assert TOKEN not in out.stderr


@pytest.fixture
def gateway(tmp_path: Path, token_file: Path) -> Iterator[Gateway]:
    with Gateway(
        tmp_path, token_file=str(token_file), rate_per_s=0.001, rate_burst=40, max_request_bytes=2048,
        cors_origins=["https://dash.example"],
    ) as g:  # fmt: skip
        yield g


def test_every_route_needs_the_token(gateway: Gateway) -> None:
    p = gateway.port
    good = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/api/v1/healthz", "/api/v1/markets", "/api/v1/openapi.json", "/api/v1/markets/X/gaps"):
        status, hdrs, body = http(p, path)
        assert status == 401 and body["error"] == "unauthorized", (path, body)
        assert hdrs["WWW-Authenticate"].startswith("Bearer")
        status, _, body = http(p, path, headers={"Authorization": "Bearer not-the-token-at-all"})
        assert status == 401 and TOKEN not in json.dumps(body)
    status, _, body = http(p, "/api/v1/healthz", headers=good)
    assert status == 200 and body["status"] == "ok"
    status, _, doc = http(p, "/api/v1/openapi.json", headers=good)
    assert status == 200 and doc["openapi"].startswith("3.1")
    # No database here: a data route answers 503 in JSON, never a 500 or HTML.
    status, _, body = http(p, "/api/v1/markets", headers=good)
    assert status == 503 and body["error"] == "unavailable"
    assert TOKEN not in gateway.log.read_text()
    metrics = (
        urllib.request.urlopen(
            f"http://127.0.0.1:{reported_port(gateway.cfg, 'gateway')}/metrics", timeout=10
        )
        .read()
        .decode()
    )
    assert 'kxfeed_gateway_rejected_total{reason="auth"} 8.0' in metrics
    assert TOKEN not in metrics


def test_rate_size_and_cors(gateway: Gateway) -> None:
    p = gateway.port
    good = {"Authorization": f"Bearer {TOKEN}"}
    status, hdrs, _ = http(p, "/api/v1/healthz", headers={**good, "Origin": "https://dash.example"})
    assert status == 200 and hdrs["Access-Control-Allow-Origin"] == "https://dash.example"
    status, hdrs, _ = http(p, "/api/v1/healthz", headers={**good, "Origin": "https://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in hdrs
    pre = {"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"}
    status, hdrs, _ = http(p, "/api/v1/markets", headers=pre, method="OPTIONS")
    assert status == 204 and hdrs["Access-Control-Allow-Origin"] == "https://dash.example"
    status, _, body = http(p, "/api/v1/healthz", headers=good, method="POST", data=b"x" * 4096)
    assert status == 413 and body["error"] == "too_large"
    status, _, body = http(p, "/api/v1/healthz", headers=good, method="POST", data=b"{}")
    assert status == 405 and body["error"] == "method_not_allowed"
    # The bucket (40, refilling at one per 1,000 s) runs dry within this loop whatever the timing.
    statuses = []
    for _ in range(45):
        status, hdrs, body = http(p, "/api/v1/healthz", headers=good)
        statuses.append(status)
        if status == 429:
            assert body["error"] == "rate_limited" and int(hdrs["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    metrics = (
        urllib.request.urlopen(
            f"http://127.0.0.1:{reported_port(gateway.cfg, 'gateway')}/metrics", timeout=10
        )
        .read()
        .decode()
    )
    for reason in ("rate", "size"):
        assert f'kxfeed_gateway_rejected_total{{reason="{reason}"}}' in metrics, reason
    assert 'kxfeed_gateway_requests_total{route="/api/v1/healthz",status="429"}' in metrics


def test_the_stream_takes_the_token_by_header_or_by_subprotocol(gateway: Gateway) -> None:
    """What the page does (a browser's WebSocket cannot set Authorization): the token as the
    subprotocol kxfeed.bearer.<base64url(token)> next to kxfeed, which the gateway answers."""
    import asyncio
    import base64

    import aiohttp

    url = f"http://127.0.0.1:{gateway.port}/api/v1/stream"
    b64 = base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")

    async def subscribed(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_json({"op": "subscribe", "id": 1, "topics": ["tob."]})
        while (msg := await ws.receive_json(timeout=30))["type"] == "heartbeat":
            pass
        assert msg["type"] == "subscribed" and msg["id"] == 1

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            refused: list[dict[str, Any]] = [
                {},
                {"headers": {"Authorization": "Bearer wrong"}},
                {"protocols": ("kxfeed", "kxfeed.bearer." + base64.urlsafe_b64encode(b"wrong").decode())},
                {"protocols": ("kxfeed", "kxfeed.bearer.%%%not-base64")},
                {"protocols": ("kxfeed", "kxfeed.bearer." + b64[:-2])},
            ]
            for kwargs in refused:
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await http.ws_connect(url, **kwargs)
                assert err.value.status == 401, kwargs
            async with http.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
                await subscribed(ws)
            async with http.ws_connect(url, protocols=("kxfeed", f"kxfeed.bearer.{b64}")) as ws:
                assert ws.protocol == "kxfeed"
                await subscribed(ws)
            async with http.ws_connect(
                url + "?format=ndjson", protocols=(f"kxfeed.bearer.{b64}", "kxfeed")
            ) as ws:
                assert ws.protocol == "kxfeed"
                await subscribed(ws)

    asyncio.run(main())
    assert TOKEN not in gateway.log.read_text() and b64 not in gateway.log.read_text()
