"""Kalshi's current error table: terminal = 10 and 25; retired and unknown codes never fatal."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from services.connector import badframes
from shared.kalshi import ws

from .test_connector_support import A, booted, counted, delta, kinds


def error(code: int, **top: Any) -> dict[str, Any]:
    return {"type": "error", "msg": {"code": code, "msg": "something"}, **top}


def test_the_table() -> None:
    assert {10, 25} == ws.TERMINAL_ERRORS
    assert [ws.error_class(c) for c in (10, 25, 6, 16, 17, 26, 29, 0, -3)] == [
        "terminal",
        "terminal",
        "retired",
        "retired",
        "retired",
        "known",
        "unknown",
        "unknown",
        "unknown",
    ]


@pytest.mark.parametrize("code", [10, 25])
def test_terminal_codes_resubscribe_the_named_sid(code: int) -> None:
    sc, sid = booted()
    sc.feed(error(code, sid=sid))
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["subscribe"]
    assert cmds[0]["params"]["channels"] == ["orderbook_delta"]


@pytest.mark.parametrize("code", [6, 16, 17, 29, 99, 10**12])
def test_retired_and_unknown_codes_are_counted_logged_once_and_never_fatal(
    code: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(badframes, "_logged_codes", set())
    sc, sid = booted()
    label = str(code) if code in ws.RETIRED_ERRORS else "unknown"
    before = counted(sc.s, "command_errors", label)
    with caplog.at_level(logging.WARNING, logger="kxfeed.connector.frames"):
        out = sc.feed(error(code, sid=sid), error(code, sid=sid), error(code), now=1.0)
    assert out == []
    assert counted(sc.s, "command_errors", label) - before == 3
    assert sc.commands() == []  # nothing resubscribed
    assert sc.s.broken == ""
    out = sc.feed(delta(sid, 3, A, "0.40", "1.00"))
    assert kinds(out) == ["delta"]  # the books were never doubted
    odd = [r for r in caplog.records if "not acted on" in r.getMessage()]
    assert len(odd) == 1 and odd[0].__dict__["ctx"]["code"] == code


def test_error_frames_decode_sid_seq_and_market_tickers() -> None:
    raw = b'{"type":"error","sid":3,"seq":41,"msg":{"code":25,"msg":"overflow","market_tickers":["A","B"]}}'
    f = ws.FRAME_DECODER.decode(raw)
    assert isinstance(f, ws.Error) and (f.sid, f.seq, f.msg.market_tickers) == (3, 41, ["A", "B"])
    sc, _ = booted()
    sc.feed(b'{"type":"error","sid":3,"seq":-1,"msg":{"code":25}}')
    assert counted(sc.s, "bad_frames", "range") == 1
    assert sc.commands() == []


def test_an_error_taking_the_next_seq_of_a_book_sid_is_not_a_gap() -> None:
    sc, sid = booted()
    gaps = counted(sc.s, "gaps", "seq_gap")
    out = sc.feed(error(18, sid=sid, seq=3), delta(sid, 4, A, "0.40", "1.00"))
    assert kinds(out) == ["delta"]
    out = sc.feed(error(18, sid=sid, seq=4), delta(sid, 5, A, "0.40", "1.00"))  # repeats nothing
    assert kinds(out) == ["delta"]
    assert counted(sc.s, "gaps", "seq_gap") == gaps
