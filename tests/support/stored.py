"""Messages put in a database the way the writer does it (its core, then its store), and what a
history query must then return, for tests whose data must survive a change of the schema."""

from __future__ import annotations

import time
from typing import Any

from services.writer.batches import open_store
from services.writer.core import WriterCore
from services.writer.rows import MAPPERS
from shared.config import DbConfig
from shared.messages import Message
from shared.store import history
from shared.store.engine import make_engine
from shared.store.migrate import upgrade
from shared.store.schema import APPEND
from tests.support.synth import expected_tables

#: history kind -> the append table the writer stores it in.
TABLE_OF = {"deltas": "book_deltas", "snapshots": "book_snapshots", "trades": "trades", "tickers": "ticks"}


async def store_messages(db: DbConfig, msgs: list[Message], *, batch: int = 1000) -> None:
    """``msgs`` (stamped: :func:`tests.support.synth.stamp`) through the writer's core and store
    into ``db`` (migrated first)."""
    engine = make_engine(db)
    try:
        await upgrade(engine, db)
        st = open_store(engine)
        core = WriterCore({}, {}, lambda pub: True, max_buffer=10**7, stored=MAPPERS.__contains__)
        core.offer(msgs)
        while (b := core.take(batch)) is not None:
            await st.write(b, time.time_ns() // 1000)
            core.commit(b)
        await st.close()
    finally:
        await engine.dispose()


def expected_rows(msgs: list[Message], kind: str) -> list[tuple[Any, ...]]:
    """The rows a query of ``kind`` with no filter returns after ``msgs`` are stored, in the
    kind's key order (computed from the messages, not read from the database)."""
    table = TABLE_OF[kind]
    cols = APPEND[table].columns
    spec = history.KINDS[kind]
    pick = [cols.index(n) for n in spec.names]
    order = [spec.names.index(n) for n in spec.order]
    rows = [tuple(r[i] for i in pick) for r in expected_tables(msgs)[table]]
    return sorted(rows, key=lambda r: tuple(r[i] for i in order))
