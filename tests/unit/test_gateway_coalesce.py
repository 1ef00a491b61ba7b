"""Identical concurrent asks coalesced: within one loop turn only, never onto one already sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.gateway.coalesce import Coalescer


async def turns_until(pred: Callable[[], bool]) -> None:
    for _ in range(100):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("never")


def test_one_ask_per_key_per_loop_turn_and_none_joins_one_sent() -> None:
    async def main() -> None:
        c = Coalescer()
        sent: list[str] = []
        release = asyncio.Event()

        def make(key: str) -> Callable[[], Awaitable[tuple[str, int]]]:
            async def ask() -> tuple[str, int]:
                sent.append(key)
                n = len(sent)
                await release.wait()
                return key, n

            return ask

        first = [asyncio.ensure_future(c.ask("A", make("A"))) for _ in range(5)]
        other = asyncio.ensure_future(c.ask("B", make("B")))
        await turns_until(lambda: len(sent) == 2)
        assert sorted(sent) == ["A", "B"]
        late = asyncio.ensure_future(c.ask("A", make("A")))  # A is in flight: a new ask, not a join
        await turns_until(lambda: len(sent) == 3)
        release.set()
        answers = await asyncio.gather(*first)
        assert len(set(answers)) == 1 and answers[0][0] == "A"
        assert (await other)[0] == "B"
        assert await late == ("A", 3)
        assert (c.asks, c.joined) == (3, 4)

    asyncio.run(main())


def test_an_error_reaches_every_joiner_and_a_cancelled_joiner_leaves_the_rest() -> None:
    async def main() -> None:
        c = Coalescer()

        async def fails() -> None:
            await asyncio.sleep(0)
            raise ValueError("refused")

        joiners = [asyncio.ensure_future(c.ask("A", fails)) for _ in range(3)]
        await asyncio.sleep(0)
        joiners[0].cancel()
        results = await asyncio.gather(*joiners, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(isinstance(r, ValueError) for r in results[1:])
        with pytest.raises(ValueError):
            await c.ask("A", fails)

    asyncio.run(main())
