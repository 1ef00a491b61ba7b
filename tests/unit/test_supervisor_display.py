"""The status table and the live screen, from a status reply."""

from __future__ import annotations

from typing import Any

from services.cli.screen import duration, live_screen, table


def status(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "supervisor": {
            "pid": 42,
            "uptime_s": 70.0,
            "strategy": "one_for_one",
            "restarts_in_window": 1,
            "max_restarts": 5,
            "period_s": 60.0,
            "shutting_down": False,
            "stop_cause": "",
            "config": "",
        },
        "workers": [
            {
                "worker": "bus",
                "pid": 100,
                "state": "running",
                "uptime_s": 3725.0,
                "restarts": 0,
                "heartbeat_age_s": 0.25,
                "messages_per_s": None,
                "restart_in_s": None,
                "last_exit_code": None,
                "restart": "permanent",
                "counters": {},
                "rates": {},
            },
            {
                "worker": "connector",
                "pid": None,
                "state": "pending",
                "uptime_s": None,
                "restarts": 3,
                "heartbeat_age_s": None,
                "messages_per_s": 1234.5,
                "restart_in_s": 1.5,
                "last_exit_code": -9,
                "restart": "permanent",
                "counters": {"frames": 900, "open_gaps": 2},
                "rates": {"frames": 1234.5, "open_gaps": 1.0},
            },
        ],
        "events": [
            {"ts": 0.0, "worker": "connector", "event": "exited", "reason": "killed", "exit_code": -9}
        ],
    }
    base.update(over)
    return base


def test_durations() -> None:
    assert [duration(x) for x in (None, 0.25, 59.9, 61, 3725, 200_000)] == [
        "-",
        "0.2s",
        "59.9s",
        "1m01s",
        "1h02m",
        "2d07h",
    ]


def test_table_columns_line_up() -> None:
    header, bus, conn = table(status())
    assert header.split() == [
        "WORKER",
        "PID",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "HB",
        "AGE",
        "MSG/S",
        "LAST",
        "EXIT",
    ]
    assert bus.split()[:4] == ["bus", "100", "running", "1h02m"]
    assert "backoff 1.5s" in conn and "1,234" in conn and conn.endswith("-9")
    # Numbers are right-aligned under their header.
    end = header.index("RESTARTS") + len("RESTARTS")
    assert bus[end - 1] == "0" and conn[end - 1] == "3"


def test_live_screen_shows_counters_events_and_fits_the_width() -> None:
    lines = live_screen(status(), width=60, log_dir="data/logs")
    assert lines[0].startswith("kxfeed supervisor pid 42 running · 1/2 workers ready")
    text = "\n".join(lines)
    assert "frames=900 (1,234/s)" in text
    assert "open_gaps=2" in text and "open_gaps=2 (" not in text, "non-message counters get no rate"
    assert "connector exited (killed) code=-9" in text
    assert "data/logs" in lines[-1]
    assert all(len(line) <= 60 for line in lines if not line.startswith(("WORKER", "bus", "connector")))


def test_a_parked_worker_is_shown_parked_in_the_table_and_the_headline() -> None:
    s = status()
    s["supervisor"]["parked"] = ["connector"]
    s["workers"][1].update(state="parked", parked=True, restart_in_s=27.4)
    lines = live_screen(s, width=200)
    assert lines[0].endswith("· PARKED: connector")
    (row,) = [line for line in table(s) if line.startswith("connector")]
    assert "parked 27s" in row
    s["workers"][1].update(state="running", pid=101, restart_in_s=None)
    (row,) = [line for line in table(s) if line.startswith("connector")]
    assert "running (parked)" in row, "back, but still on probation"
