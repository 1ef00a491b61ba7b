"""Redundant collectors: one book per (market, collector line), one of them published.

Two collectors of the same markets (``[connector] collector``, see shared/collectors.py) each
publish their own sequenced book stream. Applied to one builder they would fight (each other's
conn/sid looks like a switch, and every delta of the other line invalidates the book), so
:class:`Lines` routes each line's messages to a :class:`Builder` of its own, gives what is not a
line's (the poller's ladders and lifecycle, the gap filler's REST books, our own echo) to every
builder, and lets :class:`LineSelector` choose per market the line whose book is published.

The rules (pure, ``now`` passed in):

- a market's active line stays while its book is VALID and its collector alive: a line that
  comes back never takes a market from a VALID one;
- when the active book goes INVALID, or its collector's heartbeats stop, the market switches at
  once to another line whose book is VALID: consumers see a VALID ``bookstate`` (reason
  ``failover``) and tops continuing from the other line's book, never an INVALID interval;
- only when no line is usable is the active line's INVALID state published.

The shell reads the same attributes a :class:`Builder` offers the emitter and the queries
(``books``, ``dirty``, ``take_transitions()``, ``invalid``, ``closed``), so those are unchanged.
Each failover is kept in ``failovers`` (market, from, to, why) for the shell to count and log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any, NamedTuple

from shared.book.book import MarketBook
from shared.book.builder import Builder, Transition
from shared.collectors import connector_id, line_of
from shared.messages import BookSnapshot

_UNKNOWN = object()
_PUB = attrgetter("pub")
DOWN = "collector_down"
#: Workers whose book messages are every line's: REST books and trade backfill (the gap filler),
#: market metadata (the poller), our own echo. Any other publisher that is no connector (a tool,
#: a benchmark's feeder) is a line of its own, named ``~<publisher>``.
SHARED = frozenset({"gapfill", "poller", "orderbook"})


class Failover(NamedTuple):
    ticker: str
    from_line: str
    to_line: str
    why: str


class LineSelector:
    """Per market, the line whose book is published."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}
        self.failovers: list[Failover] = []

    def choose(self, ticker: str, usable: Mapping[str, bool], why: str) -> str | None:
        """The line to publish ``ticker`` from. ``usable``: each line holding a book of it ->
        that book is VALID and its collector alive; ``why``: the reason recorded if the active
        line is left. None when no line holds a book of it."""
        cur = self.active.get(ticker)
        if cur is not None and usable.get(cur, False):
            return cur
        best = min((ln for ln, ok in usable.items() if ok), default=None)
        if best is None:
            # Nothing to switch to: the active line (or, with none yet, any) shows its state.
            if cur is None or cur not in usable:
                cur = min(usable, default=None)
            if cur is None:
                self.active.pop(ticker, None)
            else:
                self.active[ticker] = cur
            return cur
        if cur is not None and cur != best:
            self.failovers.append(Failover(ticker, cur, best, why))
        self.active[ticker] = best
        return best

    def take_failovers(self) -> list[Failover]:
        out = self.failovers
        self.failovers = []
        return out


