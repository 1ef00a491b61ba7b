"""A recorded session read back from the producers' journals, for the replay server.

The connector journals every message it publishes (``<journal.dir>/<worker id>/``), in the
order it published them: market metadata, books (snapshots, deltas), trades and tickers. The
journals' format never changes with the database schema, so replay reads them rather than the
store. Times are kxfeed's receive times (``ts_recv``): the window selects on them and replay
paces by them; frames carry the exchange's own times (``ts_exch``) as recorded.

:func:`load` makes one pass over the journals up to the window's end and returns a
:class:`Recording`: the markets (their last metadata), each book and its statistics as they
stood at the window's start, and what the window holds. :meth:`Recording.messages` then
streams the window itself (a second pass, lazily: memory stays bounded by one segment).
Only what Kalshi's public channels sent is replayed: WebSocket snapshots and trades (not the
gap filler's REST backfill), deltas and tickers.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from shared import journal
from shared.messages import (
    BATCH_DECODER,
    DECODE_ERRORS,
    BookDelta,
    BookSnapshot,
    MarketMeta,
    Message,
    Ticker,
    Trade,
)

Book = dict[int, int]
Replayed = BookSnapshot | BookDelta | Trade | Ticker

#: Times a replay window may name (ns since the Unix epoch): 2000-01-01 .. 2100-01-01.
_MIN_NS = 946_684_800 * 10**9
_MAX_NS = 4_102_444_800 * 10**9


class ReplayError(Exception):
    """Input the replay cannot serve (bad times, no data, unknown markets): the message says why."""


class ReplayWindow(NamedTuple):
    """``since`` inclusive, ``until`` exclusive, ns since the Unix epoch (receive time)."""

    since: int
    until: int


def parse_time(text: str, what: str) -> int:
    """``text`` as ns since the Unix epoch: ISO 8601 (``2026-12-03T14:00:00Z``; no offset = UTC)
    or Unix milliseconds."""
    raw = text.strip()
    if raw.isdigit():
        ns = int(raw) * 1_000_000
    else:
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ReplayError(
                f"{what}: {text!r} is not a time; use ISO 8601 (2026-12-03T14:00:00Z) or Unix ms"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if not _MIN_NS <= ns < _MAX_NS:
        raise ReplayError(f"{what}: {text!r} is outside 2000..2100")
    return ns


def format_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def journal_dirs(root: str | Path) -> list[Path]:
    """Every publisher's journal under ``root`` (one directory each, with segments)."""
    base = Path(root)
    if not base.is_dir():
        return []
    return [d for d in sorted(base.iterdir()) if d.is_dir() and journal.list_segments(d)]


class Skipped(Counter[str]):
    """What the journals held that replay does not serve, by reason (logged by the caller)."""


def _messages(directory: Path, skipped: Skipped) -> Iterator[Message]:
    for rec in journal.read(directory):
        try:
            batch = BATCH_DECODER.decode(rec.payload)
        except DECODE_ERRORS:
            skipped["undecodable_record"] += 1
            continue
        yield from batch


def merged(dirs: list[Path], skipped: Skipped) -> Iterator[Message]:
    """All journals' messages: each journal in its own order, journals merged by receive time.

    One publisher's order is kept exactly (a connector groups a batch by market, so its receive
    times are not sorted across markets); across publishers (connector shards) only the order
    of different markets is decided here.
    """
    streams = [_messages(d, skipped) for d in dirs]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda m: m.ts_recv)


_SERVED = frozenset({BookSnapshot, BookDelta, Trade, Ticker})


def _served(m: Message) -> bool:
    if isinstance(m, BookSnapshot | Trade):
        return m.source == "ws"
    return isinstance(m, BookDelta | Ticker)


class Recording:
    """What :func:`load` found: the markets and their state at ``window.since``."""

    def __init__(self, dirs: list[Path], window: ReplayWindow, tickers: set[str] | None) -> None:
        self.dirs = dirs
        self.window = window
        self.tickers = tickers
        self.metas: dict[str, MarketMeta] = {}
        self.market_ids: dict[str, str] = {}
        #: Books at ``since`` (only markets whose book was known then).
        self.books: dict[str, tuple[Book, Book]] = {}
        #: Markets whose book was not known at ``since``: their first snapshot in the window is
        #: their starting book (nothing of it was recorded in between).
        self.seeded: set[str] = set()
        #: The last ticker message before ``since`` (statistics at the start).
        self.stats: dict[str, Ticker] = {}
        #: Messages in the window, by kind, and per market.
        self.counts: Counter[str] = Counter()
        self.per_market: Counter[str] = Counter()
        self.first_ns = 0
        self.last_ns = 0
        self.skipped = Skipped()
        #: Markets with a book, trade or ticker recorded before the window's end.
        self.seen: set[str] = set()

    @property
    def markets(self) -> list[str]:
        """The markets replayed: the ``--tickers`` asked for, else every market with metadata
        and a book, trade or ticker recorded (not those only a poller described)."""
        if self.tickers is not None:
            return [t for t in self.metas if t in self.tickers]
        return [t for t in self.metas if t in self.seen]

    def messages(self) -> Iterator[Replayed]:
        """The window's replayed messages, in recorded order (a fresh pass over the journals)."""
        since, until = self.window
        wanted = self.tickers
        # What this pass skips was counted (and reported) by load's pass over the same records.
        for m in merged(self.dirs, Skipped()):
            kind = type(m)
            if (
                not since <= m.ts_recv < until
                or kind not in _SERVED
                or ((kind is BookSnapshot or kind is Trade) and m.source != "ws")  # type: ignore[union-attr]
            ):
                continue
            if wanted is not None and m.ticker not in wanted:  # type: ignore[union-attr]
                continue
            yield m  # type: ignore[misc]  # _served: one of the replayed kinds


