"""``kxfeed book TICKER --at TIME``: the book as stored at a moment (:mod:`shared.book.at`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from services.cli import bookview as render
from services.cli.common import load
from services.cli.instants import instant
from shared.book.at import book_at
from shared.config import DbConfig
from shared.messages import JSON_ENCODER
from shared.store.engine import make_engine, redact
from shared.store.migrate import current_revision


def run_at(args: argparse.Namespace) -> int:
    try:
        at = instant(args.at, datetime.now(UTC), "--at")
        if args.depth < 0:
            raise ValueError("--depth must be >= 0 (0 = every level)")
    except ValueError as exc:
        print(f"kxfeed book: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, load(args).db, at))


async def _run(args: argparse.Namespace, db: DbConfig, at: datetime) -> int:
    engine = make_engine(db)
    try:
        if await current_revision(engine) is None:
            print(
                f"kxfeed book: {redact(db.url)}: no kxfeed schema; run `kxfeed db upgrade`", file=sys.stderr
            )
            return 2
        res = await book_at(engine, args.ticker, at)
    finally:
        await engine.dispose()
    ans = res.answer(args.depth)
    if args.json:
        print(JSON_ENCODER.encode(ans).decode())
    elif not res.found:
        print(f"{args.ticker}: no WebSocket snapshot stored at or before {ans['at']}")
    else:
        print(
            f"as stored at {ans['at']}: snapshot seq {res.snapshot_xseq} of {ans['snapshot_ts']} "
            f"+ {res.deltas} deltas (the last at {ans['ts']})"
        )
        print(render.book(ans))
    return 0 if res.found else 1
