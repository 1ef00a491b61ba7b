"""Bus throughput between two processes through the proxy, against raw pyzmq.

  python bench/bus.py [--messages N]

Three processes each run: the proxy (kxfeed's Proxy, a zmq.proxy thread), a
publisher and a subscriber. Cases:

- raw pyzmq: PUB -> proxy -> SUB, one message per send, the same payload sizes,
  no encode/decode: the limit;
- kxfeed one-per-send: Publisher.publish(msg) per message, asyncio Subscriber that
  drains and decodes every ready frame;
- kxfeed batched: publish_many() with runs of equal topics (many messages per
  frame, as a producer drains what is ready), decoded by the subscriber;
- kxfeed mixed: publish_many() of 500-message batches over 50 markets in random
  order (short runs: what a real feed gives).

Every kxfeed case checks that nothing was dropped. Targets (2 cores):
one-per-send >= 70% of raw; batched >= 1,000,000 msgs/s decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.bus import Proxy, Publisher, Subscriber
from shared.messages import BATCH_ENCODER, Message, Trade
from tests.support.messages import book_delta, ticker_msg


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _messages(n: int, tickers: int, run: int, seed: int = 1) -> list[Message]:
    rnd = random.Random(seed)
    names = [f"KXNBAGAME-26NOV{d:02d}LALBOS-LAL" for d in range(tickers)]
    out: list[Message] = []
    i = 0
    runs = 0
    while len(out) < n:
        t = names[rnd.randrange(tickers)]
        runs += 1
        for _ in range(min(run, n - len(out))):
            i += 1
            # One kind per run (a run = one topic); 8 in 10 messages are deltas either way.
            r = (runs if run > 1 else i) % 10
            if r < 8:
                out.append(
                    book_delta(
                        t,
                        i,
                        4300,
                        -2500,
                        market_id="3f0c9a62-1c1e-4c55-9a4e-2b7f0d1e8a11",
                        ts_exch=1793749267412,
                        ts_recv=i,
                    )
                )
            elif r == 8:
                out.append(
                    Trade(
                        trade_id=f"{i:032x}",
                        ticker=t,
                        yes_price=4300,
                        no_price=5700,
                        count=2500,
                        taker_side="yes",
                        ts_exch=1793749267412,
                        ts_recv=i,
                    )
                )
            else:
                out.append(
                    ticker_msg(
                        t,
                        i,
                        yes_bid_size=100,
                        yes_ask_size=200,
                        last_trade_size=100,
                        ts_exch=1793749267412,
                        ts_recv=i,
                    )
                )
    return out


def _proxy(xsub: str, xpub: str, stop: Connection) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, xsub, xpub, hwm=2_000_000)
    proxy.start()
    stop.recv()
    proxy.stop()
    ctx.destroy(0)


def _raw_sub(xpub: str, n: int, ready: Connection, result: Connection) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 2_000_000)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(xpub)
    ready.send(True)
    s.recv_multipart()
    t0 = time.perf_counter()
    got = 1
    while got < n and s.poll(5000):
        s.recv_multipart()
        got += 1
    result.send((got, time.perf_counter() - t0, 0))
    ctx.destroy(0)


def _raw_pub(xsub: str, n: int) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.SNDHWM, 2_000_000)
    s.connect(xsub)
    frames = [(m.topic().encode(), BATCH_ENCODER.encode([m])) for m in _messages(min(n, 50_000), 50, 1)]
    s.recv()  # the subscription arrived: no slow-joiner loss
    send = s.send_multipart
    for i in range(n):
        send(frames[i % len(frames)])
    s.close(linger=30_000)
    ctx.term()


def _kx_sub(xpub: str, n: int, ready: Connection, result: Connection) -> None:
    async def run() -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = Subscriber(ctx, xpub, ["delta.", "trade.", "ticker."], rcvhwm=2_000_000, max_batch=50_000)
        ready.send(True)
        got = len(await sub.recv())
        t0 = time.perf_counter()
        while got < n:
            try:
                got += len(await asyncio.wait_for(sub.recv(), 5))
            except TimeoutError:
                break
        result.send((got, time.perf_counter() - t0, sub.dropped))
        sub.close()
        ctx.destroy(0)

    asyncio.run(run())


def _kx_pub(xsub: str, n: int, mode: str) -> None:
    # Messages are built before the clock starts: the bench measures the bus, not Struct construction.
    run = 500 if mode == "batched" else 1
    msgs = _messages(n, 50, run)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, xsub, "bench", sndhwm=2_000_000)
    pub.wait_for_subscriber_sync("delta.", 10)
    if mode == "single":
        for m in msgs:
            pub.publish(m)
    else:
        for i in range(0, len(msgs), 500):
            pub.publish_many(msgs[i : i + 500])
    pub.close(30_000)
    ctx.term()


def measure(case: str, n: int) -> tuple[float, int, int]:
    mpc = mp.get_context("spawn")
    xsub, xpub = f"tcp://127.0.0.1:{_port()}", f"tcp://127.0.0.1:{_port()}"
    stop_r, stop_w = mpc.Pipe(False)
    ready_r, ready_w = mpc.Pipe(False)
    res_r, res_w = mpc.Pipe(False)
    proxy = mpc.Process(target=_proxy, args=(xsub, xpub, stop_r))
    proxy.start()
    if case == "raw":
        sub = mpc.Process(target=_raw_sub, args=(xpub, n, ready_w, res_w))
        pub = mpc.Process(target=_raw_pub, args=(xsub, n))
    else:
        sub = mpc.Process(target=_kx_sub, args=(xpub, n, ready_w, res_w))
        pub = mpc.Process(target=_kx_pub, args=(xsub, n, case))
    sub.start()
    ready_r.recv()
    pub.start()
    got, seconds, dropped = res_r.recv()
    pub.join(30)
    sub.join(30)
    stop_w.send(True)
    proxy.join(10)
    return got / seconds, got, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.messages
    raw, raw_got, _ = measure("raw", n)
    print(f"raw pyzmq, one per send          : {raw:12,.0f} msgs/s  ({raw_got:,} of {n:,})  <- limit")
    rows = [
        ("single", "kxfeed one-per-send, decoded     "),
        ("batched", "kxfeed batched (runs of 500)     "),
        ("mixed", "kxfeed mixed 50 markets (short runs)"),
    ]
    for case, label in rows:
        rate, got, dropped = measure(case, n)
        share = rate / raw
        print(f"{label}: {rate:12,.0f} msgs/s  ({got:,} of {n:,}, dropped {dropped})  = {share:5.0%} of raw")
    print("targets: one-per-send >= 70% of raw; batched >= 1,000,000 msgs/s with no drops")


if __name__ == "__main__":
    main()
