"""kxfeed tap --jetstream, its pure parts: subject filters per stream, frames to lines (hostile input)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.cli.jstap import TapFaults, frame_lines, stored_ns
from shared import jetstream as js
from shared.bus import stamp
from shared.messages import BATCH_ENCODER, Trade

STREAMS = ["kxfeed.snap.>", "kxfeed.delta.>"]


def test_filters_valid_and_invalid() -> None:
    for ok in ("kxfeed.>", "kxfeed.trade.>", "kxfeed.*.KXNFLGAME.>", "a", "kxfeed.delta.S.T-1"):
        assert js.valid_filter(ok), ok
    for bad in ("", "kxfeed.", ".a", "a..b", "a.>.b", "a.b*", "a b", "a.>>", "x" * 2000):
        assert not js.valid_filter(bad), bad


def test_covers() -> None:
    assert js.covers("kxfeed.>", "kxfeed.trade.>")
    assert js.covers("kxfeed.trade.>", "kxfeed.trade.S.T")
    assert js.covers("kxfeed.*.S.>", "kxfeed.trade.S.T")
    assert not js.covers("kxfeed.trade.>", "kxfeed.>")
    assert not js.covers("kxfeed.trade.>", "kxfeed.trade")
    assert not js.covers("kxfeed.trade.S.T", "kxfeed.trade.S.*")
    assert not js.covers("kxfeed.*", "kxfeed.trade.S")


def test_a_wide_subject_takes_each_stream_subject_and_a_narrow_one_itself() -> None:
    assert js.consumer_filters("kxfeed.>", STREAMS) == STREAMS
    assert js.consumer_filters("kxfeed.delta.KXNFLGAME.>", STREAMS) == ["kxfeed.delta.KXNFLGAME.>"]
    assert js.consumer_filters("kxfeed.trade.>", STREAMS) == []
    assert js.consumer_filters("kxfeed.*.KXNFLGAME.>", STREAMS) == []  # spans both: neither covers it


@given(st.text(max_size=30), st.text(max_size=30))
def test_matching_is_total(a: str, b: str) -> None:
    if js.valid_filter(a) and js.valid_filter(b):
        js.covers(a, b)
        js.consumer_filters(a, [b])


def trade() -> Trade:
    t = Trade(trade_id="t1", ticker="KX-A", yes_price=4300, no_price=5700, count=100, taker_side="yes")
    stamp([t], "connector", 1)
    return t


def test_a_frame_prints_as_tap_prints_and_garbage_is_counted_once() -> None:
    faults = TapFaults()
    lines = frame_lines(BATCH_ENCODER.encode([trade(), trade()]), "trade", faults)
    assert len(lines) == 2 and '"kind":"trade"' in lines[0] and faults.counts == {}
    assert frame_lines(b"\xc1garbage", "trade", faults) == []
    assert frame_lines(b"", "", faults) == []
    assert frame_lines(BATCH_ENCODER.encode([trade()]), "delta", faults) != []  # printed, the header is wrong
    assert faults.counts == {"undecodable payload": 2, "Kx-Kind header disagrees with the payload": 1}


@given(st.binary(max_size=300), st.text(max_size=20))
def test_frame_lines_is_total(data: bytes, kind: str) -> None:
    frame_lines(data, kind, TapFaults())


class Hostile:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    @property
    def metadata(self) -> Any:
        from nats.aio.msg import Msg

        return Msg.Metadata._from_reply(self.reply)


def test_an_unreadable_reply_subject_has_no_store_time() -> None:
    for reply in ("", "$JS.ACK", "$JS.ACK.a.b.c.d.e.f", "$JS.ACK.s.c.1.2.3.notanumber.0", "x" * 500):
        assert stored_ns(Hostile(reply)) is None, reply
    assert stored_ns(Hostile("$JS.ACK.S.C.1.2.3.1796412031431507969.0")) == 1796412031431507968
