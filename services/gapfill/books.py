"""REST orderbooks -> resync snapshots for the bus (source rest, no sequence)."""

from __future__ import annotations

from shared.kalshi import parse
from shared.kalshi.rest_models import MarketOrderbook
from shared.messages import BookSnapshot


def rest_snapshot(ob: MarketOrderbook, ts_recv: int) -> BookSnapshot:
    """The book as a BookSnapshot: conn/sid/xseq 0 (REST books carry no sequence), NO levels in
    NO prices as REST sends them. Raises UnitError on a price or count finer than its unit."""
    book = ob.orderbook_fp
    return BookSnapshot(
        ticker=ob.ticker,
        market_id="",
        conn=0,
        sid=0,
        xseq=0,
        yes=parse.levels(book.yes_dollars or [], flip=False),
        no=parse.levels(book.no_dollars or [], flip=False),
        source="rest",
        ts_recv=ts_recv,
    )