def load(root: str | Path, window: ReplayWindow | None = None, tickers: list[str] | None = None) -> Recording:
    """Read the journals under ``root`` for ``window`` (None: everything recorded)."""
    dirs = journal_dirs(root)
    if not dirs:
        raise ReplayError(f"no journal under {root}: nothing was recorded there (is [journal] dir right?)")
    if window is not None and window.since >= window.until:
        raise ReplayError(
            f"--since ({format_ns(window.since)}) must be before --until ({format_ns(window.until)})"
        )
    rec = Recording(dirs, window or ReplayWindow(0, _MAX_NS), set(tickers) if tickers else None)
    seen = rec.seen
    first = last = None
    since, until = rec.window
    for m in merged(dirs, rec.skipped):
        ts = m.ts_recv
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        if ts >= until:
            continue  # a later publisher's journal may still hold earlier messages
        if isinstance(m, MarketMeta):
            rec.metas[m.ticker] = m
            continue
        if not _served(m):
            continue
        ticker = m.ticker  # type: ignore[union-attr]  # every served kind names its market
        seen.add(ticker)
        if isinstance(m, BookSnapshot | BookDelta | Ticker):
            rec.market_ids.setdefault(ticker, m.market_id)
        if rec.tickers is not None and ticker not in rec.tickers:
            continue
        if ts < since:
            _before(rec, m)
        else:
            if isinstance(m, BookSnapshot) and ticker not in rec.books:
                rec.books[ticker] = (dict(m.yes), dict(m.no))
                rec.seeded.add(ticker)
            rec.counts[m.kind] += 1
            rec.per_market[ticker] += 1
    if first is None or last is None:
        raise ReplayError(f"the journals under {root} hold no readable records")
    rec.first_ns, rec.last_ns = first, last + 1
    _check(rec, seen, root)
    return rec


def _before(rec: Recording, m: Message) -> None:
    """Fold a message before the window into the state at its start."""
    if isinstance(m, BookSnapshot):
        rec.books[m.ticker] = (dict(m.yes), dict(m.no))
    elif isinstance(m, BookDelta):
        book = rec.books.get(m.ticker)
        if book is None:
            rec.skipped["delta_before_any_snapshot"] += 1
            return
        side = book[0] if m.side == "yes" else book[1]
        size = side.get(m.price, 0) + m.delta
        if size > 0:
            side[m.price] = size
        elif size == 0:
            side.pop(m.price, None)
        else:
            # The recording lost something here (a gap); the next snapshot puts it right.
            rec.skipped["delta_below_zero"] += 1
            side.pop(m.price, None)
    elif isinstance(m, Ticker):
        rec.stats[m.ticker] = m


def _check(rec: Recording, seen: set[str], root: str | Path) -> None:
    span = f"{format_ns(rec.first_ns)} .. {format_ns(rec.last_ns)}"
    if rec.tickers is not None:
        unknown = sorted(t for t in rec.tickers if t not in seen and t not in rec.metas)
        if unknown:
            known = sorted(seen | set(rec.metas))
            sample = ", ".join(known[:8]) + (f" (and {len(known) - 8} more)" if len(known) > 8 else "")
            raise ReplayError(
                f"not in the recording: {', '.join(unknown)}; recorded markets: {sample or 'none'}"
            )
    missing = sorted(t for t in (rec.tickers or seen) if t not in rec.metas)
    if missing:
        raise ReplayError(
            f"no market metadata recorded for {', '.join(missing[:8])}: the journals under {root} start "
            "after the connector announced these markets (pruned?)"
        )
    if not rec.counts:
        since, until = rec.window
        raise ReplayError(
            f"no data between {format_ns(since)} and {format_ns(until)}"
            + (f" for {', '.join(sorted(rec.tickers))}" if rec.tickers else "")
            + f"; the journals hold {span}"
        )
