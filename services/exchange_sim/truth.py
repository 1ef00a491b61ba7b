"""Ground truth: what the simulator sent to each connection, and the true book of every market.

Tests compare a client's books to :meth:`Truth.book` at a quiet moment
(``ExchangeSim.pause()``), prove nothing was lost with :meth:`Truth.sent`, and
can ask for the book as of any seq a connection saw (:meth:`Truth.book_at_seq`).
Logs are bounded (``truth_max_frames`` per connection, ``truth_max_events``
deltas); what falls off is counted, never silently mistaken for the whole.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Any

from services.exchange_sim.emission import YES
from services.exchange_sim.pricing import taker_fee
from services.exchange_sim.state import ExchangeState
from shared.units import ONE_DOLLAR

Book = dict[int, int]
MAX_CONNECTIONS = 64


class Truth:
    def __init__(
        self, state: ExchangeState, *, max_frames: int = 1_000_000, max_events: int = 2_000_000
    ) -> None:
        self.state = state
        self.max_frames = max_frames
        self.max_events = max_events
        self._sent: dict[int, list[bytes]] = {}
        self._sent_overflow: dict[int, int] = {}
        # conn -> ([index of a batch's first frame], [its send time, wall-clock ns]): one entry a
        # batch, not a frame, so the cost stays off the hot path. Proofs bound what a killed
        # client can have lost by when each frame left the exchange.
        self._sent_at: dict[int, tuple[list[int], list[int]]] = {}
        self._withheld: dict[int, list[tuple[int, int]]] = {}
        # conn -> sid -> delta-log position at which seq (index seq - 1) was produced.
        self._seq_at: dict[int, dict[int, list[int]]] = {}
        # Global delta log; books as they were before its first entry.
        self.deltas: list[tuple[str, int, int, int]] = []
        self.deltas_dropped = 0
        self._base: dict[str, tuple[Book, Book]] = {}
        self.planted: list[dict[str, Any]] = []

    # ---- recording (called by the dispatcher) ------------------------------------------------
    def begin(self) -> None:
        """Start the delta log from the current books (after the initial listing)."""
        self._base = {t: (dict(m.yes), dict(m.no)) for t, m in self.state.markets.items()}
        self.deltas.clear()

    def delta(self, ticker: str, side: int, price: int, delta: int) -> None:
        if len(self.deltas) >= self.max_events:
            # Fold the oldest half into the base so replay stays exact.
            half = len(self.deltas) // 2
            for t, s, p, d in self.deltas[:half]:
                yes, no = self._base.setdefault(t, ({}, {}))
                _apply(yes if s == YES else no, p, d)
            self.deltas_dropped += half
            del self.deltas[:half]
        self.deltas.append((ticker, side, price, delta))

    def position(self) -> int:
        """Deltas applied so far (the delta log's end, counting what was folded away)."""
        return self.deltas_dropped + len(self.deltas)

    def marks_for(self, conn_id: int, sid: int) -> list[int]:
        """The list the dispatcher appends each seq-numbered frame's :meth:`position` to."""
        return self._seq_at.setdefault(conn_id, {}).setdefault(sid, [])

    def mark(self, conn_id: int, sid: int, seq: int) -> None:
        """Remember where in the delta log frame ``seq`` of ``sid`` was produced."""
        marks = self.marks_for(conn_id, sid)
        if len(marks) < self.max_frames:
            marks.append(self.position())

    def sent_frames(self, conn_id: int, batch: list[bytes], at_ns: int) -> None:
        """Record one write of ``batch`` to ``conn_id`` at ``at_ns`` (wall-clock ns)."""
        log = self._sent.get(conn_id)
        if log is None:
            log = self._sent[conn_id] = []
            self._sent_at[conn_id] = ([], [])
            self._prune()
        room = self.max_frames - len(log)
        if room > 0 and batch:
            starts, times = self._sent_at[conn_id]
            starts.append(len(log))
            times.append(at_ns)
        if room >= len(batch):
            log.extend(batch)
        else:
            log.extend(batch[: max(0, room)])
            self._sent_overflow[conn_id] = self._sent_overflow.get(conn_id, 0) + len(batch) - max(0, room)

    def _prune(self) -> None:
        """Keep the logs of the newest ``MAX_CONNECTIONS`` connections (reconnect storms add up)."""
        while len(self._sent) > MAX_CONNECTIONS:
            old = min(self._sent)
            dropped = len(self._sent.pop(old))
            self._sent_overflow[old] = self._sent_overflow.get(old, 0) + dropped
            self._seq_at.pop(old, None)
            self._withheld.pop(old, None)
            self._sent_at.pop(old, None)

    def withheld(self, conn_id: int, sid: int, seq: int) -> None:
        self._withheld.setdefault(conn_id, []).append((sid, seq))

    # ---- queries ----------------------------------------------------------------------------
    def book(self, ticker: str) -> tuple[Book, Book]:
        """(YES bids, NO bids): price in $0.0001 -> size in hundredths; NO side in NO prices."""
        m = self.state.markets[ticker]
        return dict(m.yes), dict(m.no)

    def books(self) -> dict[str, tuple[Book, Book]]:
        return {t: (dict(m.yes), dict(m.no)) for t, m in self.state.markets.items()}

    def sent(self, conn_id: int) -> list[bytes]:
        """Every frame written to connection ``conn_id``, in order (up to ``max_frames``)."""
        return list(self._sent.get(conn_id, []))

    def sent_times(self, conn_id: int) -> list[tuple[int, int]]:
        """(index of the first frame of a write, wall-clock ns of that write), in order: frame i
        of :meth:`sent` left at the time of the last entry whose index is <= i."""
        starts, times = self._sent_at.get(conn_id, ([], []))
        return list(zip(starts, times, strict=True))

    def sent_at(self, conn_id: int, index: int) -> int:
        """Wall-clock ns at which frame ``index`` of :meth:`sent` was written to the socket."""
        starts, times = self._sent_at.get(conn_id, ([], []))
        i = bisect.bisect_right(starts, index) - 1
        if i < 0 or index >= len(self._sent.get(conn_id, ())):
            raise KeyError(f"no frame {index} on connection {conn_id}")
        return times[i]

    def sent_truncated(self, conn_id: int) -> int:
        return self._sent_overflow.get(conn_id, 0)

    def gaps(self, conn_id: int) -> list[tuple[int, int]]:
        """(sid, seq) of frames deliberately withheld from ``conn_id`` by the gap fault."""
        return list(self._withheld.get(conn_id, []))

    def connections(self) -> list[int]:
        return sorted(self._sent)

    def book_at_seq(self, conn_id: int, sid: int, seq: int, ticker: str) -> tuple[Book, Book]:
        """The true book of ``ticker`` just after frame (sid, seq) was produced for ``conn_id``."""
        marks = self._seq_at[conn_id][sid]
        if not 1 <= seq <= len(marks):
            raise KeyError(f"no record of seq {seq} on sid {sid} of connection {conn_id}")
        at = marks[seq - 1]
        if at < self.deltas_dropped:
            raise KeyError(f"seq {seq} of sid {sid} is older than the kept delta log")
        base = self._base.get(ticker, ({}, {}))
        yes, no = dict(base[0]), dict(base[1])
        for t, s, p, d in self.deltas[: at - self.deltas_dropped]:
            if t == ticker:
                _apply(yes if s == YES else no, p, d)
        return yes, no

    def complement_arbs(self) -> list[dict[str, Any]]:
        """Events whose outcomes' best YES asks, plus one contract's taker fee each, sum below $1 now.

        Only mutually exclusive events with every market active and offered count.
        """
        out = []
        for ev in self.state.events.values():
            d = ev.d
            if not d.mutually_exclusive:
                continue
            markets = [self.state.markets[m.ticker] for m in d.markets]
            if any(m.status != "active" or not m.no for m in markets):
                continue
            asks = {m.d.ticker: ONE_DOLLAR - max(m.no) for m in markets}
            fees = sum(taker_fee(a) for a in asks.values())
            total = sum(asks.values()) + fees
            if total < ONE_DOLLAR:
                out.append(
                    {"event_ticker": d.event_ticker, "asks": asks, "fees": fees, "edge": ONE_DOLLAR - total}
                )
        return out

    def dump(self, path: str | Path | None = None) -> dict[str, Any]:
        """Final books (prices and sizes as Kalshi strings' integer units) and market status."""
        out = {
            t: {
                "status": m.status,
                "yes": sorted(m.yes.items()),
                "no": sorted(m.no.items()),
                "volume": m.volume,
                "last_price": m.last_price,
            }
            for t, m in sorted(self.state.markets.items())
        }
        doc = {
            "books": out,
            "planted": self.planted,
            "complement_arbs": self.complement_arbs(),
            "deltas": self.deltas_dropped + len(self.deltas),
        }
        if path is not None:
            Path(path).write_text(json.dumps(doc, indent=1))
        return doc


def _apply(book: Book, price: int, delta: int) -> None:
    size = book.get(price, 0) + delta
    if size:
        book[price] = size
    else:
        book.pop(price, None)
