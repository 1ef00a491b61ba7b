"""What happened in the pipeline, for the live screen's "recent:": gaps and their recovery,
reconnects, database outages, books gone invalid and valid again, and the latest signal.

Pure: fed what the supervisor already receives (each child's heartbeat counters, and the
``gap`` / ``signal`` messages on the bus it subscribes to), it returns one note per thing
that happened. The workers count and log these themselves; the notes are for the operator's
eyes only (no log line, no metric, no bus message), so nothing is counted twice.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from shared.messages import Gap, Signal

#: Gap keys remembered to show each gap (and its recovery) once: the connector and the gap
#: filler both announce a recovery.
_SEEN_MAX = 2048
#: Markets named in a gap line before "+N more".
_NAMED = 2


@dataclass(frozen=True)
class Note:
    worker: str
    event: str
    detail: str = ""
    reason: str = ""

    def as_event(self, ts: float) -> dict[str, Any]:
        """The shape of the supervisor's recent events (``ts`` in wall-clock seconds)."""
        out: dict[str, Any] = {"ts": ts, "worker": self.worker, "event": self.event}
        if self.reason:
            out["reason"] = self.reason
        if self.detail:
            out["detail"] = self.detail
        return out


def _markets(tickers: list[str]) -> str:
    if not tickers:
        return "no markets"
    named = ", ".join(tickers[:_NAMED])
    more = len(tickers) - _NAMED
    return named + (f" +{more} more" if more > 0 else "")


def gap_note(g: Gap) -> Note:
    where = f"sid {g.sid}"
    if g.status == "open":
        return Note(
            g.pub,
            "gap",
            f"{where} expected seq {g.expected}, got {g.received}: {_markets(g.tickers)}",
            g.reason,
        )
    took = ""
    if g.recovered_ms is not None and g.detected_ms:
        took = f" in {max(0, g.recovered_ms - g.detected_ms) / 1000:.1f}s"
    how = f" by {g.method}" if g.method else ""
    return Note(g.pub, "recovered", f"{where} gap{how}{took}: {_markets(g.tickers)}", g.reason)


def money(micro: int) -> str:
    """Micro-dollars as dollars, exactly (no float on the way)."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}${whole}.{frac // 100:04d}"


def price(units: int) -> str:
    """A price in $0.0001 units, as the wire writes it."""
    whole, frac = divmod(units, 10_000)
    return f"{whole}.{frac:04d}"


def count(hundredths: int) -> str:
    """A contract count in hundredths, as a person writes it ("25", "2.50")."""
    whole, frac = divmod(hundredths, 100)
    return str(whole) if not frac else f"{whole}.{frac:02d}"


def signal_summary(s: Signal) -> dict[str, Any]:
    """The latest signal as the status reply carries it (plain values)."""
    return {
        "ts": s.ts_recv / 1e9 if s.ts_recv else None,
        "ticker": s.ticker,
        "strategy": s.strategy,
        "side": s.side,
        "price": price(s.price),
        "size": count(s.size),
        "edge": money(s.edge),
    }


class Happenings:
    """Turns heartbeat counters and gap messages into notes, each thing once."""

    def __init__(self) -> None:
        #: (worker, pid) -> the counters of its previous heartbeat.
        self._last: dict[str, tuple[int, dict[str, int]]] = {}
        #: Workers whose books we said were invalid (so "valid again" follows only that).
        self._invalid_said: set[str] = set()
        self._seen: OrderedDict[tuple[int, int, int, str], None] = OrderedDict()
        self.signal: dict[str, Any] | None = None

    def heartbeat(self, worker: str, pid: int, counters: dict[str, int]) -> list[Note]:
        prev_pid, before = self._last.get(worker, (0, {}))
        if prev_pid != pid:
            # A new process counts from zero: its first heartbeat is a baseline, not a change.
            before = {}
            self._invalid_said.discard(worker)
        self._last[worker] = (pid, dict(counters))
        notes: list[Note] = []
        notes += self._connection(worker, before, counters)
        notes += self._database(worker, before, counters)
        notes += self._books(worker, before, counters)
        return notes

    def gap(self, g: Gap) -> list[Note]:
        key = (g.conn, g.sid, g.expected, g.status)
        if key in self._seen:
            return []
        self._seen[key] = None
        while len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        return [gap_note(g)]

    def on_signal(self, s: Signal) -> None:
        self.signal = signal_summary(s)

    # ---- counter rules ---------------------------------------------------------------------
    @staticmethod
    def _grew(key: str, before: dict[str, int], now: dict[str, int]) -> int:
        if key not in before or key not in now:
            return 0
        return max(0, now[key] - before[key])

    def _connection(self, worker: str, before: dict[str, int], now: dict[str, int]) -> list[Note]:
        notes = []
        if self._grew("auth_failures", before, now):
            notes.append(Note(worker, "auth failed", f"{now['auth_failures']} so far", "auth"))
        if self._grew("reconnects", before, now):
            notes.append(Note(worker, "disconnected", f"reconnecting (reconnect #{now['reconnects']})"))
        elif before.get("connected") == 1 and now.get("connected") == 0:
            notes.append(Note(worker, "disconnected", "reconnecting"))
        if before.get("connected") == 0 and now.get("connected") == 1 and now.get("reconnects", 0) > 0:
            notes.append(Note(worker, "reconnected", f"after reconnect #{now['reconnects']}"))
        return notes

    def _database(self, worker: str, before: dict[str, int], now: dict[str, int]) -> list[Note]:
        if "db_up" not in now:
            return []
        was_up = before.get("db_up", 1) == 1
        up = now["db_up"] == 1
        new_outages = self._grew("outages", before, now)
        if was_up and not up:
            return [
                Note(
                    worker,
                    "db down",
                    f"outage #{now.get('outages', 0)}: keeping its position, retrying with backoff",
                )
            ]
        if not was_up and up:
            return [Note(worker, "db back", f"catching up ({now.get('retries', 0)} retries so far)")]
        if new_outages and up:
            return [Note(worker, "db outage", f"outage #{now['outages']} began and ended between heartbeats")]
        return []

    def _books(self, worker: str, before: dict[str, int], now: dict[str, int]) -> list[Note]:
        if "deltas_applied" not in now or "invalid" not in now:
            return []
        books, invalid = now.get("books", 0), now["invalid"]
        if before.get("invalid") == 0 and invalid > 0 and books:
            self._invalid_said.add(worker)
            return [Note(worker, "books invalid", f"{invalid}/{books} waiting for a fresh snapshot")]
        if invalid == 0 and worker in self._invalid_said and before.get("invalid", 0) > 0:
            self._invalid_said.discard(worker)
            return [Note(worker, "books recovered", f"all {books} valid again")]
        return []
