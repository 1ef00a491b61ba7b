"""The writer core: positions, duplicates, holes, replay, shedding, batches, lag."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import force_setattr

from services.writer.core import Batch, WriterCore, waited_s
from services.writer.rows import HOUR_NS, MAPPERS
from shared.bus import stamp
from shared.messages import Fill, MarketPosition, Message, TopOfBook, Trade

T0 = 1_793_749_267_000_000_000


def trades(pub: str, n: int, *, epoch: int = 1, start: int = 1) -> list[Message]:
    """Trades stamped as a publisher would: seq start..start+n-1, trade_id = pub-seq."""
    out: list[Message] = []
    for seq in range(start, start + n):
        out.append(Trade(
            trade_id=f"{pub}-{epoch}-{seq}", ticker="T", yes_price=4000, no_price=6000, count=100,
            taker_side="yes", ts_recv=T0 + seq * 1000,
        ))  # fmt: skip
    stamp(out, pub, epoch, after=start - 1)
    return out


def make_core(
    committed: dict | None = None, *, recoverable: Sequence[str] = ("a",), max_buffer: int = 10_000
) -> WriterCore:
    return WriterCore(
        committed or {},
        {},
        lambda pub: pub in recoverable,
        max_buffer=max_buffer,
        stored=MAPPERS.__contains__,
    )


def ids(batch: Batch | None) -> list[str]:
    return [] if batch is None else [r[0] for r in batch.rows.get("trades", [])]


def test_duplicates_at_or_below_the_position_are_skipped() -> None:
    core = make_core({("a", 1, "trade"): 2})
    msgs = trades("a", 5)
    res = core.offer([*msgs[:3], msgs[1], *msgs[3:], msgs[4]])
    assert (res.accepted, res.duplicates, res.deferred) == (3, 4, 0)
    assert ids(core.take(100)) == ["a-1-3", "a-1-4", "a-1-5"]


def test_streams_are_separate_per_publisher_epoch_and_kind() -> None:
    core = make_core()
    res = core.offer([*trades("a", 2), *trades("a", 2, epoch=2), *trades("b", 2)])
    assert res.accepted == 6 and res.duplicates == 0
    batch = core.take(100)
    assert batch is not None
    assert batch.offsets == {
        ("a", 1, "trade"): (2, T0 + 2000),
        ("a", 2, "trade"): (2, T0 + 2000),
        ("b", 1, "trade"): (2, T0 + 2000),
    }


def test_live_hole_from_a_journaled_publisher_waits_for_the_replay() -> None:
    core = make_core()
    msgs = trades("a", 6)
    res = core.offer([msgs[0], msgs[3], msgs[4]])
    assert (res.accepted, res.deferred, res.lost) == (1, 2, [])
    assert core.replay_reason == "hole"
    assert core.position(("a", 1, "trade")) == 1
    assert core.begin_replay() == "hole"
    assert core.offer(msgs[:5], replay=True).accepted == 4  # the journal: 1 is a duplicate
    assert core.offer([msgs[4], msgs[5]]).accepted == 1  # live again
    assert ids(core.take(100)) == [f"a-1-{i}" for i in range(1, 7)]


def test_a_hole_the_replay_could_not_fill_is_accepted_as_lost() -> None:
    core = make_core()
    msgs = trades("a", 5)
    core.offer([msgs[0], msgs[3]])
    core.begin_replay()
    core.offer([msgs[0]], replay=True)  # the journal does not have 2 and 3 either
    res = core.offer([msgs[3], msgs[4]])
    assert res.accepted == 2 and res.lost == [(("a", 1, "trade"), 2)]
    assert core.replay_reason is None


def test_hole_inside_the_journal_is_lost_not_waited_for() -> None:
    core = make_core()
    msgs = trades("a", 5)
    res = core.offer([msgs[0], msgs[1], msgs[4]], replay=True)
    assert res.accepted == 3 and res.lost == [(("a", 1, "trade"), 2)]


def test_hole_from_a_publisher_without_journal_is_counted_lost_at_once() -> None:
    core = make_core(recoverable=())
    msgs = trades("b", 5)
    res = core.offer([msgs[0], msgs[3], msgs[4]])
    assert res.accepted == 3 and res.lost == [(("b", 1, "trade"), 2)] and core.replay_reason is None


def test_first_message_of_a_new_stream_must_be_seq_one_or_come_from_the_journal() -> None:
    core = make_core()
    late = trades("a", 10)
    res = core.offer(late[7:])
    assert res.deferred == 3 and core.replay_reason == "hole"


def test_shedding_drops_replayable_messages_and_defers_until_the_replay() -> None:
    core = make_core(max_buffer=6)
    a = trades("a", 12)
    b = trades("b", 3)
    core.offer(a[:2])
    first = core.take(2)  # in flight
    assert core.offer([*a[2:5], *b]).shed == 0
    res = core.offer(a[5:7])  # 8 buffered > 6
    assert res.shed == 5 and core.shedding and core.replay_reason == "overflow"
    assert core.buffered == 3  # b's three messages: no journal holds them
    assert core.position(("a", 1, "trade")) == 2  # rewound to what was taken
    res = core.offer(a[7:9])
    assert res.deferred == 2 and res.accepted == 0
    assert core.offer(trades("b", 1, start=4)).accepted == 1  # b is not deferred: nothing could replay it
    core.begin_replay()
    assert not core.shedding
    assert core.offer(a[:9], replay=True).accepted == 7
    replayed = core.take(100)
    assert core.offer(a[9:]).accepted == 3
    assert ids(first) == ["a-1-1", "a-1-2"]
    assert ids(replayed) == ["b-1-1", "b-1-2", "b-1-3", "b-1-4", *[f"a-1-{i}" for i in range(3, 10)]]
    assert ids(core.take(100)) == ["a-1-10", "a-1-11", "a-1-12"]


def test_kinds_the_writer_does_not_store_are_ignored() -> None:
    core = make_core()
    tob = TopOfBook(
        ticker="T", xseq=1, valid=True, yes_bid=1, yes_bid_size=1, yes_ask=2, yes_ask_size=1, no_bid=None,
        no_ask=None, mid_x2=None, spread=None,
    )  # fmt: skip
    res = core.offer([tob, *trades("a", 1)])
    assert res.ignored == 1 and res.accepted == 1


def test_fills_and_positions_are_stored_once_through_replays() -> None:
    """This account's fills and positions are stored kinds now: taken live into their tables;
    the journal replaying them again (same publisher stream, same seqs) adds nothing."""
    core = make_core()
    fill = Fill(
        trade_id="f", order_id="o", ticker="T", is_taker=True, side="yes", yes_price=4300, count=100, fee=7,
        pub="a", epoch=1, seq=1,
    )  # fmt: skip
    pos = MarketPosition(
        ticker="T", position=100, position_cost=430_000, realized_pnl=0, fees_paid=7, volume=100,
        pub="a", epoch=1, seq=1,
    )  # fmt: skip
    res = core.offer([fill, pos, *trades("a", 1)])
    assert (res.unstored, res.ignored, res.accepted) == (0, 0, 3)
    batch = core.take(10)
    assert batch is not None and sorted(batch.rows) == ["fills", "positions", "trades"]
    assert batch.offsets[("a", 1, "fill")][0] == 1 and batch.offsets[("a", 1, "position")][0] == 1
    core.commit(batch)
    again = core.offer([fill, pos], replay=True)
    assert (again.duplicates, again.accepted) == (2, 0) and core.take(10) is None


def test_take_commit_and_lag() -> None:
    core = make_core()
    msgs = trades("a", 10)
    core.offer(msgs)
    assert core.lag(T0 + 3 * 10**9) == (10, 3.0 - 1e-6)
    b1 = core.take(4)
    b2 = core.take(4)
    assert b1 is not None and b2 is not None
    assert b1.messages == 4 and b1.offsets == {("a", 1, "trade"): (4, T0 + 4000)}
    assert b1.oldest_recv_ns == T0 + 1000 and b1.newest_recv_ns == T0 + 4000
    core.commit(b1)
    assert core.committed == {("a", 1, "trade"): 4}
    behind, seconds = core.lag(T0 + 10**9)
    assert behind == 6 and 0.99 < seconds < 1.0
    core.commit(b2)
    last = core.take(100)
    assert last is not None
    core.commit(last)
    assert core.lag(T0 + 10**9) == (0, 0.0)
    assert core.take(100) is None


def test_hours_come_from_receive_times_per_row_only_across_a_boundary() -> None:
    core = make_core()
    base = (T0 // HOUR_NS) * HOUR_NS
    msgs = trades("a", 3)
    for m, recv in zip(msgs, (base + 5, base + HOUR_NS - 1, base + HOUR_NS), strict=True):
        force_setattr(m, "ts_recv", recv)
    core.offer(msgs[:2])
    one = core.take(10)
    assert one is not None and one.hours == {"trades": {base // HOUR_NS}}
    core.offer(msgs[2:])
    core.buffer.insert(0, msgs[1])  # a batch straddling the hour
    two = core.take(10)
    assert two is not None and two.hours == {"trades": {base // HOUR_NS, base // HOUR_NS + 1}}


def test_commit_never_moves_a_position_back() -> None:
    core = make_core({("a", 1, "trade"): 9})
    core.offer(trades("a", 3, start=10))
    batch = core.take(100)
    assert batch is not None
    core.commit(batch)
    stale = Batch({}, {}, [], {("a", 1, "trade"): (5, T0)}, 1, 0, T0, T0)
    core.commit(stale)
    assert core.committed[("a", 1, "trade")] == 12


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    drop=st.floats(0.0, 0.3),
    dup=st.floats(0.0, 0.3),
    crash=st.floats(0.0, 0.05),
    max_buffer=st.sampled_from([8, 40, 10_000]),
)
def test_any_delivery_and_crash_pattern_stores_journaled_messages_exactly_once(
    seed: int, drop: float, dup: float, crash: float, max_buffer: int
) -> None:
    """Live delivery drops, duplicates and crashes (uncommitted batches lost); the journal holds
    everything of publisher ``a``. In the end every ``a`` message is committed exactly once and
    ``b`` (no journal) never twice."""
    rng = random.Random(seed)
    a = trades("a", 150)
    b = trades("b", 60)
    journal = a
    live: list[Message] = []
    ai = bi = 0
    while ai < len(a) or bi < len(b):
        src = a if (bi >= len(b) or (ai < len(a) and rng.random() < 0.7)) else b
        m = src[ai] if src is a else src[bi]
        if src is a:
            ai += 1
        else:
            bi += 1
        if rng.random() >= drop:
            live.append(m)
        if live and rng.random() < dup:
            live.append(rng.choice(live))

    core = make_core(max_buffer=max_buffer)
    pending: list[Batch] = []
    stored: list[str] = []

    def replay() -> None:
        core.begin_replay()
        i = 0
        while i < len(journal):
            n = rng.randint(1, 7)
            core.offer(journal[i : i + n], replay=True)
            i += n
            if rng.random() < 0.3:
                maybe_take()

    def maybe_take() -> None:
        batch = core.take(rng.randint(1, 30))
        if batch is not None:
            pending.append(batch)

    def commit_one() -> None:
        if pending:
            batch = pending.pop(0)
            core.commit(batch)
            stored.extend(ids(batch))

    replay()
    i = 0
    while i < len(live):
        n = rng.randint(1, 12)
        core.offer(live[i : i + n])
        i += n
        r = rng.random()
        if r < 0.4:
            maybe_take()
        if r < 0.3:
            commit_one()
        if rng.random() < crash:
            pending.clear()
            core = make_core(core.committed, max_buffer=max_buffer)
            replay()
        if core.replay_reason is not None:
            replay()
    while pending:
        commit_one()
    replay()  # the tail check: the journal holds messages live delivery never brought
    while (batch := core.take(50)) is not None:
        pending.append(batch)
    while pending:
        commit_one()

    a_ids = sorted(s for s in stored if s.startswith("a-"))
    assert a_ids == sorted(f"a-1-{i}" for i in range(1, 151))
    b_ids = [s for s in stored if s.startswith("b-")]
    assert len(b_ids) == len(set(b_ids))
    assert core.committed[("a", 1, "trade")] == 150


def test_batch_age_counts_from_the_oldest_receive_time_capped_at_the_batch() -> None:
    now = 10_000_000_000
    msgs = trades("c", 3)
    for m, recv in zip(msgs, (now - 30_000_000, now - 80_000_000, 0), strict=True):
        force_setattr(m, "ts_recv", recv)  # 0 = not known: ignored
    assert waited_s(msgs, now, 0.2) == 0.08  # 80 ms on the bus already count toward the 200
    force_setattr(msgs[0], "ts_recv", now - 5_000_000_000)
    assert waited_s(msgs, now, 0.2) == 0.2  # a replayed or long-delayed message: due at once
    force_setattr(msgs[0], "ts_recv", now + 1_000_000)  # another host's clock slightly ahead
    force_setattr(msgs[1], "ts_recv", now + 2_000_000)
    assert waited_s(msgs, now, 0.2) == 0.0
    assert waited_s([], now, 0.2) == 0.0
