"""The stream's pure core: subscriptions, snapshots, coalescing, the bounded queue and its two
slow-consumer policies, and hostile client input (answered, counted, never raised)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.gateway.live import LiveState
from services.gateway.stream import StreamCore
from services.gateway.stream_queue import CONTROL_QUEUE, DropCounts, Limits, Outbox
from shared.messages import Gap
from tests.support.gateway_stream import tob, trade

MS = 1_000_000


def core(**limits: Any) -> StreamCore:
    return StreamCore(Limits(**limits), LiveState(1000))


def drain(c: StreamCore, client: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while frames := client.outbox.take(1000):
        out += [msgspec.json.decode(f) for f in frames]
    return out


def sub(c: StreamCore, client: Any, now: int = 0, **req: Any) -> None:
    c.handle(client, msgspec.json.encode({"op": "subscribe", **req}), now)


def test_subscribe_gets_subscribed_then_snapshot_then_live() -> None:
    c = core()
    c.publish(tob("A", 4300, ts_ns=1), 1)
    c.publish(tob("B", 4500, ts_ns=2), 2)
    c.publish(trade("A", "t1"), 3)
    client = c.connect("peer", 10)
    assert client is not None
    sub(c, client, 10, id=1, topics=["tob."])
    c.publish(tob("A", 4400), 11)
    got = drain(c, client)
    assert got[0] == {
        "type": "subscribed",
        "id": 1,
        "topics": ["tob."],
        "tickers": [],
        "interval_ms": 0,
        "snapshots": 2,
    }
    snaps = {g["topic"]: g for g in got[1:3] if g["type"] == "snapshot"}
    assert set(snaps) == {"tob.A", "tob.B"}
    assert snaps["tob.A"]["data"]["yes_bid"] == "0.4300" and snaps["tob.A"]["kind"] == "tob"
    assert got[3] == {"type": "tob", "id": 1, "ticker": "A", "data": got[3]["data"]}
    assert got[3]["data"]["yes_bid"] == "0.4400"
    assert len(got) == 4  # the trade was not asked for
    assert c.woken == [client]


def test_ticker_filter_and_unsubscribe() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, id=5, topics=["tob", "trade."], tickers=["B"])
    c.publish(tob("A"), 1)
    c.publish(tob("B"), 1)
    c.publish(trade("B", "t"), 1)
    c.publish(Gap(conn=1, sid=1, expected=1, received=3, tickers=["A", "B"], reason="r"), 1)  # not asked for
    got = drain(c, client)
    assert [(g["type"], g.get("ticker")) for g in got] == [("subscribed", None), ("tob", "B"), ("trade", "B")]
    c.publish(tob("B"), 2)
    c.handle(client, b'{"op":"unsubscribe","id":5}', 3)
    c.publish(tob("B"), 4)
    # the frame queued before the unsubscribe is forgotten with it: nothing after "unsubscribed"
    assert drain(c, client) == [{"type": "unsubscribed", "id": 5}]


def test_gap_naming_many_markets_reaches_a_ticker_filter() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, id=1, topics=["gap."], tickers=["B"])
    c.publish(Gap(conn=1, sid=1, expected=1, received=3, tickers=["A", "B"], reason="r"), 1)
    got = drain(c, client)
    assert got[1]["type"] == "gap" and got[1]["ticker"] is None and got[1]["data"]["tickers"] == ["A", "B"]


def test_interval_coalesces_to_the_newest_per_market() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, 0, id=1, topics=["tob."], interval_ms=1000)
    drain(c, client)
    for i in range(10):
        c.publish(tob("A", 4000 + i), i * MS)
    c.publish(tob("B", 100), 20 * MS)
    c.flush(999 * MS)
    assert drain(c, client) == []  # not due yet
    assert c.next_due_ns() == 1000 * MS
    c.flush(1000 * MS)
    got = drain(c, client)
    assert [(g["ticker"], g["data"]["yes_bid"]) for g in got] == [("A", "0.4009"), ("B", "0.0100")]
    assert c.counts.of("coalesced", "tob") == 9
    assert c.next_due_ns() == 2000 * MS
    c.flush(2000 * MS)
    assert drain(c, client) == []  # nothing changed: nothing sent


def test_coalescing_table_is_bounded_and_counts_what_it_cannot_hold() -> None:
    c = core(queue_messages=16)
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, 0, id=1, topics=["tob."], interval_ms=1000)
    drain(c, client)
    for i in range(40):
        c.publish(tob(f"M{i}"), 1)
    assert len(client.subs[1].pending) == 16
    assert c.counts.of("dropped", "tob") == 24
    c.flush(1000 * MS)
    got = drain(c, client)
    assert got[0]["type"] == "lost" and got[0]["dropped"] == 24 and len(got) == 17


def test_drop_oldest_sends_lost_notice_before_what_is_left() -> None:
    c = core(queue_messages=16)
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, id=1, topics=["tob."])
    for i in range(100):
        c.publish(tob("A", 1000 + i), 5000 + i)
    assert len(client.outbox.data) == 16
    got = drain(c, client)
    assert got[0]["type"] == "subscribed"
    lost = got[1]
    assert lost["type"] == "lost" and lost["dropped"] == 84 and lost["kinds"] == {"tob": 84}
    assert lost["since_ns"] == "5016"
    assert [g["data"]["yes_bid"] for g in got[2:]] == [f"0.{1084 + i:04d}" for i in range(16)]
    assert c.counts.of("dropped", "tob") == 84 and c.counts.of("lost_notices") == 1
    assert client.closing == ""


def test_byte_bound_holds_for_big_frames() -> None:
    c = core(queue_bytes=4096)
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, id=1, topics=["tob."])
    for i in range(200):
        c.publish(tob("A", i), i)
        assert client.outbox.bytes <= 4096
    assert c.counts.of("dropped", "tob") > 0


def test_disconnect_policy_marks_the_client_and_frees_its_queue() -> None:
    c = core(queue_messages=16, policy="disconnect")
    client = c.connect("p", 0)
    assert client is not None
    sub(c, client, id=1, topics=["tob."])
    for i in range(17):
        c.publish(tob("A", i), i)
    assert client.closing == "slow_consumer"
    assert len(client.outbox) == 0 and client.outbox.bytes == 0
    # 16 queued data frames, the "subscribed" reply, and the 17th frame that did not fit
    assert c.counts.of("dropped", "disconnected") == 18
    c.publish(tob("A"), 99)
    assert len(client.outbox) == 0
    c.disconnect(client, "slow_consumer")
    assert c.counts.of("disconnects", "slow_consumer") == 1 and not c.clients
    c.publish(tob("A"), 100)  # no subscription left anywhere


def test_max_clients_refused_and_counted() -> None:
    c = core(max_clients=2)
    assert c.connect("a", 0) is not None and c.connect("b", 0) is not None
    assert c.connect("c", 0) is None
    assert c.counts.of("refused", "max_clients") == 1


def errors(c: StreamCore, client: Any) -> list[str]:
    return [g["error"] for g in drain(c, client) if g["type"] == "error"]


def test_hostile_requests_are_answered_and_counted() -> None:
    c = core(max_subscriptions=2, max_tickers=3, max_frame_bytes=256, ops_burst=1000)
    client = c.connect("p", 0)
    assert client is not None
    bad = [
        b"\xff\xfe garbage",
        b"[1,2,3]",
        b'{"op": "launch"}',
        b'{"op": "subscribe", "id": 1, "topics": ["tob."], "interval_ms": 60001}',
        b'{"op": "subscribe", "id": -1, "topics": ["tob."]}',
        b'{"op": "subscribe", "id": 1, "topics": []}',
        b'{"op": "subscribe", "id": 1, "topics": ["fill."]}',
        b'{"op": "subscribe", "id": 1, "topics": ["tob."], "extra": 1}',
        b'{"op": "subscribe", "id": 1, "topics": ["tob."], "tickers": ["a","b","c","d"]}',
        b'{"op": "unsubscribe", "id": 77}',
        b'{"op": "ping", "id": "x"}',
        b"[" * 200,
        b'{"op": "subscribe", "id": 1, "topics": ["tob."], "tickers": ["' + b"x" * 300 + b'"]}',
    ]
    for raw in bad:
        c.handle(client, raw, 1)
    got = errors(c, client)
    assert got == [
        "bad_json",
        "bad_request",
        "unknown_op",
        "bad_request",
        "bad_request",
        "bad_request",
        "bad_topic",
        "bad_request",
        "too_many_tickers",
        "unknown_subscription",
        "bad_request",
        "bad_request",
        "too_large",
    ]
    sub(c, client, id=1, topics=["tob."])
    sub(c, client, id=1, topics=["trade."])
    sub(c, client, id=2, topics=["trade."])
    sub(c, client, id=3, topics=["trade."])
    assert errors(c, client) == ["duplicate_id", "too_many_subscriptions"]
    assert c.counts.total("client_errors") == 15
    c.handle(client, b'{"op":"ping","id":4}', 1)
    assert drain(c, client)[0]["type"] == "pong"


def test_nesting_deeper_than_the_decoder_recurses_is_bad_json() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    c.handle(client, b'{"x":' + b"[" * 30_000 + b',"op":"ping"}', 0)
    assert errors(c, client) == ["bad_json"]


def test_rate_limit_answers_and_recovers() -> None:
    c = core(ops_per_s=10.0, ops_burst=5)
    client = c.connect("p", 0)
    assert client is not None
    for _ in range(8):
        c.handle(client, b'{"op":"ping"}', 0)
    got = drain(c, client)
    assert [g["type"] for g in got].count("pong") == 5
    assert [g.get("error") for g in got].count("rate_limited") == 3
    c.handle(client, b'{"op":"ping"}', 200 * MS)  # two tokens back
    assert drain(c, client)[0]["type"] == "pong"


def test_control_queue_bounded_when_the_client_never_reads() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    for i in range(CONTROL_QUEUE * 3):
        c.heartbeat(i)
    assert len(client.outbox.control) == CONTROL_QUEUE
    got = drain(c, client)
    assert got[CONTROL_QUEUE - 1 + 1]["type"] == "lost" or got[-1]["type"] == "lost"
    assert c.counts.of("dropped", "heartbeat") == CONTROL_QUEUE * 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_client_bytes_are_answered_never_raised(raw: bytes) -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    c.handle(client, raw, 0)
    assert len(drain(c, client)) >= 1


_op = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 5), st.integers(1, 3000)),
    # An ndjson batch: sub id, then its message count (its payload 100 bytes a message).
    st.tuples(st.just("batch"), st.integers(0, 5), st.integers(1, 40)),
    st.tuples(st.just("control"), st.integers(0, 0), st.integers(1, 300)),
    st.tuples(st.just("take"), st.integers(1, 50), st.integers(0, 0)),
    st.tuples(st.just("purge"), st.integers(0, 5), st.integers(0, 0)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_op, max_size=300),
    st.integers(16, 64),
    st.integers(4096, 20_000),
    st.sampled_from(["drop_oldest", "disconnect"]),
)
# The frame that overflows a disconnect-policy queue is itself dropped, and counted.
@example([("push", 0, 1097), ("push", 0, 3000)], 16, 4096, "disconnect")
def test_queue_bound_and_accounting_hold_for_any_sequence(
    ops: list[tuple[str, int, int]], messages: int, size: int, policy: Any
) -> None:
    counts = DropCounts()
    box = Outbox(Limits(policy=policy, queue_messages=messages, queue_bytes=size), counts)
    pushed = purged = 0
    for i, (op, a, n) in enumerate(ops):
        if op == "push":
            if box.push(a, "tob", b"x" * n, i):
                pushed += 1
            elif not box.overflowed:
                raise AssertionError("push refused without an overflow")
            else:
                pushed += 1  # refused after the overflow: counted as dropped by the outbox
        elif op == "batch":
            trades = n // 3
            box.push_batch(a, (("tob", n - trades), ("trade", trades)), n, b"z" * (100 * n), i)
            pushed += n  # queued, dropped, or refused after an overflow: all counted
        elif op == "control":
            box.push_control("error", b"y" * n, i)
            pushed += 1
        elif op == "take":
            box.take(a)
        else:
            before = box.messages
            box.purge(a)
            purged += before - box.messages
        assert box.messages <= messages
        assert box.messages == sum(item[2] for item in box.data)
        assert box.bytes <= size
        assert box.bytes == sum(len(item[3]) for item in box.data)
        assert len(box.control) <= CONTROL_QUEUE
        if box.overflowed:
            assert len(box) == 0
    box.take(10**9)
    sent = sum(n for (k, label), n in counts.items() if k == "sent" and label != "lost")
    dropped = counts.total("dropped")
    # Every frame offered is sent, dropped (counted), or was purged by its own unsubscribe.
    assert pushed == sent + dropped + purged


def test_text_frames_are_rfc6455_server_frames() -> None:
    import struct

    from services.gateway.stream_ws import text_frames

    payloads = [b"", b"a" * 125, b"b" * 126, b"c" * 65_535, b"d" * 65_536]
    data = text_frames(payloads)
    got, i = [], 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert b0 == 0x81 and not b1 & 0x80  # FIN + text, unmasked
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            (n,), i = struct.unpack("!H", data[i : i + 2]), i + 2
        elif n == 127:
            (n,), i = struct.unpack("!Q", data[i : i + 8]), i + 8
        got.append(data[i : i + n])
        i += n
    assert got == payloads


def test_messages_dropped_before_fan_out_reach_every_client_as_lost() -> None:
    c = core()
    a, b = c.connect("a", 0), c.connect("b", 0)
    assert a is not None and b is not None
    sub(c, a, id=1, topics=["tob."])
    sub(c, a, id=2, topics=["tob."], tickers=["X"])  # two subscriptions, one notice
    sub(c, b, id=1, topics=["trade."])
    c.lost_before_fanout({"tob": 5}, 7)
    lost = [g for g in drain(c, a) if g["type"] == "lost"]
    assert lost == [
        {"type": "lost", "dropped": 5, "kinds": {"tob": 5}, "since": lost[0]["since"], "since_ns": "7"}
    ]
    assert not [g for g in drain(c, b) if g["type"] == "lost"]
    assert c.counts.of("backlog_dropped", "tob") == 5 and c.counts.of("dropped", "tob") == 5


# ---- ndjson groups and topic prefixes ------------------------------------------------------------


def lines(c: StreamCore, client: Any) -> list[dict[str, Any]]:
    """What an ndjson client reads: each taken item holds one or more JSON lines."""
    out: list[dict[str, Any]] = []
    while items := client.outbox.take(1000):
        out += [msgspec.json.decode(line) for item in items for line in item.split(b"\n")]
    return out


def test_ndjson_clients_alike_share_one_payload_per_batch() -> None:
    c = core()
    a, b, plain = c.connect("a", 0, batch=True), c.connect("b", 0, batch=True), c.connect("p", 0)
    assert a is not None and b is not None and plain is not None
    for client in (a, b, plain):
        sub(c, client, id=1, topics=["tob."])
    for client in (a, b, plain):
        client.outbox.take(1000)  # the subscribed replies
    prepared = [c.ingest(tob(t, 4300 + i), i) for i, t in enumerate(["A", "B", "C"])]
    for p in prepared:
        assert p is not None
        c.fanout(p, 5)
    c.seal(5)
    # One queue item of three messages per ndjson client, the very same bytes object for both.
    assert len(a.outbox.data) == 1 and a.outbox.messages == 3 and len(a.outbox) == 3
    assert a.outbox.data[0][3] is b.outbox.data[0][3]
    assert len(plain.outbox.data) == 3  # a json client: one frame per message
    got = lines(c, a)
    assert [(g["type"], g["id"], g["ticker"]) for g in got] == [
        ("tob", 1, "A"),
        ("tob", 1, "B"),
        ("tob", 1, "C"),
    ]
    assert got == [msgspec.json.decode(f) for f in plain.outbox.take(1000)] == lines(c, b)
    assert c.counts.of("sent", "tob") == 9


def test_ndjson_group_bound_counts_messages_and_reports_them_lost() -> None:
    c = core(queue_messages=5)
    client = c.connect("a", 0, batch=True)
    assert client is not None
    sub(c, client, id=1, topics=["tob.", "trade."])
    for i in range(4):
        c.publish(tob("A", 4300 + i), 10 + i)
    c.publish(trade("A", "t"), 20)
    c.publish(tob("A", 4400), 21)  # six messages in a five-message queue: the oldest goes
    assert client.outbox.messages == 5
    got = lines(c, client)
    assert got[0]["type"] == "subscribed"
    assert got[1] == {
        "type": "lost",
        "dropped": 1,
        "kinds": {"tob": 1},
        "since": got[1]["since"],
        "since_ns": "21",
    }
    assert [g["type"] for g in got[2:]] == ["tob", "tob", "tob", "trade", "tob"]
    assert c.counts.total("dropped") == 1


def test_ndjson_unsubscribe_forgets_queued_batches_and_leaves_the_group() -> None:
    c = core()
    a, b = c.connect("a", 0, batch=True), c.connect("b", 0, batch=True)
    assert a is not None and b is not None
    sub(c, a, id=1, topics=["tob."])
    sub(c, b, id=1, topics=["tob."])
    c.publish(tob("A"), 1)
    c.handle(a, b'{"op":"unsubscribe","id":1}', 2)
    c.publish(tob("B"), 3)
    assert [g["type"] for g in lines(c, a)] == ["subscribed", "unsubscribed"]
    assert [(g["type"], g.get("ticker")) for g in lines(c, b)] == [
        ("subscribed", None), ("tob", "A"), ("tob", "B"),
    ]  # fmt: skip


def test_topics_name_ticker_prefixes() -> None:
    c = core()
    c.publish(tob("KXBTC-25DEC31-B100"), 1)
    c.publish(tob("KXETH-25DEC31-B5"), 1)
    c.publish(tob("KXBTCD-25DEC31-B1"), 1)
    for batch in (False, True):
        client = c.connect("p", 2, batch=batch)
        assert client is not None
        sub(c, client, 2, id=3, topics=["tob.KXBTC-", "trade.", "gap.KXETH"])
        c.publish(tob("KXBTC-25DEC31-B200"), 3)
        c.publish(tob("KXBTCD-25DEC31-B2"), 3)  # another series: KXBTC- is not its prefix
        c.publish(trade("KXBTCD-25DEC31-B2", "t1"), 3)
        c.publish(Gap(conn=1, sid=1, expected=1, received=3, tickers=["X", "KXETH-1"], reason="r"), 3)
        c.publish(Gap(conn=1, sid=2, expected=1, received=3, tickers=["KXBTC-1"], reason="r"), 3)
        got = lines(c, client)
        assert got[0]["topics"] == ["tob.KXBTC-", "trade.", "gap.KXETH"]
        snaps = [g for g in got[1:] if g["type"] == "snapshot"]
        # The live tops of the KXBTC- series (the second round's include the first's B200).
        expected = {"tob.KXBTC-25DEC31-B100"}
        if batch:
            expected |= {"tob.KXBTC-25DEC31-B200", "trade.KXBTCD-25DEC31-B2", "gap.KXETH-1"}
        assert {g["topic"] for g in snaps} == expected
        assert [(g["type"], g.get("ticker")) for g in got[1 + len(snaps) :]] == [
            ("tob", "KXBTC-25DEC31-B200"),
            ("trade", "KXBTCD-25DEC31-B2"),
            ("gap", None),
        ]
        assert got[-1]["data"]["tickers"] == ["X", "KXETH-1"]
        c.handle(client, b'{"op":"unsubscribe","id":3}', 4)
    # A prefix with the tickers filter: both must pass.
    client = c.connect("q", 5)
    assert client is not None
    sub(c, client, 5, id=4, topics=["tob.KXBTC-"], tickers=["KXBTC-25DEC31-B100", "KXETH-25DEC31-B5"])
    assert [g["topic"] for g in drain(c, client)[1:]] == ["tob.KXBTC-25DEC31-B100"]


def test_bad_topics_are_refused() -> None:
    c = core()
    client = c.connect("p", 0)
    assert client is not None
    for topic in ("tobX", "nope.KX", "", ".KX", "tob." + "K" * 201):
        sub(c, client, id=1, topics=[topic])
        (err,) = drain(c, client)
        assert err["type"] == "error" and err["error"] == "bad_topic" and err["id"] == 1, topic
    assert not client.subs


def test_seal_writes_to_idle_members_at_once_and_queues_behind_anything_queued() -> None:
    c = core()
    idle, busy, full = (c.connect(p, 0, batch=True) for p in ("idle", "busy", "full"))
    assert idle is not None and busy is not None and full is not None
    for client in (idle, busy, full):
        sub(c, client, id=1, topics=["tob."])
    idle.outbox.take(10)
    full.outbox.take(10)
    c.take_woken()
    # busy still holds its "subscribed" reply: its batch must queue behind it, not jump it.
    written: list[tuple[str, bytes]] = []

    def send(client: Any, payload: bytes) -> bool:
        if client is full:
            return False  # its transport is backed up
        written.append((client.peer, payload))
        return True

    for i in range(3):
        p = c.ingest(tob("A", 4300 + i), 1)
        assert p is not None
        c.fanout(p, 1)
    c.seal(1, send)
    assert [peer for peer, _ in written] == ["idle"]
    assert [msgspec.json.decode(x)["data"]["yes_bid"] for x in written[0][1].split(b"\n")] == [
        "0.4300",
        "0.4301",
        "0.4302",
    ]
    assert not idle.outbox and busy.outbox.messages == 3 and full.outbox.messages == 3
    assert [g["type"] for g in lines(c, busy)] == ["subscribed", "tob", "tob", "tob"]
    assert c.counts.of("sent", "tob") == 3 + 3  # idle's, written; busy's, taken
    assert set(c.take_woken()) == {busy, full}
