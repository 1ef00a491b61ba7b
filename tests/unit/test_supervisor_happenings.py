"""What the supervisor makes of heartbeat counters and gap/signal messages for "recent:"."""

from __future__ import annotations

from typing import Any

from services.supervisor.happenings import Happenings, count, money, price
from shared.messages import Gap, Signal


def gap(**over: Any) -> Gap:
    base: dict[str, Any] = {
        "pub": "connector",
        "conn": 1,
        "sid": 3,
        "expected": 120,
        "received": 125,
        "tickers": ["KXA-1", "KXB-2", "KXC-3", "KXD-4"],
        "reason": "seq_gap",
        "detected_ms": 1_000,
    }
    base.update(over)
    return Gap(**base)


def test_a_gap_and_its_recovery_are_each_told_once_with_their_context() -> None:
    h = Happenings()
    (opened,) = h.gap(gap())
    assert (opened.worker, opened.event, opened.reason) == ("connector", "gap", "seq_gap")
    assert opened.detail == "sid 3 expected seq 120, got 125: KXA-1, KXB-2 +2 more"
    assert h.gap(gap()) == [], "the same gap again is not a new line"
    recovered = gap(status="recovered", method="get_snapshot", recovered_ms=3_500)
    (closed,) = h.gap(recovered)
    assert closed.event == "recovered"
    assert closed.detail == "sid 3 gap by get_snapshot in 2.5s: KXA-1, KXB-2 +2 more"
    # The gap filler announces the same recovery: still one line.
    assert h.gap(gap(status="recovered", method="rest", recovered_ms=3_600, pub="gapfill")) == []
    assert h.gap(gap(expected=200, received=201, tickers=["KXA-1"]))[0].detail.endswith(": KXA-1")


def test_reconnects_are_told_when_they_happen_not_at_a_first_heartbeat() -> None:
    h = Happenings()
    assert h.heartbeat("connector", 10, {"connected": 1, "reconnects": 3, "auth_failures": 0}) == []
    (down,) = h.heartbeat("connector", 10, {"connected": 0, "reconnects": 4, "auth_failures": 0})
    assert (down.event, down.detail) == ("disconnected", "reconnecting (reconnect #4)")
    (again,) = h.heartbeat("connector", 10, {"connected": 1, "reconnects": 4, "auth_failures": 0})
    assert (again.event, again.detail) == ("reconnected", "after reconnect #4")
    assert h.heartbeat("connector", 10, {"connected": 1, "reconnects": 4, "auth_failures": 0}) == []
    (auth,) = h.heartbeat("connector", 10, {"connected": 1, "reconnects": 4, "auth_failures": 1})
    assert (auth.event, auth.reason) == ("auth failed", "auth")
    # A restarted connector counts from zero: its first heartbeat is a baseline again.
    assert h.heartbeat("connector", 11, {"connected": 0, "reconnects": 0, "auth_failures": 0}) == []
    assert h.heartbeat("connector", 11, {"connected": 1, "reconnects": 0, "auth_failures": 0}) == []


def test_a_database_outage_is_told_when_it_starts_and_when_it_ends() -> None:
    h = Happenings()
    up = {"db_up": 1, "outages": 0, "retries": 0, "rows": 10}
    assert h.heartbeat("writer", 5, up) == []
    (down,) = h.heartbeat("writer", 5, {**up, "db_up": 0, "outages": 1, "retries": 2})
    assert down.event == "db down" and "outage #1" in down.detail
    assert h.heartbeat("writer", 5, {**up, "db_up": 0, "outages": 1, "retries": 5}) == []
    (back,) = h.heartbeat("writer", 5, {**up, "db_up": 1, "outages": 1, "retries": 6})
    assert back.event == "db back" and "6 retries" in back.detail
    # Down and back between two heartbeats: the outage count still tells it.
    (blip,) = h.heartbeat("writer", 5, {**up, "db_up": 1, "outages": 2, "retries": 7})
    assert blip.event == "db outage" and "#2" in blip.detail
    # A writer whose first heartbeat already says the database is down.
    (first,) = Happenings().heartbeat("writer", 6, {**up, "db_up": 0, "outages": 1})
    assert first.event == "db down"


def test_books_going_invalid_and_valid_again() -> None:
    h = Happenings()
    book = {"books": 40, "valid": 40, "invalid": 0, "deltas_applied": 100}
    # At start books wait for their first snapshot: not news.
    assert h.heartbeat("orderbook", 7, {**book, "valid": 0, "invalid": 40}) == []
    assert h.heartbeat("orderbook", 7, book) == []
    (bad,) = h.heartbeat("orderbook", 7, {**book, "valid": 37, "invalid": 3})
    assert (bad.event, bad.detail) == ("books invalid", "3/40 waiting for a fresh snapshot")
    assert h.heartbeat("orderbook", 7, {**book, "valid": 38, "invalid": 2}) == []
    (good,) = h.heartbeat("orderbook", 7, book)
    assert (good.event, good.detail) == ("books recovered", "all 40 valid again")


def test_notes_take_the_recent_events_shape() -> None:
    (note,) = Happenings().gap(gap())
    event = note.as_event(12.5)
    assert event == {
        "ts": 12.5,
        "worker": "connector",
        "event": "gap",
        "reason": "seq_gap",
        "detail": note.detail,
    }


def test_the_latest_signal_in_exact_units() -> None:
    h = Happenings()
    assert h.signal is None
    h.on_signal(
        Signal(
            pub="arb",
            ts_recv=2_000_000_000_000_000_000,
            ticker="KXNBAGAME-X-LAL",
            strategy="complement",
            side="yes",
            price=4300,
            size=2500,
            fair_ppm=450_000,
            edge=12_345,
            fees=1_000,
        )
    )
    assert h.signal == {
        "ts": 2_000_000_000.0,
        "ticker": "KXNBAGAME-X-LAL",
        "strategy": "complement",
        "side": "yes",
        "price": "0.4300",
        "size": "25",
        "edge": "$0.0123",
    }
    assert [money(x) for x in (0, -1_500_000, 999_999)] == ["$0.0000", "-$1.5000", "$0.9999"]
    assert [price(x) for x in (1, 9999, 10_000)] == ["0.0001", "0.9999", "1.0000"]
    assert [count(x) for x in (2500, 250, 1)] == ["25", "2.50", "0.01"]
