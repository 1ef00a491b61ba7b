"""The connector's commands, paced under Kalshi's WebSocket command limit.

Every command of a connection goes out through one :class:`~shared.kalshi.ratelimit.TokenBucket`
(the REST client's and the simulator's bucket): ``rate`` commands per second with a burst of
one second's worth. A start-up of thousands of subscribes, or a gap on every sid at once,
then waits its turn instead of drawing error 27 or a throttled connection. A command that
has to wait is counted (``kxfeed_ws_command_waits_total``): a steady count says the market set
or the recovery traffic is more than the budget.

:class:`CommandPacer` is pure (``now`` comes in); :func:`send_paced` is the shell's loop, with
the clock and the sleep handed in so a test drives it without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from shared.kalshi.ratelimit import WS_COMMANDS_PER_S, TokenBucket

from .counts import Counts


class CommandPacer:
    def __init__(self, rate: float, counts: Counts, *, now: float) -> None:
        if not 0 < rate <= WS_COMMANDS_PER_S / 2:
            # A full bucket plus a second's refill is 2 x rate in one second.
            raise ValueError(f"commands_per_s must be in (0, {WS_COMMANDS_PER_S / 2:g}], not {rate}")
        self.bucket = TokenBucket(rate, rate, now=now)
        self.counts = counts

    def delay(self, now: float) -> float:
        """Take one command's token; seconds to wait before sending it (0: now)."""
        wait = self.bucket.reserve(now, 1.0)
        if wait > 0:
            self.counts.add("command_waits")
        return wait


async def send_paced(
    queue: asyncio.Queue[str],
    send: Callable[[str], Awaitable[None]],
    pacer: CommandPacer,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Send the queued commands in order, each when the pacer lets it go; runs until cancelled
    (or ``send`` raises)."""
    while True:
        cmd = await queue.get()
        wait = pacer.delay(clock())
        if wait > 0:
            await sleep(wait)
        await send(cmd)
