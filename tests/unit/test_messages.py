"""Every bus message kind round-trips through the one typed batch decoder."""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messages import (
    BATCH_DECODER,
    BATCH_ENCODER,
    KINDS,
    MESSAGE_TYPES,
    BookDelta,
    Gap,
    Heartbeat,
    MarketLifecycle,
    Message,
    Trade,
    json_schema,
    to_jsonable,
)

_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=30)
_int = st.integers(min_value=-(2**62), max_value=2**62)


def _strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values msgpack can carry (ints within int64), built from the field's type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return _text
    if tp is int:
        return _int
    if tp is bool:
        return st.booleans()
    if tp is type(None):
        return st.none()
    if tp is Any:
        return st.one_of(_int, _text, st.booleans())
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_strategy_for(a) for a in args])
    if origin is list:
        return st.lists(_strategy_for(args[0]), max_size=4)
    if origin is tuple:
        return st.tuples(*[_strategy_for(a) for a in args])
    if origin is dict:
        return st.dictionaries(_text, _strategy_for(args[1]), max_size=3)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _message_strategy(tp)
    raise TypeError(f"no strategy for {tp!r}")


def _message_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)})


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__struct_config__.tag)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_kind_round_trips(cls: type, data: st.DataObject) -> None:
    msg = data.draw(_message_strategy(cls))
    decoded = BATCH_DECODER.decode(BATCH_ENCODER.encode([msg]))
    assert decoded == [msg]
    assert type(decoded[0]) is cls


def test_kinds_are_unique_and_not_prefixes_of_each_other_with_dot() -> None:
    tags = [t.__struct_config__.tag for t in MESSAGE_TYPES]
    assert len(tags) == len(set(tags))
    for a in tags:
        for b in tags:
            if a != b:
                assert not f"{b}.".startswith(f"{a}."), (a, b)


def test_topic_is_kind_and_key() -> None:
    d = BookDelta(
        ticker="KXNFLGAME-25NOV23BUFHOU-BUF",
        market_id="m",
        conn=1,
        sid=2,
        xseq=3,
        side="yes",
        price=1,
        delta=2,
    )
    assert d.topic() == "delta.KXNFLGAME-25NOV23BUFHOU-BUF"
    assert Heartbeat(worker="writer", pid=1, uptime_ms=0, ready=True).topic() == "hb.writer"
    one = Gap(conn=1, sid=4, expected=5, received=9, tickers=["A"], reason="seq_jump")
    many = Gap(conn=1, sid=4, expected=5, received=9, tickers=["A", "B"], reason="seq_jump")
    assert one.topic() == "gap.A" and many.topic() == "gap.sid-1-4"


def test_header_is_last_and_jsonable_names_fields() -> None:
    d = BookDelta(
        ticker="T", market_id="m", conn=1, sid=2, xseq=3, side="no", price=4300, delta=-250, ts_recv=9
    )
    raw = msgspec.msgpack.decode(BATCH_ENCODER.encode([d]))[0]
    # Tag first, then the header, then only fields added later (client_order_id, subaccount).
    assert raw[0] == "delta" and raw[-3] == 9 and raw[-2:] == [None, None]
    j = to_jsonable(d)
    assert j["kind"] == "delta" and j["price"] == 4300 and j["side"] == "no"


def test_schema_covers_every_kind() -> None:
    text = msgspec.json.encode(json_schema()).decode()
    for tag in KINDS:
        assert f'"{tag}"' in text


def test_rejects_wrong_types() -> None:
    bad = msgspec.msgpack.encode([["delta", "T", "m", 1, 2, 3, "maybe", 1, 1, "", 0, 0, None, 0]])
    with pytest.raises(msgspec.ValidationError):
        BATCH_DECODER.decode(bad)


def test_fields_added_after_the_header_leave_older_payloads_decodable() -> None:
    """A payload written before client_order_id/subaccount (BookDelta) and the strikes
    (MarketMeta, MarketLifecycle) existed: the header still lands in the header."""
    old_delta = ["delta", "T", "m", 1, 2, 3, "no", 4300, -250, "pub-1", 7, 8, None, 9]
    old_life = ["lifecycle", "T", "metadata_updated", *([None] * 12), "pub-1", 7, 8, None, 9]
    (d, life) = BATCH_DECODER.decode(msgspec.msgpack.encode([old_delta, old_life]))
    assert isinstance(d, BookDelta) and (d.pub, d.seq, d.ts_recv, d.client_order_id, d.subaccount) == (
        "pub-1",
        8,
        9,
        None,
        None,
    )
    assert isinstance(life, MarketLifecycle) and (life.pub, life.ts_recv, life.floor_strike) == (
        "pub-1",
        9,
        None,
    )
    new = BookDelta(
        ticker="T",
        market_id="m",
        conn=1,
        sid=2,
        xseq=3,
        side="no",
        price=1,
        delta=1,
        client_order_id="c",
        subaccount=2,
    )
    assert BATCH_DECODER.decode(BATCH_ENCODER.encode([new])) == [new]


def test_a_trade_from_before_source_decodes_as_ws() -> None:
    """``Trade.source`` was appended with a default: a payload of the older layout (one
    field shorter) still decodes, as a live-channel trade."""
    t = Trade(trade_id="x", ticker="T", yes_price=1, no_price=2, count=3, taker_side="yes", ts_recv=9)
    fields = msgspec.msgpack.decode(msgspec.msgpack.encode(t))
    assert fields[-1] == "ws"
    old = msgspec.msgpack.encode(fields[:-1])
    assert msgspec.msgpack.decode(old, type=Message) == t
    rest = msgspec.structs.replace(t, source="rest")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(rest), type=Message) == rest
