"""Helpers for tests that run against the simulator: a started sim, signed headers, and a
plain ``websockets`` client that rebuilds books from snapshots and deltas.

``BookClient`` is deliberately independent of kxfeed's connector: it is the
"client written by someone else" the simulator is judged by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.exchange_sim.server import ExchangeSim
from services.exchange_sim.ws import WS_PATH
from shared.config import SimConfig
from shared.kalshi.auth import SIM_DEV_KEY_ID, auth_headers, generate_private_key
from shared.units import ONE_DOLLAR, parse_count, parse_price

_KEY: RSAPrivateKey | None = None
#: Data frames numbered per sid (the December AsyncAPI added trade and the lifecycle channels;
#: event_lifecycle and event_fee_update share the market_lifecycle_v2 sid's sequence).
SEQUENCED_DATA = frozenset(
    {
        "orderbook_snapshot",
        "orderbook_delta",
        "trade",
        "market_lifecycle_v2",
        "event_lifecycle",
        "event_fee_update",
    }
)


def client_key() -> RSAPrivateKey:
    """One RSA key per process (generating keys is slow)."""
    global _KEY
    if _KEY is None:
        _KEY = generate_private_key()
    return _KEY


def ws_headers(
    key: RSAPrivateKey | None = None, key_id: str = SIM_DEV_KEY_ID, now_ms: int | None = None
) -> dict[str, str]:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return auth_headers(key_id, key or client_key(), "GET", WS_PATH, now)


@contextlib.asynccontextmanager
async def running_sim(**overrides: Any) -> AsyncIterator[ExchangeSim]:
    """A started simulator on a free port trusting :func:`client_key` as the dev key."""
    fields: dict[str, Any] = {"port": 0, "markets": 12, "rate": 200.0, **overrides}
    sim = ExchangeSim(SimConfig(**fields), keys={SIM_DEV_KEY_ID: client_key().public_key()})
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class BookClient:
    """Signs, connects, subscribes; checks per-sid seq contiguity and rebuilds books.

    Books are kept as the simulator's truth keeps them: NO side in NO prices
    (``use_yes_price`` frames are converted back).
    """

    def __init__(self, url: str, key: RSAPrivateKey | None = None) -> None:
        self.url = url
        self.key = key or client_key()
        self.ws: Any = None
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        self.last_seq: dict[int, int] = {}
        self.seq_errors: list[tuple[int, int, int]] = []  # (sid, expected, got)
        self.book_errors: list[dict[str, Any]] = []  # deltas that would take a level below zero
        self.yes_price_sids: set[int] = set()
        self.book_sids: set[int] = set()
        self._next_id = 1

    async def connect(self, **kw: Any) -> BookClient:
        self.ws = await websockets.connect(
            self.url, additional_headers=ws_headers(self.key), max_size=None, ping_interval=None, **kw
        )
        return self

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, cmd: str, params: dict[str, Any] | None = None) -> int:
        cid = self._next_id
        self._next_id += 1
        body: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            body["params"] = params
        await self.ws.send(json.dumps(body))
        return cid

    async def subscribe(
        self, channels: list[str], tickers: list[str] | None = None, **params: Any
    ) -> dict[str, int]:
        """Subscribe and wait for every ``subscribed`` reply; returns channel -> sid."""
        p: dict[str, Any] = {"channels": channels, **params}
        if tickers is not None:
            p["market_tickers"] = tickers
        cid = await self.send("subscribe", p)
        sids: dict[str, int] = {}
        while len(sids) < len(set(channels)):
            f = await self.next()
            if f.get("id") == cid and f.get("type") == "subscribed":
                sids[f["msg"]["channel"]] = f["msg"]["sid"]
                if f["msg"]["channel"] == "orderbook_delta":
                    self.book_sids.add(f["msg"]["sid"])
                    if params.get("use_yes_price"):
                        self.yes_price_sids.add(f["msg"]["sid"])
            elif f.get("id") == cid and f.get("type") == "error":
                raise RuntimeError(f"subscribe failed: {f}")
        return sids

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):  # no extra task per frame (wait_for makes one)
            raw = await self.ws.recv()
        self.raw.append(raw)
        f: dict[str, Any] = json.loads(raw)
        self.frames.append(f)
        self._apply(f)
        return f

    async def pump(self, quiet: float = 0.3, limit: float = 3.0) -> int:
        """Read until nothing arrives for ``quiet`` seconds (or ``limit`` passes); frames read."""
        n = 0
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                await self.next(timeout=quiet)
            except TimeoutError:
                break
            n += 1
        return n

    async def pump_until(self, done: Callable[[], bool], limit: float = 20.0) -> bool:
        """Read frames until ``done()`` holds; False when ``limit`` seconds pass first."""
        deadline = time.monotonic() + limit
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await self.next(timeout=left)
            except TimeoutError:
                return done()
        return True

    def _apply(self, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "ok" and isinstance(f.get("seq"), int) and f.get("sid") in self.last_seq:
            # Section 0: an ok whose seq is last + 1 took that number; one equal to last did not.
            if f["seq"] == self.last_seq[f["sid"]] + 1:
                self.last_seq[f["sid"]] = f["seq"]
            return
        if kind in SEQUENCED_DATA and "seq" in f:
            self._check_seq(f["sid"], f["seq"])
        if kind not in ("orderbook_snapshot", "orderbook_delta"):
            return
        msg = f["msg"]
        flip = f["sid"] in self.yes_price_sids
        if kind == "orderbook_snapshot":
            yes = {parse_price(p): parse_count(c) for p, c in msg.get("yes_dollars_fp", [])}
            no = {self._no_price(p, flip): parse_count(c) for p, c in msg.get("no_dollars_fp", [])}
            self.books[msg["market_ticker"]] = (yes, no)
            return
        yes, no = self.books[msg["market_ticker"]]
        if msg["side"] == "yes":
            book, price = yes, parse_price(msg["price_dollars"])
        else:
            book, price = no, self._no_price(msg["price_dollars"], flip)
        size = book.get(price, 0) + parse_count(msg["delta_fp"], signed=True)
        if size < 0:
            # Only after a gap or duplicate: the book is wrong until the next snapshot.
            self.book_errors.append(f)
            size = 0
        if size:
            book[price] = size
        else:
            book.pop(price, None)

    def _check_seq(self, sid: int, seq: int) -> None:
        expected = self.last_seq.get(sid, 0) + 1
        if seq != expected:
            self.seq_errors.append((sid, expected, seq))
        self.last_seq[sid] = max(seq, self.last_seq.get(sid, 0))

    @staticmethod
    def _no_price(text: str, flip: bool) -> int:
        p = parse_price(text)
        return ONE_DOLLAR - p if flip else p

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind]
