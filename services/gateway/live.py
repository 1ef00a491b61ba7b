"""The latest state of each market as seen on the bus (pure): what a stream subscriber gets as
its snapshot, and what the REST ``latest`` route prefers when it is newer than the database.

Per market, per kind (tob, trade, bookstate, depth, ticker, poll, signal, gap, lifecycle,
meta), the newest message; its wire dict and encoded JSON are made once, when first asked for
(or handed in by the stream, which made them for its subscribers): most messages are
replaced by a newer one before anyone reads them, and converting every one was most of the
gateway's CPU.
Bounded: a market that settles (a ``determined``/``settled`` lifecycle event, or a meta/poll
status that says so) leaves at once and its later messages are not kept; past
``max_markets`` the least recently updated market leaves. Both are counted in
:attr:`LiveState.counts` (``evicted`` by reason, ``ignored_closed``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from services.gateway import wire
from shared.messages import Gap, MarketLifecycle, MarketMeta, Message, PollSnapshot

__all__ = ["CLOSED_EVENTS", "CLOSED_STATUSES", "LIVE_KINDS", "Entry", "LiveState"]

#: The kinds kept per market.
LIVE_KINDS = ("tob", "bookstate", "depth", "trade", "ticker", "poll", "signal", "gap", "lifecycle", "meta")
#: As the orderbook's builder: a market that is decided trades no more.
CLOSED_EVENTS = frozenset({"determined", "settled"})
CLOSED_STATUSES = frozenset({"determined", "settled", "finalized"})
#: Lifecycle events / statuses that bring a market back (Kalshi may reopen a paused or
#: wrongly determined market).
OPEN_EVENTS = frozenset({"activated", "created"})
OPEN_STATUSES = frozenset({"open", "active", "initialized", "unopened"})


_ENC = msgspec.json.Encoder()


class Wire:
    """One message's wire dict and JSON, made on first use (a gap kept under several markets
    shares one)."""

    __slots__ = ("_data", "_encoded", "msg")

    def __init__(
        self, msg: Message, data: dict[str, Any] | None = None, encoded: bytes | None = None
    ) -> None:
        self.msg = msg
        self._data = data
        self._encoded = encoded

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            # Total for the kinds kept (LiveState.observe is given only what wire serves).
            self._data = wire.convert(self.msg)
        return self._data

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = _ENC.encode(self.data)
        return self._encoded


class Entry:
    """One kind's newest state of one market."""

    __slots__ = ("kind", "source", "ticker", "ts_ns")

    def __init__(self, kind: str, ticker: str, ts_ns: int, source: Wire) -> None:
        self.kind = kind
        self.ticker = ticker
        #: ts_recv of the message (ns): what "newer than the database row" compares.
        self.ts_ns = ts_ns
        self.source = source

    @property
    def data(self) -> dict[str, Any]:
        return self.source.data

    @property
    def encoded(self) -> bytes:
        return self.source.encoded


def tickers_of(msg: Message) -> list[str]:
    """The markets a message is about (a gap may name many)."""
    if isinstance(msg, Gap):
        return list(msg.tickers)
    ticker = getattr(msg, "ticker", None)
    return [ticker] if isinstance(ticker, str) else []


def _closing(msg: Message) -> bool | None:
    """True: ``msg`` says its market is decided; False: open again; None: says neither."""
    if isinstance(msg, MarketLifecycle):
        if msg.event_type in CLOSED_EVENTS:
            return True
        return False if msg.event_type in OPEN_EVENTS else None
    if isinstance(msg, (MarketMeta, PollSnapshot)):
        if msg.status in CLOSED_STATUSES:
            return True
        return False if msg.status in OPEN_STATUSES else None
    return None


class LiveState:
    def __init__(self, max_markets: int) -> None:
        if max_markets < 1:
            raise ValueError("max_markets must be at least 1")
        self.max_markets = max_markets
        #: ticker -> kind -> Entry, least recently updated first.
        self._markets: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        #: Decided markets (bounded like the markets, oldest forgotten first).
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.counts: dict[tuple[str, str], int] = {}

    def _count(self, name: str, label: str = "", n: int = 1) -> None:
        key = (name, label)
        self.counts[key] = self.counts.get(key, 0) + n

    def __len__(self) -> int:
        return len(self._markets)

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._markets

    def observe(
        self, msg: Message, kind: str, data: dict[str, Any] | None = None, encoded: bytes | None = None
    ) -> None:
        """Keep ``msg`` as its markets' newest ``kind`` (``data``, ``encoded``: its wire dict and
        JSON when the caller made them already; else made when first read)."""
        if kind not in LIVE_KINDS:
            return
        closing = _closing(msg)
        source: Wire | None = None
        for ticker in tickers_of(msg):
            if closing:
                self._close(ticker)
                continue
            if closing is False:
                self._closed.pop(ticker, None)
            elif ticker in self._closed:
                self._count("ignored_closed")
                continue
            if source is None:
                source = Wire(msg, data, encoded)
            self._put(Entry(kind, ticker, msg.ts_recv, source))

    def _put(self, entry: Entry) -> None:
        market = self._markets.get(entry.ticker)
        if market is None:
            market = self._markets[entry.ticker] = {}
            while len(self._markets) > self.max_markets:
                self._markets.popitem(last=False)
                self._count("evicted", "cap")
        else:
            self._markets.move_to_end(entry.ticker)
        market[entry.kind] = entry

    def _close(self, ticker: str) -> None:
        if self._markets.pop(ticker, None) is not None:
            self._count("evicted", "settled")
        self._closed[ticker] = None
        self._closed.move_to_end(ticker)
        while len(self._closed) > self.max_markets:
            self._closed.popitem(last=False)

    # ---- reads -------------------------------------------------------------------------------
    def get(self, kind: str, ticker: str) -> Entry | None:
        market = self._markets.get(ticker)
        return None if market is None else market.get(kind)

    def latest(self, ticker: str) -> dict[str, dict[str, Any]] | None:
        """Every kind's newest wire dict of ``ticker`` (None: nothing live about it)."""
        market = self._markets.get(ticker)
        if market is None:
            return None
        return {kind: entry.data for kind, entry in market.items()}

    def tickers(self) -> list[str]:
        return list(self._markets)

    def entries(
        self,
        kinds: Iterable[str],
        tickers: Iterable[str] | None = None,
        accept: Callable[[Entry], bool] | None = None,
    ) -> Iterator[Entry]:
        """The entries of ``kinds`` of ``tickers`` (None: every market) that ``accept`` takes,
        market by market.

        A gap naming several markets is kept under each of them but given once (under the
        first market it is accepted under).
        """
        wanted = tuple(kinds)
        names: Iterable[str] = list(self._markets) if tickers is None else tickers
        seen_gaps: set[int] = set()  # ids of the Wire a gap's entries share
        for ticker in names:
            market = self._markets.get(ticker)
            if market is None:
                continue
            for kind in wanted:
                entry = market.get(kind)
                if entry is None or (accept is not None and not accept(entry)):
                    continue
                if kind == "gap":
                    if id(entry.source) in seen_gaps:
                        continue
                    seen_gaps.add(id(entry.source))
                yield entry