class Lines:
    """Every line's builder, and the published view of the active ones."""

    def __init__(self, make_builder: Callable[[], Builder], *, heartbeat_timeout_s: float) -> None:
        self.make_builder = make_builder
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.builders: dict[str, Builder] = {}
        self.seed = make_builder()
        self.selector = LineSelector()
        #: The published view: the active line's book of each market.
        self.books: dict[str, MarketBook] = {}
        self.dirty: set[str] = set()
        self.invalid: set[str] = set()
        self.transitions: list[Transition] = []
        self._route: dict[str, Any] = {}
        #: (line, ticker) -> the connector whose snapshot made that line's book (its shard).
        self.feeder: dict[tuple[str, str], str] = {}
        self.fed: dict[str, set[tuple[str, str]]] = {}
        #: Connector id -> monotonic time of its last heartbeat saying connected.
        self.last_hb: dict[str, float] = {}
        self.down: set[str] = set()
        self.counts_own: dict[str, int] = {}

    # ---- lines -----------------------------------------------------------------------------
    def builder(self, line: str) -> Builder:
        b = self.builders.get(line)
        if b is None:
            b = self.make_builder()
            # What every line shares (ladders, closed markets) may have come before this line.
            b.ladders = dict(self.seed.ladders)
            b.closed = set(self.seed.closed)
            b.hold_requests_until = self.seed.hold_requests_until
            if not self.builders:
                # One line (every deployment without redundant collectors): its dirty set is
                # the view's own, nothing to copy per batch.
                self.dirty = b.dirty
            elif len(self.builders) == 1:
                self.dirty = set(self.dirty)
            self.builders[line] = b
        return b

    def _seed(self, msgs: list[Any], now: float) -> None:
        """What is no line's, kept for lines still to come: their ladders and closed markets
        (its books are no line's: a REST book alone is no feed, so they are dropped)."""
        seed = self.seed
        seed.apply_many(msgs, now)
        seed.books.clear()
        seed.invalid.clear()
        seed.dirty.clear()
        seed.transitions.clear()

    def _line(self, pub: str) -> str | None:
        ln = line_of(pub)
        if ln is None and pub.partition("-")[0] not in SHARED:
            ln = "~" + pub
        if ln is not None:
            self.builder(ln)
        self._route[pub] = ln
        return ln

    # ---- input -----------------------------------------------------------------------------
    def apply_many(self, msgs: Iterable[Any], now: float) -> None:
        """Each message to its line's builder (not a line's: to every builder), in order."""
        if not isinstance(msgs, list):
            msgs = list(msgs)
        route = self._route
        # The common batch is one connector's: handed to its builder whole, as fast as a bare
        # builder (a set of the publishers costs far less than sorting messages one by one).
        pubs = set(map(_PUB, msgs))
        if len(pubs) == 1:
            p = next(iter(pubs))
            ln = route.get(p, _UNKNOWN)
            if ln is _UNKNOWN:
                ln = self._line(p)
            if ln is not None:
                self.builders[ln].apply_many(msgs, now)
                self.settle(now)
                return
        per: dict[str, list[Any]] = {}
        shared: list[Any] = []
        last: Any = _UNKNOWN
        target: list[Any] | None = None
        for m in msgs:
            p = m.pub
            if p != last:
                last = p
                ln = route.get(p, _UNKNOWN)
                if ln is _UNKNOWN:
                    ln = self._line(p)
                if ln is None:
                    target = None
                else:
                    target = per.get(ln)
                    if target is None:
                        target = per[ln] = []
            if target is not None:
                target.append(m)
            else:
                shared.append(m)
                for ln in self.builders:
                    got = per.get(ln)
                    if got is None:
                        got = per[ln] = []
                    got.append(m)
        if shared:
            self._seed(shared, now)
        for ln, ms in per.items():
            self.builders[ln].apply_many(ms, now)
        self.settle(now)

    def invalidate_line(self, line: str | None, reason: str, now: float) -> int:
        """Every book of one line (None: of every line) INVALID, e.g. after a bus drop."""
        n = sum(
            b.invalidate_all(reason, now) for ln, b in self.builders.items() if line is None or ln == line
        )
        self.settle(now)
        return n

    # ---- collector health ------------------------------------------------------------------
    def heartbeat(self, worker: str, connected: bool, now: float) -> None:
        if line_of(worker) is None:
            return
        if connected:
            self.last_hb[worker] = now
            if worker in self.down:
                self.down.discard(worker)
                # Its books may be usable again for markets whose active line is not.
                self._reconsider(self.fed.get(worker, ()), now)
        elif worker in self.last_hb:
            # Not connected before it ever was is a collector starting, not one going down.
            self._went_down(worker, now)

    def check_health(self, now: float) -> list[str]:
        """Connectors whose heartbeats stopped: their books INVALID; returns the newly down."""
        out = []
        for worker, seen in self.last_hb.items():
            if worker not in self.down and now - seen > self.heartbeat_timeout_s:
                out.append(worker)
        for worker in out:
            self._went_down(worker, now)
        return out

    def _went_down(self, worker: str, now: float) -> None:
        if worker in self.down:
            return
        self.down.add(worker)
        for ln, t in list(self.fed.get(worker, ())):
            b = self.builders[ln]
            bk = b.books.get(t)
            if bk is not None:
                b.invalidate_book(bk, DOWN, now)
        self.settle(now)

    def _reconsider(self, keys: Iterable[tuple[str, str]], now: float) -> None:
        for _, t in keys:
            self._select(t, [])

    # ---- the published view ----------------------------------------------------------------
    def settle(self, now: float) -> None:
        """Take every builder's transitions and dirty markets; choose lines; fill the view."""
        self._close_everywhere(now)
        pending: dict[str, list[tuple[str, Transition]]] = {}
        for ln, b in self.builders.items():
            if b.transitions:
                for tr in b.take_transitions():
                    trig = tr.trigger
                    if tr.valid and type(trig) is BookSnapshot and self._route.get(trig.pub) == ln:
                        self._fed_by(ln, tr.ticker, trig.pub)
                    pending.setdefault(tr.ticker, []).append((ln, tr))
        for t, trs in pending.items():
            self._select(t, trs)
        if len(self.builders) == 1:
            # One line: every market with a book is on it (a market without one is skipped
            # by the emitter), and its dirty set is the view's (see builder()).
            return
        active = self.selector.active
        for ln, b in self.builders.items():
            if b.dirty:
                for t in b.dirty:
                    if active.get(t) == ln:
                        self.dirty.add(t)
                b.dirty.clear()

    def _close_everywhere(self, now: float) -> None:
        """A market one collector saw close (determined, settled) is closed on every line: the
        exchange said so, and the others' lifecycle may only be late."""
        gone = {
            tr.ticker
            for b in self.builders.values()
            for tr in b.transitions
            if tr.reason == "closed" and tr.ticker not in b.books
        }
        for t in gone:
            for b in (self.seed, *self.builders.values()):
                if t not in b.closed:
                    b.close_market(t, None, now)

    def _fed_by(self, line: str, ticker: str, pub: str) -> None:
        key = (line, ticker)
        old = self.feeder.get(key)
        if old == pub:
            return
        if old is not None:
            self.fed[old].discard(key)
        self.feeder[key] = pub
        self.fed.setdefault(pub, set()).add(key)

    def _usable(self, line: str, ticker: str) -> bool:
        bk = self.builders[line].books.get(ticker)
        return bk is not None and bk.valid and self.feeder.get((line, ticker)) not in self.down

    def _select(self, t: str, trs: list[tuple[str, Transition]]) -> None:
        before = self.selector.active.get(t)
        usable = {ln: self._usable(ln, t) for ln, b in self.builders.items() if t in b.books}
        why = next((tr.reason for ln, tr in reversed(trs) if ln == before and not tr.valid), DOWN)
        line = self.selector.choose(t, usable, why)
        if line is None:
            # No line holds a book (closed): its last words are the active line's (or any line's).
            src = before if before is not None else (trs[0][0] if trs else None)
            self.transitions.extend(tr for ln, tr in trs if ln == src)
            self.books.pop(t, None)
            self.invalid.discard(t)
            self.dirty.discard(t)
            return
        bk = self.builders[line].books[t]
        if line == before or before is None:
            self.transitions.extend(tr for ln, tr in trs if ln == line)
        else:
            old = self.books.get(t)
            if old is not None and old is not bk:
                # Movers keep their history across the switch.
                bk.hist_t, bk.hist_mid, bk.hist_vol = old.hist_t, old.hist_mid, old.hist_vol
            bk.tob_sent = None
            bk.depth_sent = None
            self.transitions.append(
                Transition(t, bk.valid, "failover" if bk.valid else bk.reason, bk.conn, bk.sid, bk.xseq, None)
            )
        self.books[t] = bk
        if bk.valid:
            self.invalid.discard(t)
        else:
            self.invalid.add(t)
        self.dirty.add(t)

    def take_transitions(self) -> list[Transition]:
        out = self.transitions
        self.transitions = []
        return out

    def take_failovers(self) -> list[Failover]:
        return self.selector.take_failovers()

    def active_line(self, ticker: str) -> str | None:
        return self.selector.active.get(ticker)

    # ---- snapshot requests -----------------------------------------------------------------
    def due_requests(self, now: float) -> tuple[dict[str, list[str]], list[str]]:
        """INVALID books whose request is due: per connector target (the line's collector), and
        the markets for the gap filler (its REST books go to every line): those no line serves.
        A line whose collector is down is not asked."""
        per: dict[str, list[str]] = {}
        gapfill: list[str] = []
        for ln, b in self.builders.items():
            ask, rest = b.due_requests(now)
            ask = [t for t in ask if self.feeder.get((ln, t)) not in self.down]
            if ask:
                target = "connector" if ln.startswith("~") else connector_id(ln, None)
                per.setdefault(target, []).extend(ask)
            gapfill.extend(t for t in rest if t in self.invalid)
        return per, sorted(set(gapfill))

    def hold_requests(self, now: float) -> None:
        self.seed.hold_requests(now)
        for b in self.builders.values():
            b.hold_requests(now)

    # ---- what the shell reads --------------------------------------------------------------
    @property
    def closed(self) -> set[str]:
        out: set[str] = set()
        for b in self.builders.values():
            out |= b.closed
        return out

    @property
    def last_new_book(self) -> float:
        return max((b.last_new_book for b in self.builders.values()), default=0.0)

    @property
    def deltas(self) -> int:
        return sum(b.deltas for b in self.builders.values())

    @property
    def unchecked(self) -> int:
        return sum(b.unchecked for b in self.builders.values())

    @property
    def counts(self) -> dict[str, int]:
        out = dict(self.counts_own)
        for b in self.builders.values():
            for k, v in b.counts.items():
                out[k] = out.get(k, 0) + v
        return out

    def touch(self, now: float) -> None:
        for b in self.builders.values():
            b.touch(now)

    def valid_count(self) -> int:
        return len(self.books) - len(self.invalid)
