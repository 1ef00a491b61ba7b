"""One supervised group of background tasks: the only way a worker starts a loop.

:class:`Supervised` is what :class:`~shared.actor.Actor` composes (``Actor.spawn``), and what
the exchange simulator uses when it runs outside a worker. A task that raises is reported
at once to ``on_failure`` (which logs its traceback); the first failure is kept and sets
:attr:`Supervised.failed`, so the owner stops instead of running on without the loop. A task
that returns is done; one cancelled is not a failure. :meth:`Supervised.close` cancels and
awaits every task left, and an error raised while a task unwinds is reported too: nothing
ends silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

#: ``on_failure(what, exc)``: log it (with its traceback) and decide what it means.
FailureHandler = Callable[[str, BaseException], None]


class Supervised:
    def __init__(self, owner: str, on_failure: FailureHandler) -> None:
        self.owner = owner
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The first exception a task raised (None: none so far).
        self.failure: BaseException | None = None
        #: Set with the first failure.
        self.failed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.report(f"background task {task.get_name()} failed", exc)

    def report(self, what: str, exc: BaseException) -> None:
        """Hand ``exc`` to the failure handler and remember it if it is the first."""
        self._on_failure(what, exc)
        if self.failure is None:
            self.failure = exc
            self.failed.set()

    def cancel(self) -> None:
        """Cancel every task but the calling one (a task may end its own group)."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def close(self) -> None:
        """Cancel every task left and wait for each (their done callbacks report failures)."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def finish(task: asyncio.Task[Any], what: str, on_failure: FailureHandler) -> None:
    """Cancel a task that is not in a group and wait for it; an error while it unwinds is reported."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        on_failure(f"{what} failed while stopping", exc)
