"""Identical concurrent asks answered by one: the live book route's requests to the orderbook.

Requests for the same key that arrive within one turn of the event loop share one ask, sent
at the end of that turn. One sent already is never joined: every answer is the state at or
after its request arrived, never older. The ask's result (or its exception) is each joiner's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = ["Coalescer"]


class Coalescer:
    def __init__(self) -> None:
        #: key -> the future of the ask not yet sent, that requests arriving now join.
        self._open: dict[Hashable, asyncio.Future[Any]] = {}
        #: Asks sent, and requests answered by one sent for another (what coalescing saved).
        self.asks = 0
        self.joined = 0

    async def ask(self, key: Hashable, make: Callable[[], Awaitable[Any]]) -> Any:
        fut = self._open.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = self._open[key] = loop.create_future()
            # Read by someone even when every joiner went away: no "never retrieved" warning.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(self._send, key, fut, make)
        else:
            self.joined += 1
        # Shielded: one joiner cancelled (its client went away) does not cancel the others' ask.
        return await asyncio.shield(fut)

    def _send(self, key: Hashable, fut: asyncio.Future[Any], make: Callable[[], Awaitable[Any]]) -> None:
        del self._open[key]  # from now on a request for the key starts a new ask
        self.asks += 1
        task = asyncio.ensure_future(make())

        def done(t: asyncio.Future[Any]) -> None:
            if fut.done():
                return
            if t.cancelled():
                fut.cancel()
            elif (exc := t.exception()) is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(t.result())

        task.add_done_callback(done)
