"""The JetStream source's pure parts: frame decoding (hostile payloads), the ack-after-commit
ledger, where a reset consumer starts, and the config checks of ``[writer] source``."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.writer.core import StreamKey, WriterCore
from services.writer.jsack import (
    CommitAcks,
    InOrder,
    config_problems,
    decode_frame,
    needs_of,
    single_stream,
    start_seq,
)
from services.writer.rows import MAPPERS
from shared.config import ConfigError, load_config
from shared.messages import Heartbeat, Message
from tests.support.config import make_config
from tests.unit.test_writer_core import trades

A: StreamKey = ("a", 1, "trade")
B: StreamKey = ("b", 1, "trade")


def frame(msgs: list[Message]) -> bytes:
    return msgspec.msgpack.encode(msgs)


def test_a_bus_frame_decodes_to_its_messages() -> None:
    msgs = trades("a", 3)
    got = decode_frame(frame(msgs))
    assert isinstance(got, list)
    assert [(m.pub, m.seq) for m in got] == [("a", 1), ("a", 2), ("a", 3)]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "undecodable"),
        (b"\xc1", "undecodable"),
        (msgspec.msgpack.encode([{"not": "a message"}]), "undecodable"),
        (msgspec.msgpack.encode({"a": 1}), "undecodable"),
        (msgspec.msgpack.encode([]), "empty frame"),
    ],
)
def test_a_payload_that_is_no_bus_frame_is_poison(payload: bytes, why: str) -> None:
    got = decode_frame(payload)
    assert isinstance(got, str) and got.startswith(why)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_is_total(payload: bytes) -> None:
    got = decode_frame(payload)
    assert isinstance(got, str | list)


def test_needs_are_the_highest_seq_per_stored_stream() -> None:
    msgs = [
        *trades("a", 4),
        *trades("b", 2),
        Heartbeat(worker="w", pid=1, uptime_ms=1, ready=True, pub="a", seq=9),
    ]
    assert needs_of(msgs, MAPPERS.__contains__) == {A: 4, B: 2}


def test_a_reset_consumer_starts_after_its_ack_floor() -> None:
    assert start_seq(None) is None  # no consumer yet: the stream's first message
    assert start_seq(0) is None
    assert start_seq(41) == 42


def test_a_delivery_is_acked_only_once_every_stream_in_it_is_committed() -> None:
    acks: CommitAcks[str] = CommitAcks(100, 10_000)
    committed: dict[StreamKey, int] = {}
    assert not acks.track("f1", {A: 3}, 3, committed)
    assert not acks.track("f2", {A: 5, B: 2}, 4, committed)
    assert (acks.frames, acks.msgs) == (2, 7)
    committed[A] = 4
    assert acks.ackable(committed, [A]) == ["f1"]
    committed[A] = 9
    assert acks.ackable(committed, [A]) == []  # f2 still waits on b
    committed[B] = 2
    assert acks.ackable(committed, [B]) == ["f2"]
    assert (acks.frames, acks.msgs) == (0, 0)


def test_what_is_already_committed_is_acked_at_once() -> None:
    acks: CommitAcks[str] = CommitAcks(100, 10_000)
    assert acks.track("dup", {A: 3}, 3, {A: 3})
    assert acks.track("unstored", {}, 5, {})
    assert acks.frames == 0


def test_room_is_bounded_by_deliveries_and_by_messages() -> None:
    acks: CommitAcks[int] = CommitAcks(3, 10)
    assert acks.room() == 3
    acks.track(1, {A: 1}, 1, {})
    assert acks.room() == 2
    acks.track(2, {A: 9}, 9, {})
    assert acks.room() == 0  # 10 messages held
    assert acks.clear() == 2
    assert acks.room() == 3 and acks.ackable({A: 99}, [A]) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=60),
    st.lists(st.integers(0, 40), min_size=1, max_size=20),
)
def test_never_acked_before_its_commit_and_always_once_covered(seqs: list[int], commits: list[int]) -> None:
    """Deliveries (redeliveries included: repeated seqs, any order) against commits moving up."""
    acks: CommitAcks[int] = CommitAcks(1000, 100_000)
    committed: dict[StreamKey, int] = {}
    acked: set[int] = set()
    for i, seq in enumerate(seqs):
        if acks.track(i, {A: seq}, 1, committed):
            acked.add(i)
    for c in sorted(commits):
        committed[A] = max(committed.get(A, 0), c)
        for h in acks.ackable(committed, [A]):
            assert h not in acked
            acked.add(h)
        assert acked == {i for i, s in enumerate(seqs) if s <= committed[A]}


def test_with_the_writer_core_each_delivery_is_acked_after_the_batch_holding_it() -> None:
    core = WriterCore({}, {}, lambda pub: True, max_buffer=10_000, stored=MAPPERS.__contains__)
    acks: CommitAcks[str] = CommitAcks(100, 10_000)
    msgs = trades("a", 9)
    deliveries = {"d1": msgs[0:3], "d2": msgs[3:6], "again-d1": msgs[0:3], "d3": msgs[6:9]}
    acked: list[str] = []
    for name, frame_msgs in deliveries.items():
        got = decode_frame(frame(frame_msgs))
        assert isinstance(got, list)
        if acks.track(name, needs_of(got, MAPPERS.__contains__), len(got), core.committed):
            acked.append(name)
        core.offer(got)
    first = core.take(5)
    assert first is not None and acked == []
    core.commit(first)  # seqs 1..5 stored
    acked += acks.ackable(core.committed, list(first.offsets))
    assert sorted(acked) == ["again-d1", "d1"]
    rest = core.take(100)
    assert rest is not None
    core.commit(rest)
    acked += acks.ackable(core.committed, list(rest.offsets))
    assert sorted(acked) == ["again-d1", "d1", "d2", "d3"]


def test_source_jetstream_needs_servers_and_streams(tmp_path: Path) -> None:
    tmp = tmp_path
    assert config_problems(make_config(tmp)) == []  # the bus: nothing asked of [jetstream]
    assert config_problems(make_config(tmp, writer={"source": "jetstream"})) == []
    no_servers = make_config(tmp, writer={"source": "jetstream"}, jetstream={"servers": []})
    assert config_problems(no_servers) == [
        '[writer] source = "jetstream" needs [jetstream] servers (nats://host:port)'
    ]
    no_streams = make_config(tmp, writer={"source": "jetstream"}, jetstream={"streams": []})
    assert "[jetstream] streams" in config_problems(no_streams)[0]


def test_an_unknown_source_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "kx.toml"
    path.write_text('[writer]\nsource = "kafka"\n')
    with pytest.raises(ConfigError, match="source"):
        load_config(path, environ={})


def in_order(position: dict[StreamKey, int] | None = None) -> InOrder[str]:
    pos = position or {}
    return InOrder(lambda key: pos.get(key, 0))


def test_a_frame_past_a_hole_waits_until_the_hole_fills() -> None:
    order = in_order()
    assert order.add(A, 1, 3, "1-3", 0.0) == ["1-3"]
    assert order.add(A, 7, 9, "7-9", 1.0) == []  # 4-6 missing
    assert order.add(A, 10, 12, "10-12", 2.0) == []
    assert order.add(B, 1, 1, "b1", 2.0) == ["b1"]  # another stream is not held up
    assert order.held == 2
    assert order.add(A, 4, 6, "4-6", 3.0) == ["4-6", "7-9", "10-12"]
    assert order.held == 0 and order.stalled(99.0, 1.0) == []


def test_what_the_core_already_has_is_passed_on_and_dropped_there() -> None:
    order = in_order({A: 5})
    assert order.add(A, 2, 4, "dup", 0.0) == ["dup"]
    assert order.add(A, 6, 6, "6", 0.0) == ["6"]
    assert order.add(None, 0, 0, "no stream", 0.0) == ["no stream"]


def test_a_hole_that_stays_is_reported_after_the_grace_and_can_be_given_up() -> None:
    order = in_order()
    order.add(A, 1, 1, "1", 0.0)
    order.add(A, 5, 5, "5", 10.0)
    order.add(A, 3, 3, "3", 11.0)  # 2 still missing: 3 and 5 wait, in seq order
    assert order.stalled(10.5, 1.0) == []
    assert order.stalled(11.0, 1.0) == [(A, 2)]
    assert order.oldest() == (A, 2)
    assert order.give_up(A) == ["3", "5"]
    assert order.held == 0 and order.oldest() is None
    assert order.add(A, 6, 6, "6", 12.0) == ["6"]


def test_a_partly_filled_hole_waits_again_from_then() -> None:
    order = in_order()
    order.add(A, 1, 1, "1", 0.0)
    order.add(A, 3, 3, "3", 0.0)
    order.add(A, 5, 5, "5", 0.0)
    assert order.add(A, 2, 2, "2", 8.0) == ["2", "3"]
    assert order.stalled(8.5, 1.0) == [] and order.stalled(9.0, 1.0) == [(A, 4)]
    order.clear()
    assert order.held == 0 and order.add(A, 1, 1, "again", 9.0) == ["again"]


def test_single_stream_of_a_frame() -> None:
    msgs = trades("a", 4)
    assert single_stream(msgs[1:], needs_of(msgs[1:], MAPPERS.__contains__)) == (A, 2)
    both = [*trades("a", 1), *trades("b", 1)]
    assert single_stream(both, needs_of(both, MAPPERS.__contains__)) == (None, 0)
