"""Books the arb asks of the orderbook worker's control socket (``[arb] seed_books``).

The orderbook publishes a book's top and depth when it changes, so a book that is quiet
when the arb (re)starts, or after every book was marked not fresh, would stay unknown.
Each round asks, in one request, which of the books the arb still lacks the orderbook
holds (``hashes``: books it lacks are simply absent, not an error), then asks ``book``
for those only. Under ``kxfeed up`` the arb starts before the connector, when no book
exists yet: the first round finds none and asks nothing more; those books arrive on the
bus (``tob.``) as their snapshots do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.commands.book import Book
from shared.commands.hashes import Hashes
from shared.control import ControlError, arequest
from shared.log import BurstLog

from . import metrics as mx
from .candidate import Candidate
from .detector import Detector

Clock = Callable[[], int]  # ns


class Seeder:
    def __init__(
        self, endpoint: str, detector: Detector, emit: Callable[[list[Candidate]], None], log: BurstLog
    ) -> None:
        self.endpoint = endpoint
        self.det = detector
        self.emit = emit
        self.log = log
        #: Markets settled for this round of seeding (seeded, or not held by the orderbook).
        self.done: set[str] = set()

    def reset(self) -> None:
        """Every book was marked not fresh: ask again for all of them."""
        self.done.clear()

    def todo(self) -> list[str]:
        det = self.det
        return [
            t
            for t in sorted(det.catalog.markets)
            if t not in self.done and not ((bk := det.books.get(t)) is not None and bk.known)
        ]

    async def round(self, clock: Clock) -> None:
        todo = self.todo()
        if not todo:
            return
        try:
            held: dict[str, Any] = await arequest(self.endpoint, Hashes(tickers=list(todo)), timeout_s=1.0)
        except ControlError as exc:
            self._no_answer(exc, "hashes")
            return  # the orderbook is not up (or too old to list its books); next round
        for t in todo:
            if t not in held:
                mx.SEEDS.labels("not_held").inc()  # its snapshot has not come: tob.<t> will
                self.done.add(t)
        for t in todo:
            if t in held and not await self._seed(t, clock):
                return

    async def _seed(self, ticker: str, clock: Clock) -> bool:
        """Ask for one book; False when the orderbook stopped answering."""
        det = self.det
        before = det.books[ticker].order if ticker in det.books else 0
        try:
            answer = await arequest(self.endpoint, Book(ticker=ticker, depth=0), timeout_s=1.0)
        except ControlError as exc:
            if "no answer" in str(exc):
                self._no_answer(exc, "book")
                return False
            # Held a moment ago, gone now (closed, or the orderbook restarted): the bus tells.
            mx.SEEDS.labels("no_book").inc()
            self.done.add(ticker)
            return True
        self.done.add(ticker)
        if (det.books[ticker].order if ticker in det.books else 0) != before:
            mx.SEEDS.labels("superseded").inc()  # the bus brought a newer top meanwhile
            return True
        mx.SEEDS.labels("seeded").inc()
        now = clock()
        self.emit(det.seed(ticker, answer, now // 1_000_000, now))
        return True

    def _no_answer(self, exc: ControlError, cmd: str) -> None:
        mx.SEEDS.labels("no_answer").inc()
        self.log.event(f"seed-{cmd}", "orderbook did not answer a book query", cmd=cmd, error=str(exc)[:200])
