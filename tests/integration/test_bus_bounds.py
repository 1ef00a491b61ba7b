"""A consumer's bus decode is total: well-formed msgpack with ints the schema (int64, what a
BIGINT holds) refuses, and nesting past the decoder's depth, are counted bad payloads and
the subscriber goes on reading. Real sockets through a real proxy (ipc:// in a tmp dir)."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import zmq

from shared.bus import Subscriber
from shared.messages import BATCH_DECODER, BATCH_ENCODER, INT64_MAX, Control, Trade
from tests.support.busproxy import proxied


def trade(trade_id: str, count: int = 1) -> Trade:
    return Trade(trade_id=trade_id, ticker="X", yes_price=1, no_price=9999, count=count, taker_side="yes")


def with_count(count: int) -> bytes:
    """A Trade payload whose count is ``count``: msgpack holds up to 2^64-1, the schema int64."""
    (fields,) = msgspec.msgpack.decode(BATCH_ENCODER.encode([trade("big")]))
    fields[list(Trade.__struct_fields__).index("count") + 1] = count  # after the kind tag
    return msgspec.msgpack.encode([fields])


def deep_control() -> bytes:
    """A Control whose ``args`` (``dict[str, Any]``) holds 100,000 nested arrays."""
    mark = "\x00deep\x00"
    raw = BATCH_ENCODER.encode([Control(target="w", cmd="x", args={"a": mark})])
    return raw.replace(msgspec.msgpack.encode(mark), b"\x91" * 100_000 + b"\xc0")


def test_out_of_range_and_over_deep_payloads_are_counted_and_the_subscriber_goes_on(tmp_path: Path) -> None:
    assert BATCH_DECODER.decode(with_count(INT64_MAX)) == [trade("big", INT64_MAX)]
    with proxied(tmp_path, hwm=1000) as (ctx, xsub, xpub):
        sub = Subscriber(ctx, xpub, ["trade.", "ctl."], join_settle_s=0)
        rogue = ctx.socket(zmq.PUB)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(xsub)
        hostile = [
            [b"trade.X", with_count(2**63)],
            [b"trade.X", with_count(2**64 - 1)],
            [b"ctl.w", deep_control()],
        ]
        try:
            # The rogue PUB has no subscription handshake: send a marker until one arrives, then the
            # path is up and what follows arrives in order.
            deadline = time.monotonic() + 30
            seen: list[str] = []
            while "hello" not in seen:
                assert time.monotonic() < deadline, "the subscription never reached the rogue publisher"
                rogue.send_multipart([b"trade.X", BATCH_ENCODER.encode([trade("hello")])])
                seen += [m.trade_id for m in sub.recv_blocking(0.1) if isinstance(m, Trade)]
            before = sub.bad_payloads
            for parts in hostile:
                rogue.send_multipart(parts)
            rogue.send_multipart([b"trade.X", BATCH_ENCODER.encode([trade("after")])])
            got: list[str] = []
            while "after" not in got:
                assert time.monotonic() < deadline, "the subscriber stopped reading"
                got += [m.trade_id for m in sub.recv_blocking(0.2) if isinstance(m, Trade)]
            assert [t for t in got if t != "hello"] == ["after"]
            assert sub.bad_payloads - before == len(hostile)
        finally:
            rogue.close(0)
            sub.close()
