"""The live screen's newer parts, rendered from a status reply: the market line, the legend,
held and parked workers, notes in "recent:", a headline that fits."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import termios
from typing import Any

from services.cli.commands.up import LiveScreen
from services.cli.screen import (
    headline,
    legend,
    live_screen,
    market_line,
    rows,
    worker_line,
)
from tests.unit.test_supervisor_display import status


def worker(name: str, state: str = "running", **over: Any) -> dict[str, Any]:
    alive = state in ("starting", "running", "stopping")
    base: dict[str, Any] = {
        "worker": name,
        "pid": 200 if alive else None,
        "state": state,
        "uptime_s": 10.0 if alive else None,
        "restarts": 0,
        "heartbeat_age_s": 0.5 if alive else None,
        "messages_per_s": None,
        "restart_in_s": None,
        "last_exit_code": None if alive else 0,
        "restart": "permanent",
        "parked": False,
        "counters": {},
        "rates": {},
    }
    base.update(over)
    return base


def pipeline(**over: Any) -> dict[str, Any]:
    s = status(
        workers=[
            worker("bus"),
            worker(
                "orderbook",
                counters={"books": 40, "valid": 37, "invalid": 3, "deltas_applied": 900},
                rates={"deltas_applied": 152.25},
                messages_per_s=152.25,
            ),
            worker(
                "writer",
                counters={"accepted": 500, "rows": 480, "db_up": 1},
                rates={"accepted": 80.0, "rows": 75.5},
                messages_per_s=80.0,
            ),
            worker("arb", counters={"signals": 2, "games": 1}),
        ],
        events=[],
    )
    s.update(over)
    return s


def test_the_market_line_counts_books_deltas_rows_and_names_the_latest_signal() -> None:
    s = pipeline()
    assert market_line(s) == "market: books 37/40 valid · 152 deltas/s · 75.5 rows/s · no signal yet"
    s["signal"] = {
        "ts": None,
        "ticker": "KXNBAGAME-X-LAL",
        "strategy": "complement",
        "side": "yes",
        "price": "0.4300",
        "size": "25",
        "edge": "$0.0123",
    }
    assert market_line(s).endswith("signal complement edge $0.0123: yes KXNBAGAME-X-LAL @0.4300 x25")
    # No order book or writer running: dashes, not zeros that look like a stall.
    bare = status(workers=[worker("bus"), worker("orderbook", "held")], events=[])
    assert market_line(bare) == "market: books - · - deltas/s · - rows/s · no signal yet"


def test_every_column_is_in_the_legend_and_it_wraps_between_entries() -> None:
    wide = " · ".join(legend(200))
    for column in ("PID", "UPTIME", "RESTARTS", "HB AGE", "MSG/S", "LAST EXIT", "-:", "held", "parked"):
        assert column in wide
    narrow = legend(60)
    assert len(narrow) > 1 and all(len(line) <= 60 for line in narrow)
    assert not any(line.startswith(" ") or line.endswith("·") for line in narrow)


def test_msg_s_tells_no_message_counter_from_not_running() -> None:
    s = pipeline()
    s["workers"].append(worker("poller", "held", counters={"polls": 3}))
    by_name = {r[0]: r for r in rows(s)}
    assert by_name["orderbook"][6] == "152"
    assert by_name["arb"][6] == "n/a", "running, counts no messages"
    assert by_name["bus"][6] == "-", "no counters yet"
    assert by_name["poller"][6] == "-"


def test_held_and_parked_workers_show_their_state_not_their_last_counters() -> None:
    held = worker("poller", "held", counters={"polls": 3, "markets": 11})
    assert worker_line(held) == "  poller: held, stopped by operator (kxfeed restart poller starts it)"
    parked = worker("gapfill", "parked", parked=True, restart_in_s=12.4, counters={"requests": 9})
    assert worker_line(parked) == "  gapfill: parked, retry in 12s (over its restart budget)"
    exited = worker("arb", "pending", restart_in_s=0.5, counters={"signals": 2})
    assert worker_line(exited) == "  arb (exited): signals=2"
    assert worker_line(worker("bus")) is None
    s = pipeline()
    s["workers"] += [held, parked]
    text = "\n".join(live_screen(s, width=100))
    assert "polls=" not in text and "requests=" not in text


def test_the_headline_fits_100_columns_and_names_held_and_parked_workers() -> None:
    s = pipeline()
    s["supervisor"].update(pid=4_194_304, parked=["gapfill"])
    s["workers"] += [worker("poller", "held"), worker("gapfill", "parked", parked=True)]
    full = headline(s)
    assert full.endswith("· PARKED: gapfill · HELD: poller") and len(full) > 100
    fitted = headline(s, 100)
    assert len(fitted) <= 100 and fitted.endswith("· PARKED: gapfill · HELD: poller")
    assert fitted.startswith("kxfeed supervisor pid 4194304 running · 4/6 workers ready")
    assert len(headline(pipeline(), 100)) <= 100
    assert "one_for_one" in headline(pipeline(), 100), "nothing dropped when it fits"


def test_notes_appear_in_recent_with_their_context() -> None:
    s = pipeline(
        events=[
            {
                "ts": 0.0,
                "worker": "connector",
                "event": "gap",
                "reason": "seq_gap",
                "detail": "sid 3 expected seq 120, got 125: KXA-1, KXB-2 +2 more",
            },
            {"ts": 0.0, "worker": "writer", "event": "db down", "detail": "outage #1: retrying"},
        ]
    )
    lines = live_screen(s, width=100)
    recent = lines[lines.index("recent:") + 1 :]
    assert any(
        x.endswith("connector gap (seq_gap) sid 3 expected seq 120, got 125: KXA-1, KXB-2 +2 more")
        for x in recent
    )
    assert any(x.endswith("writer db down outage #1: retrying") for x in recent)
    assert lines[1].startswith("market: books 37/40 valid")


def _text(raw: bytes) -> list[str]:
    return re.sub(r"\x1b\[[0-9]*[A-Za-z]", "", raw.decode()).splitlines()


def _resize(fd: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))


def test_a_resized_terminal_gets_a_full_redraw() -> None:
    master, slave = pty.openpty()
    try:
        out = io.TextIOWrapper(io.FileIO(slave, "w", closefd=False), write_through=True)
        screen = LiveScreen(out, "logs")

        def frame() -> bytes:
            screen(pipeline())
            got = b""
            while select.select([master], [], [], 0.5)[0]:
                got += os.read(master, 1 << 16)
            return got

        _resize(slave, 120)
        first, second = frame(), frame()
        assert b"\x1b[2J" not in first + second and second.startswith(b"\x1b[")
        assert max(len(x) for x in _text(second)) <= 119
        _resize(slave, 90)
        third = frame()
        assert third.startswith(b"\x1b[H\x1b[2J"), "the old frame re-wrapped: clear and start at the top"
        assert max(len(x) for x in _text(third)) <= 89
    finally:
        os.close(master)
        os.close(slave)
