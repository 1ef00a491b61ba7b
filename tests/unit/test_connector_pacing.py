"""The connector's commands through one token bucket, under Kalshi's published command rate;
driven by an injected clock (no real waiting, no timing asserts)."""

from __future__ import annotations

import asyncio
import bisect
from pathlib import Path

import msgspec
import pytest

from services.connector.counts import Counts
from services.connector.pacing import CommandPacer, send_paced
from shared.config import ConnectorConfig
from shared.kalshi.ratelimit import WS_COMMANDS_PER_S
from tests.support.config import make_config


def test_a_burst_of_one_seconds_worth_goes_at_once_then_commands_wait_their_turn() -> None:
    counts = Counts()
    pacer = CommandPacer(4.0, counts, now=100.0)
    assert [pacer.delay(100.0) for _ in range(4)] == [0.0] * 4
    assert counts.of("command_waits") == 0
    # The bucket is empty: the next ones queue a quarter second apart, in order.
    assert [pacer.delay(100.0) for _ in range(3)] == [0.25, 0.5, 0.75]
    assert counts.of("command_waits") == 3
    # A second later the queued three are spent and one more token has come in.
    assert pacer.delay(101.0) == 0.0
    assert counts.of("command_waits") == 3


def test_never_more_than_kalshis_limit_in_any_second() -> None:
    rate = WS_COMMANDS_PER_S / 2
    pacer = CommandPacer(rate, Counts(), now=0.0)
    sent: list[float] = []
    now = 0.0
    for _ in range(int(3 * rate)):
        at = now + pacer.delay(now)
        sent.append(at)
        now += 1 / (4 * rate)  # commands arrive four times faster than the budget
    assert sent == sorted(sent)
    for i, at in enumerate(sent):
        assert bisect.bisect_left(sent, at + 1.0) - i <= WS_COMMANDS_PER_S


def test_the_rate_must_stay_under_the_published_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="commands_per_s"):
        CommandPacer(WS_COMMANDS_PER_S, Counts(), now=0.0)
    with pytest.raises(ValueError):
        CommandPacer(0.0, Counts(), now=0.0)
    assert ConnectorConfig().commands_per_s * 2 <= WS_COMMANDS_PER_S
    with pytest.raises(msgspec.ValidationError, match="commands_per_s"):
        make_config(tmp_path, connector={"commands_per_s": 20_000.0})


def test_send_paced_sleeps_on_the_injected_clock_and_keeps_the_order() -> None:
    async def body() -> None:
        clock = [10.0]
        sleeps: list[float] = []
        sent: list[tuple[float, str]] = []

        async def sleep(s: float) -> None:
            sleeps.append(s)
            clock[0] += s

        async def send(cmd: str) -> None:
            sent.append((clock[0], cmd))

        counts = Counts()
        q: asyncio.Queue[str] = asyncio.Queue()
        for i in range(5):
            q.put_nowait(f"c{i}")
        pacer = CommandPacer(2.0, counts, now=10.0)
        task = asyncio.create_task(send_paced(q, send, pacer, clock=lambda: clock[0], sleep=sleep))
        while len(sent) < 5:
            await asyncio.sleep(0)
        task.cancel()
        assert [c for _, c in sent] == ["c0", "c1", "c2", "c3", "c4"]
        # Two go at once (the burst); then one every half second of the injected clock.
        assert [t for t, _ in sent] == [10.0, 10.0, 10.5, 11.0, 11.5]
        assert sleeps == [0.5, 0.5, 0.5]
        assert counts.of("command_waits") == 3

    asyncio.run(body())
