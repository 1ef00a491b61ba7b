"""The proof of a run: every row the simulator sent is in the database once, every live book
equals the true book, and each row that is missing is either lost or excused by a rule with a
bound, by the simulator's own send times.

Excuses (each printed with its bound, see :meth:`Settled.excuses`):

- ``in_flight``: sent on a connection that was open when the connector was SIGKILLed, at most
  :attr:`Bounds.in_flight_ms` before that kill (or after it). Kalshi does not replay, so what the
  killed process had read but not journaled is gone. An older row missing from such a connection
  was not "in flight": it is lost.
- ``recovering``: a delta after a seq skip on its subscription, superseded by that market's next
  snapshot (the connector drops such deltas by design, services/connector/session.py) or by the
  connection's end, which came at most :attr:`Bounds.resync_s` after the delta. A market that
  never got its snapshot does not excuse its deltas.

Trades are every trade the exchange made from the first one a connection carried on, not only
those sent: the gap filler backfills the ones made while no connection carried them (from
REST, ``source = "rest"``). Such a trade missing is lost like any row, counted apart as
``off_connection``; a stored trade the exchange made before that first one (a backfill window
reaching back to it) is ``made_early``: real, stored once, neither lost nor foreign.

Tickers carry no seq on the wire: each ticker message is one row keyed by (market, ms, what it
says, its occurrence), so two updates of one market in one millisecond are two rows, each proven.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.e2e.rows import Rows, Via, compare, snapshot_key_collisions
from tests.support.procs import wait_until

if TYPE_CHECKING:
    from tests.e2e.harness import System


@dataclass(frozen=True)
class Bounds:
    #: A row missing from a killed connector's connection is excused only if it was sent at most
    #: this long before the kill.
    in_flight_ms: float = 200.0
    #: A delta dropped while its market awaits the post-gap snapshot is excused only if that
    #: snapshot (or the connection's end) came at most this long after it.
    resync_s: float = 10.0


@dataclass
class Settled:
    """The outcome of :func:`settle`: the comparison, and the counts behind it."""

    diff: dict[str, dict[str, Any]]
    books: dict[str, str]
    info: Counter[str] = field(default_factory=Counter)
    bounds: Bounds = field(default_factory=Bounds)
    #: Oldest excused in-flight row, ms before its kill (negative: sent after the kill).
    in_flight_max_ms: float = 0.0
    #: Longest wait, seconds, from an excused delta to the snapshot (or end) superseding it.
    recovering_max_s: float = 0.0

    def snapshot_collisions(self) -> int:
        """Of the lost WS snapshots, those that shared a receive time with a stored one."""
        return len(self.diff["snapshot"].get("same_batch_key_collision", []))

    def recovering(self) -> int:
        return len(self.diff["delta"].get("recovering", []))

    def in_flight(self) -> int:
        return sum(len(d.get("in_flight", [])) for d in self.diff.values())

    def off_connection(self) -> int:
        """Trades made while no connection carried them and not backfilled (part of :meth:`lost`)."""
        return len(self.diff["trade"].get("off_connection", []))

    def tickers_not_stored(self) -> int:
        """Ticker messages sent, without a row, and not excused (part of :meth:`lost`)."""
        return len(self.diff["ticker"]["missing"])

    def lost(self) -> int:
        return sum(len(d["missing"]) for d in self.diff.values())

    def duplicated_or_foreign(self) -> int:
        return sum(len(d["extra"]) + len(d["differ"]) for d in self.diff.values())

    def excuses(self) -> list[tuple[str, int, str]]:
        """(name, rows excused, the bound they were held to): what a report must print."""
        b = self.bounds
        return [
            (
                "in flight in a killed connector",
                self.in_flight(),
                f"sent <= {b.in_flight_ms:g} ms before the kill (oldest {self.in_flight_max_ms:.0f} ms)",
            ),
            (
                "dropped awaiting the post-gap snapshot",
                self.recovering(),
                f"superseded <= {b.resync_s:g} s later (longest {self.recovering_max_s:.1f} s)",
            ),
        ]

    def excuses_text(self) -> str:
        shown = "; ".join(f"{name}: {n} ({bound})" for name, n, bound in self.excuses())
        return f"{shown}; trades made off-connection, not backfilled: {self.off_connection()}"

    def summary(self) -> dict[str, Any]:
        return {
            kind: {k: (v if isinstance(v, int) else len(v)) for k, v in d.items()}
            for kind, d in self.diff.items()
        } | {"books_mismatched": len(self.books), "sim": dict(self.info)}


def settle(
    system: System,
    timeout: float = 30.0,
    *,
    killed: Mapping[int, int] | None = None,
    bounds: Bounds | None = None,
    no_backfill: bool = False,
) -> Settled:
    """Pause the simulator, wait for the pipeline to drain, and compare everything with the truth.

    ``killed``: simulator connection -> wall-clock ns at which the connector holding it was
    SIGKILLed (see ``tests/e2e/chaos.py``). ``no_backfill``: the off-connection trades will not
    come (the test judges them apart), so settled means nothing else is missing: the wait ends
    there instead of running out its timeout.
    """
    killed = dict(killed or {})
    bounds = bounds or Bounds()
    system.control("sim", "pause")
    last: list[Settled] = []

    def done() -> bool:
        truth, info, via = system.truth_rows()
        stored = system.db_rows(truth)
        diff = compare(truth, stored)
        s = Settled(diff, {}, info, bounds)
        _made_early(s, stored["trade"], system.made_early)
        _excuse_recovering(s, truth, via, system.withheld, system.open_conns(), bounds)
        # Snapshots of one market received in one read share a receive time; a key that merged
        # them (the writer's old (ticker, recv)) loses one. Still lost: reported, not excused.
        diff["snapshot"]["same_batch_key_collision"] = snapshot_key_collisions(
            truth, diff["snapshot"]["missing"], system.stored_recv
        )
        _off_connection(s, via)
        _excuse_in_flight(s, via, killed, bounds)
        s.books = system.book_mismatches()
        last[:] = [s]
        # Extras too: a connection that opens while this reads (a killed connector back late on
        # a loaded machine) is in the database before it is in the truth read a moment earlier;
        # a row that is really foreign stays foreign until the timeout, and is reported.
        # Off-connection trades come by REST some seconds after the connection is back.
        missing = s.lost() - (s.off_connection() if no_backfill else 0)
        return missing == 0 and s.duplicated_or_foreign() == 0 and not s.books

    wait_until(done, timeout, interval=1.0)
    return last[0]


def _made_early(s: Settled, stored: Rows, early: Mapping[tuple[Any, ...], tuple[Any, ...]]) -> None:
    """Stored trades the exchange made before the truth's first carried one (a backfill window
    reaching back that far): real trades, each once, so neither extra nor foreign."""
    d = s.diff["trade"]
    d["made_early"] = [k for k in d["extra"] if early.get(k) == stored[k]]
    d["extra"] = [k for k in d["extra"] if early.get(k) != stored[k]]


def _off_connection(s: Settled, via: Via) -> None:
    """Of the missing trades, those made while no connection carried them (the gap filler's to
    backfill): still lost, named apart so a report says which hole they fell through."""
    d = s.diff["trade"]
    d["off_connection"] = [k for k in d["missing"] if not via["trade"].get(k)]


def _excuse_in_flight(s: Settled, via: Via, killed: Mapping[int, int], bounds: Bounds) -> None:
    bound_ns = int(bounds.in_flight_ms * 1e6)
    for kind, d in s.diff.items():
        excused, kept, too_old = [], [], []
        for k in d["missing"]:
            sent = via[kind].get(k, {})
            ages = [killed[c] - ns for c, ns in sent.items() if c in killed]
            if sent and len(ages) == len(sent) and max(ages) <= bound_ns:
                excused.append(k)
                s.in_flight_max_ms = max(s.in_flight_max_ms, max(ages) / 1e6)
            else:
                kept.append(k)
                if ages:
                    too_old.append(k)
        d["missing"] = kept
        d["in_flight"] = excused
        # Missing from a killed connection but sent before the bound: lost, and shown as such.
        d["killed_older_than_bound"] = too_old


def _excuse_recovering(
    s: Settled,
    truth: dict[str, Rows],
    via: Via,
    withheld: set[tuple[int, int, int]],
    open_conns: set[int],
    bounds: Bounds,
) -> None:
    """Deltas the connector drops by design after a seq skip: from the skip on, every market of
    that subscription waits for its new snapshot, and its deltas until then are superseded by it."""
    missing = set(s.diff["delta"]["missing"])
    bound_ns = int(bounds.resync_s * 1e9)
    ends = _conn_ends(via, open_conns)
    excused: set[tuple[Any, ...]] = set()
    late: list[tuple[Any, ...]] = []
    for c, sid, gap in withheld:
        next_snap: dict[str, tuple[int, int]] = {}  # ticker -> (seq, sent ns)
        for key, (ticker, *_) in truth["snapshot"].items():
            sc, ssid, seq = key
            if sc == c and ssid == sid and seq > gap and seq < next_snap.get(ticker, (1 << 62, 0))[0]:
                next_snap[ticker] = (seq, via["snapshot"][key][c])
        for key, (ticker, *_) in truth["delta"].items():
            dc, dsid, seq = key
            if key not in missing or dc != c or dsid != sid or seq <= gap:
                continue
            snap_seq, snap_ns = next_snap.get(ticker, (1 << 62, 0))
            if seq > snap_seq:
                continue
            until = snap_ns if snap_seq < 1 << 62 else ends.get(c)
            waited = None if until is None else until - via["delta"][key][c]
            if waited is not None and waited <= bound_ns:
                excused.add(key)
                s.recovering_max_s = max(s.recovering_max_s, waited / 1e9)
            else:
                late.append(key)
    s.diff["delta"]["missing"] = [k for k in s.diff["delta"]["missing"] if k not in excused]
    s.diff["delta"]["recovering"] = sorted(excused)
    # After a seq skip but not superseded in time (or never): lost, and shown as such.
    s.diff["delta"]["recovering_too_late"] = late


def _conn_ends(via: Via, open_conns: set[int]) -> dict[int, int]:
    """Closed simulator connections -> when their last row left."""
    out: dict[int, int] = {}
    for rows in via.values():
        for sent in rows.values():
            for c, ns in sent.items():
                if c not in open_conns and ns > out.get(c, 0):
                    out[c] = ns
    return out
