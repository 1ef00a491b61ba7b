"""A publisher or subscriber process for the bus tests (run with ``python -m``).

python -m tests.integration.bus_peer pub XSUB N          # N messages cycling every kind
python -m tests.integration.bus_peer sub XPUB N OUT.json # receive until N, write a summary
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import zmq

from shared.bus import Publisher, Subscriber
from shared.messages import (
    BookDelta,
    BookOdds,
    BookSnapshot,
    BookState,
    Control,
    Depth,
    EventLifecycle,
    FeeUpdate,
    Fill,
    Gap,
    Heartbeat,
    MarketLifecycle,
    MarketMeta,
    MarketPosition,
    Message,
    Odds,
    OddsPrice,
    OrderGroupUpdate,
    PollSnapshot,
    PriceRange,
    Signal,
    TopOfBook,
    Trade,
    UserOrder,
    WorkerEvent,
)
from tests.support.messages import ticker_msg

T = "KXNFLGAME-25NOV23BUFHOU-BUF"


def sample(i: int) -> Message:
    """One message of kind ``i % len(kinds)`` with ``i`` in a field, so order can be checked."""
    samples: list[Any] = [
        lambda: BookSnapshot(
            ticker=T, market_id="m", conn=1, sid=1, xseq=i, yes=[(4300, 2500)], no=[(5500, 100)]
        ),
        lambda: BookDelta(ticker=T, market_id="m", conn=1, sid=1, xseq=i, side="yes", price=4300, delta=-250),
        lambda: BookState(ticker=T, valid=False, reason="seq_gap", xseq=i),
        lambda: ticker_msg(T, i),
        lambda: Trade(trade_id=f"t{i}", ticker=T, yes_price=4300, no_price=5700, count=100, taker_side="yes"),
        lambda: Fill(
            trade_id=f"f{i}",
            order_id="o",
            ticker=T,
            is_taker=True,
            side="no",
            yes_price=4300,
            count=100,
            fee=i,
            action="buy",
            post_position=-100,
        ),
        lambda: MarketPosition(
            ticker=T, position=-100, position_cost=i, realized_pnl=-5, fees_paid=7, volume=100
        ),
        lambda: UserOrder(
            order_id=f"o{i}",
            ticker=T,
            status="resting",
            side="yes",
            yes_price=4300,
            fill_count=0,
            remaining_count=100,
            initial_count=100,
            taker_fill_cost=0,
            maker_fill_cost=i,
        ),
        lambda: OrderGroupUpdate(order_group_id=f"g{i}", event_type="created", contracts_limit=i),
        lambda: MarketLifecycle(
            ticker=T, event_type="created", open_ms=i, price_ranges=[PriceRange(0, 10000, 100)]
        ),
        lambda: EventLifecycle(
            event_ticker="KXNFLGAME-25NOV23BUFHOU", series_ticker="KXNFLGAME", title=str(i)
        ),
        lambda: FeeUpdate(event_ticker="E", fee_type_override="quadratic", fee_multiplier_ppm_override=i),
        lambda: MarketMeta(
            ticker=T,
            event_ticker="E",
            series_ticker="S",
            title=str(i),
            yes_sub_title="Buffalo",
            no_sub_title="Houston",
            status="active",
        ),
        lambda: PollSnapshot(
            ticker=T,
            status="active",
            yes_bid=4200,
            yes_ask=None,
            yes_bid_size=1,
            yes_ask_size=0,
            last_price=None,
            volume=i,
            open_interest=0,
        ),
        lambda: Gap(conn=1, sid=1, expected=i, received=i + 3, tickers=[T], reason="seq_jump"),
        lambda: TopOfBook(
            ticker=T,
            xseq=i,
            valid=True,
            yes_bid=4200,
            yes_bid_size=1,
            yes_ask=4400,
            yes_ask_size=1,
            no_bid=5600,
            no_ask=5800,
            mid_x2=8600,
            spread=200,
        ),
        lambda: Depth(ticker=T, xseq=i, valid=True, yes=[(4200, 1)], no=[(5600, 1)]),
        lambda: Signal(
            ticker=T,
            strategy="complement",
            side="yes",
            price=4400,
            size=100,
            fair_ppm=500_000,
            edge=i,
            fees=1,
        ),
        lambda: Heartbeat(worker="peer", pid=1, uptime_ms=i, ready=True, counters={"i": i}),
        lambda: WorkerEvent(worker="peer", event="started", pid=i),
        lambda: Control(target="connector", cmd="snapshot", tickers=[T], reason=str(i)),
        lambda: Odds(
            event_id=str(i),
            sport_key="americanfootball_nfl",
            commence_ms=i,
            home_team="Houston Texans",
            away_team="Buffalo Bills",
            books=[BookOdds("book", i, [OddsPrice("Buffalo Bills", -120)])],
        ),
    ]
    return samples[i % len(samples)]()


def publish(endpoint: str, n: int) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, endpoint, "peer")
    if not pub.wait_for_subscriber_sync("ctl.", timeout=20):
        sys.exit("no subscriber arrived")
    batch: list[Message] = []
    for i in range(n):
        batch.append(sample(i))
        if len(batch) == 200:
            pub.publish_many(batch)
            batch = []
    pub.publish_many(batch)
    pub.close(linger_ms=10_000)
    ctx.term()


async def subscribe(endpoint: str, n: int, out: str) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, endpoint, [""])
    got = 0
    per_kind: dict[str, int] = {}
    last_seq: dict[str, int] = {}
    in_order = True
    deadline = time.monotonic() + 60
    while got < n and time.monotonic() < deadline:
        try:
            batch = await asyncio.wait_for(sub.recv(), 5)
        except TimeoutError:
            break
        for m in batch:
            if m.pub != "peer":
                continue
            got += 1
            kind = m.kind
            per_kind[kind] = per_kind.get(kind, 0) + 1
            if m.seq != last_seq.get(kind, 0) + 1:
                in_order = False
            last_seq[kind] = m.seq
    with open(out, "w") as fh:
        json.dump({"got": got, "per_kind": per_kind, "in_order": in_order, "dropped": sub.dropped}, fh)
    sub.close()
    ctx.term()


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "pub":
        publish(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(subscribe(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
