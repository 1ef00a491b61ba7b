"""shared.jetstream: subjects, message ids and their parsing (hostile input never raises)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared import jetstream as js


def test_a_market_topic_maps_to_kind_series_ticker() -> None:
    assert js.subject("kxfeed", "delta.KXNFLGAME-25NOV23BUFHOU-BUF") == (
        "kxfeed.delta.KXNFLGAME.KXNFLGAME-25NOV23BUFHOU-BUF"
    )
    got = js.subject("kx.prod", "fee.KXNBAGAME-26NOV03LALBOS")
    assert got == "kx.prod.fee.KXNBAGAME.KXNBAGAME-26NOV03LALBOS"
    assert js.subject("kxfeed", "gap.sid-3-1") == "kxfeed.gap.sid.sid-3-1"


def test_characters_a_token_may_not_hold_are_escaped() -> None:
    assert js.token("KXBTC-25DEC31-B100000.5") == "KXBTC-25DEC31-B100000%2E5"
    assert js.token("a b*c>d%") == "a%20b%2Ac%3Ed%25"
    assert js.token("") == "%"
    subject = js.subject("kxfeed", "trade.X.Y")
    assert subject == "kxfeed.trade.X%2EY.X%2EY" and subject.count(".") == 3


@given(st.text(max_size=40))
def test_token_is_one_safe_token_and_reversible(text: str) -> None:
    tok = js.token(text)
    assert tok and not any(c in tok for c in ". \t\r\n*>")
    assert js.untoken(tok) == text


@given(st.text(max_size=40))
def test_untoken_is_total(text: str) -> None:
    js.untoken(text)


def test_msg_id_round_trip_and_refusals() -> None:
    text = js.msg_id("connector", 1_796_411_410_110_745_794, "delta", 42)
    assert text == "connector:1796411410110745794:delta:42"
    assert js.parse_msg_id(text) == js.MsgId("connector", 1_796_411_410_110_745_794, "delta", 42)
    for bad in ("", "a:b:c", "pub:1:delta:0", "pub:-1:delta:1", "pub:1:delta:99999999999999999999",
                "pub:1:de.lta:1", ":1:delta:1", "p:1:delta:1:extra", "p" * 300, "pub:1:delta:1 "):
        assert js.parse_msg_id(bad) is None, bad  # fmt: skip


@given(st.text(max_size=300))
def test_parse_msg_id_is_total(text: str) -> None:
    got = js.parse_msg_id(text)
    if got is not None:
        assert js.msg_id(*got) == text


def test_names() -> None:
    assert js.valid_prefix("kxfeed") and js.valid_prefix("kx.prod")
    assert not js.valid_prefix("") and not js.valid_prefix("kx.") and not js.valid_prefix("kx.*")
    assert js.valid_stream_name("KXFEED_BOOK") and not js.valid_stream_name("A.B")
    assert js.kind_subjects("kxfeed", "trade") == "kxfeed.trade.>"
