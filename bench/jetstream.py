"""JetStream bridge throughput and end-to-end latency, beside raw nats-py publishing with acks.

  .venv/bin/python bench/jetstream.py [--records N] [--rate R] [--seconds S]

A private nats-server (``-js``, file store in a temp dir, port of its own choosing) serves every
phase of one run, so the figures share the machine's state:

- raw, ``js.publish_async``: nats-py's own async PubAcks (a future per publish, at most 20,000
  pending), N messages with the bridge's subjects, headers and payloads, into a fresh stream;
- raw, wildcard inbox: plain ``nc.publish`` with a reply subject per message under one wildcard
  subscription, 20,000 in flight;
- raw, joined: the bridge's own technique without the bridge (HPUB commands built once and
  written 2,000 per write, acks under one wildcard inbox, 20,000 in flight);
- bridge: a real journal of N single-delta records (shared.journal.JournalWriter), then
  ``kxfeed worker jetstream`` started on it; the clock runs from the first to the last message
  the server stored (its own timestamps), so process start-up is not counted;
- latency: a publisher process journals deltas at R msgs/s for S seconds (ts_recv = the moment of
  the append); a reader takes each message: latency = its arrival - ts_recv (journal -> bridge ->
  NATS -> a remote reader). Twice: a plain subscriber of the subjects (the server routes the
  message as it stores it), and an ordered JetStream consumer (what ``kxfeed tap --jetstream``
  uses: delivered once stored, with flow control);
- to a remote writer's commit: the same publisher, and a writer process on
  ``[writer] source = "jetstream"`` (SQLite) storing the stream; its own histogram of receive ->
  committed for each batch's oldest message (``kxfeed_writer_store_latency_seconds``, read before
  and after the run) gives p50/p99 as bucket upper bounds; batches close at ``[writer] batch_ms``.

The throughput phases run in alternating rounds (the machine's load moves); each round's ratio is
the bridge over the best raw of that round, and the medians are printed.
Targets (issue 20): the bridge >= 50,000 msgs/s and >= 60% of the raw figure (the best raw).
Messages are JetStream messages; each record here holds one bus message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from nats.js.api import DeliverPolicy, StreamConfig  # noqa: E402

from shared import jetstream as js  # noqa: E402
from shared.bus import stamp  # noqa: E402
from shared.config_workers import WriterConfig  # noqa: E402
from shared.journal import JournalWriter  # noqa: E402
from shared.messages import BATCH_DECODER, BATCH_ENCODER  # noqa: E402
from tests.integration.test_jetstream_rig import NatsServer  # noqa: E402
from tests.support.config import make_config, reported_port, write_config  # noqa: E402
from tests.support.control import stats as control_stats  # noqa: E402
from tests.support.procs import wait_until  # noqa: E402
from tests.support.synth import deltas  # noqa: E402

TARGET_MSGS_S = 50_000
TARGET_RATIO = 0.60
INFLIGHT = 20_000
DEFAULT_BATCH_MS = WriterConfig().batch_ms


def records(n: int, pub: str, epoch: int) -> list[tuple[str, bytes, str]]:
    """(subject, payload, msg id) of n single-delta frames, as the bridge would send them."""
    msgs = deltas(n)
    stamp(msgs, pub, epoch)
    return [
        (js.subject("kxfeed", m.topic()), BATCH_ENCODER.encode([m]), js.msg_id(pub, epoch, "delta", m.seq))
        for m in msgs
    ]


def rfc3339_ns(text: str) -> int:
    """'2026-12-04T19:20:00.123456789Z' -> ns since the epoch (the server's stream timestamps)."""
    from datetime import datetime

    base, _, frac = text.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(base + "+00:00")
    return int(whole.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


async def stored_span(nc: Any, stream: str) -> tuple[int, float]:
    """(messages, seconds from the first to the last stored) of a stream, by the server's clock."""
    msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
    state = json.loads(msg.data)["state"]
    span = (rfc3339_ns(state["last_ts"]) - rfc3339_ns(state["first_ts"])) / 1e9
    return int(state["messages"]), span


async def fresh_stream(nc: Any, name: str, subject: str) -> None:
    jsm = nc.jsm()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await jsm.delete_stream(name)
    await jsm.add_stream(StreamConfig(name=name, subjects=[subject], duplicate_window=900.0))


async def drop_streams(url: str) -> None:
    """The bridge's streams gone, so a round's bridge phase counts only its own messages."""
    nc = await nats.connect(url)
    try:
        for name in ("KXFEED_BOOK", "KXFEED_EVENTS"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jsm().delete_stream(name)
    finally:
        await nc.close()


async def raw_publish_async(url: str, recs: list[tuple[str, bytes, str]]) -> float:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    try:
        await fresh_stream(nc, "RAW_ASYNC", "raw1.>")
        jsc = nc.jetstream(publish_async_max_pending=INFLIGHT)
        for subject, payload, mid in recs:
            await jsc.publish_async(
                "raw1" + subject[6:], payload, headers={js.MSG_ID_HEADER: mid, js.KIND_HEADER: "delta"}
            )
        await asyncio.wait_for(jsc.publish_async_completed(), 120)
        n, span = await stored_span(nc, "RAW_ASYNC")
        assert n == len(recs), (n, len(recs))
        return n / span
    finally:
        await nc.close()


class Acks:
    """The PubAcks coming back under one wildcard reply inbox, and the room they make for more
    (at most INFLIGHT unacked)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.acked = 0
        self._more = asyncio.Event()
        self.done = asyncio.Event()

    async def listen(self, nc: Any) -> str:
        """Subscribe to the acks; the inbox whose ``.<n>`` subjects to reply to."""
        inbox: str = nc.new_inbox()
        await nc.subscribe(inbox + ".*", cb=self.on_ack, pending_msgs_limit=10**7, pending_bytes_limit=-1)
        return inbox

    async def on_ack(self, msg: Any) -> None:
        if b'"error"' in msg.data:
            raise RuntimeError(msg.data[:200])
        self.acked += 1
        self._more.set()
        if self.acked == self.total:
            self.done.set()

    async def room(self, sent: int, want: int) -> int:
        """Wait until one more can go after ``sent``; how many of ``want`` may go now."""
        while sent - self.acked >= INFLIGHT:
            self._more.clear()
            await self._more.wait()
        return min(want, INFLIGHT - (sent - self.acked))


async def raw_wildcard_inbox(url: str, recs: list[tuple[str, bytes, str]]) -> float:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    try:
        await fresh_stream(nc, "RAW_INBOX", "raw2.>")
        acks = Acks(len(recs))
        inbox = await acks.listen(nc)
        for i, (subject, payload, mid) in enumerate(recs):
            await acks.room(i, 1)
            await nc.publish(
                "raw2" + subject[6:], payload, reply=f"{inbox}.{i}",
                headers={js.MSG_ID_HEADER: mid, js.KIND_HEADER: "delta"},
            )  # fmt: skip
        await asyncio.wait_for(acks.done.wait(), 120)
        n, span = await stored_span(nc, "RAW_INBOX")
        assert n == len(recs), (n, len(recs))
        return n / span
    finally:
        await nc.close()


async def raw_joined(url: str, recs: list[tuple[str, bytes, str]]) -> float:
    """The bridge's own publish technique without the bridge: HPUB commands joined per 2,000
    (``NatsLink._publish_joined``), 20,000 in flight, acks under one wildcard inbox."""
    from services.jetstream.core import header_block

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    try:
        await fresh_stream(nc, "RAW_JOINED", "raw3.>")
        acks = Acks(len(recs))
        inbox_b = f"{await acks.listen(nc)}.".encode()
        sent = 0
        while sent < len(recs):
            n = await acks.room(sent, min(2000, len(recs) - sent))
            parts = []
            for i in range(sent, sent + n):
                subject, payload, mid = recs[i]
                hdr = header_block(mid, "delta")
                subj = ("raw3" + subject[6:]).encode()
                size = len(hdr) + len(payload)
                cmd = b"HPUB %b %b%d %d %d\r\n" % (subj, inbox_b, i, len(hdr), size)
                parts.append(cmd + hdr + payload + b"\r\n")
            await nc._send_command(b"".join(parts))
            await nc._flush_pending()
            sent += n
        await asyncio.wait_for(acks.done.wait(), 120)
        got, span = await stored_span(nc, "RAW_JOINED")
        assert got == len(recs), (got, len(recs))
        return got / span
    finally:
        await nc.close()


def bridge_config(tmp: Path, url: str) -> Path:
    cfg = make_config(tmp, jetstream={"enabled": True, "servers": [url]})
    return write_config(cfg, tmp / "kx.toml")


async def bridge_throughput(url: str, tmp: Path, n: int) -> float:
    journal = JournalWriter(tmp / "journal" / "bench", segment_bytes=64 * 1024 * 1024, fsync="never")
    recs = records(n, "bench", time.time_ns())
    for i in range(0, n, 1000):
        journal.append([p for _, p, _ in recs[i : i + 1000]])
    journal.close()
    config = bridge_config(tmp, url)
    bridge = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "worker", "jetstream", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "bridge.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    nc = await nats.connect(url)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                got, span = await stored_span(nc, "KXFEED_BOOK")
            except (KeyError, nats.errors.Error):
                got, span = 0, 0.0
            if got >= n:
                assert got == n, (got, n)
                return n / span
            if bridge.poll() is not None:
                log = (tmp / "bridge.log").read_text()
                raise RuntimeError(f"the bridge exited {bridge.returncode}: {log}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bridge stored {got} of {n} in 180 s")
    finally:
        await nc.close()
        bridge.terminate()
        bridge.wait(30)


def _live_publisher(journal_dir: str, rate: float, seconds: float) -> None:
    """Journal single-delta frames at ``rate``/s, ts_recv = the append's moment."""
    journal = JournalWriter(Path(journal_dir), fsync="never")
    epoch = time.time_ns()
    template = deltas(1000)
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        batch = []
        while seq < due:
            m = template[seq % 1000]
            seq += 1
            stamp([m], "live", epoch, seq - 1)
            batch.append(BATCH_ENCODER.encode([msgspec_replace(m, time.time_ns(), seq)]))
        if batch:
            journal.append(batch)
        time.sleep(0.001)
    journal.close()


def msgspec_replace(m: Any, ts_recv: int, xseq: int) -> Any:
    """``m`` received now, as the ``xseq``-th delta of its subscription (each a row of its own)."""
    import msgspec

    return msgspec.structs.replace(m, ts_recv=ts_recv, xseq=xseq)


@contextlib.asynccontextmanager
async def live_bridge(url: str, tmp: Path) -> AsyncIterator[None]:
    """A bridge on a live journal, its streams created; the publisher is :func:`publish_live`."""
    # A clean stream: an ordered consumer that resets before its first message starts over from
    # the stream's first message, and the throughput phase's messages would be taken as late.
    nc = await nats.connect(url)
    for stream in ("KXFEED_BOOK", "KXFEED_EVENTS"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jsm().delete_stream(stream)
    config = bridge_config(tmp, url)
    # The live journal exists before the bridge starts (it looks for new ones once a second, and
    # that second is start-up, not latency); its warm-up record is older than t0 and not counted.
    warm = JournalWriter(tmp / "journal" / "live", fsync="never")
    warm.append([records(1, "warm", 1)[0][1]])
    warm.close()
    bridge = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "worker", "jetstream", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "bridge.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # the bridge creates the streams once it is up
            try:
                await nc.jsm().stream_info("KXFEED_BOOK")
                break
            except nats.js.errors.NotFoundError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        yield
    finally:
        await nc.close()
        bridge.terminate()
        bridge.wait(30)


async def publish_live(tmp: Path, rate: float, seconds: float) -> None:
    """A publisher process journals deltas at ``rate``/s for ``seconds`` (ts_recv = the append)."""
    pub = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); from bench.jetstream import _live_publisher; "
         "_live_publisher(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))",
         str(ROOT), str(tmp / "journal" / "live"), str(rate), str(seconds)],
        cwd=ROOT,
    )  # fmt: skip
    # Waited for off the loop: the reader's callbacks run on it meanwhile.
    assert await asyncio.to_thread(pub.wait, seconds + 60) == 0


async def latency(url: str, tmp: Path, rate: float, seconds: float, ordered: bool) -> list[float]:
    samples: list[float] = []
    t0 = time.time_ns() + 10**18  # set when the publisher starts
    async with live_bridge(url, tmp):
        nc = await nats.connect(url)
        try:

            async def on_msg(msg: Any) -> None:
                now = time.time_ns()
                last = BATCH_DECODER.decode(msg.data)[-1]
                if last.ts_recv >= t0:
                    samples.append((now - last.ts_recv) / 1e6)

            sub: Any
            if ordered:
                sub = await nc.jetstream().subscribe(
                    "kxfeed.delta.>", cb=on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
                )
            else:
                sub = await nc.subscribe("kxfeed.delta.>", cb=on_msg, pending_msgs_limit=10_000_000)
            t0 = time.time_ns()
            await publish_live(tmp, rate, seconds)
            want = int(rate * seconds * 0.95)
            end = time.monotonic() + 30
            while len(samples) < want and time.monotonic() < end:
                await asyncio.sleep(0.05)
            await sub.unsubscribe()
            return samples
        finally:
            await nc.close()


def _store_buckets(body: str) -> dict[float, float]:
    """kxfeed_writer_store_latency_seconds: cumulative count per upper bound (s)."""
    out: dict[float, float] = {}
    for line in body.splitlines():
        if line.startswith("kxfeed_writer_store_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


async def writer_latency(url: str, tmp: Path, rate: float, seconds: float) -> tuple[dict[float, float], int]:
    """journal -> bridge -> JetStream -> a writer on ``source = "jetstream"`` (SQLite) -> its commit:
    the writer's own histogram of ts_recv -> committed, for the oldest message of each batch,
    counted over the run (buckets: upper bound -> batches), and the rows stored."""
    cfg = make_config(
        tmp / "writer",
        jetstream={"servers": [url]},
        writer={"source": "jetstream", "jetstream_durable": "bench-latency"},
    )
    path = write_config(cfg, tmp / "writer.toml")
    async with live_bridge(url, tmp):
        writer = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "worker", "writer", "--config", str(path)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "writer.log", "wb"),  # noqa: SIM115
        )  # fmt: skip
        try:

            def rows() -> int:
                return int(control_stats(cfg.writer.control, timeout_s=2.0).get("rows", 0))

            def buckets() -> dict[float, float]:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                    return _store_buckets(page.read().decode())

            # Ready once the warm-up record is stored; what came before (start-up) is taken away.
            assert await asyncio.to_thread(wait_until, lambda: rows() >= 1, 60), "the writer stored nothing"
            port = reported_port(cfg, "writer")
            before = buckets()
            await publish_live(tmp, rate, seconds)
            want = 1 + int(rate * seconds * 0.95)
            assert await asyncio.to_thread(wait_until, lambda: rows() >= want, 60), rows()
            after = buckets()
            return {le: after[le] - before.get(le, 0.0) for le in after}, rows() - 1
        finally:
            writer.terminate()
            writer.wait(30)


def bucket_pct(buckets: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q``."""
    total = buckets.get(float("inf"), 0.0)
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return float("inf")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="messages per throughput phase")
    ap.add_argument("--rounds", type=int, default=3, help="raw and bridge phases, alternating")
    ap.add_argument("--rate", type=float, default=10_000.0, help="latency phase: msgs/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency phase: duration")
    args = ap.parse_args()
    rounds: list[tuple[float, float, float, float]] = []  # (raw async, inbox, joined, bridge)
    with tempfile.TemporaryDirectory(prefix="kxbench-js-") as d:
        tmp = Path(d)
        server = NatsServer(tmp / "nats")
        url = server.start()
        try:
            recs = records(args.records, "raw", time.time_ns())
            # Alternating rounds: the machine's load moves (other processes), and a ratio of
            # phases run minutes apart would measure that; each round's ratio is of neighbours.
            for r in range(args.rounds):
                raw_async = await raw_publish_async(url, recs)
                raw_inbox = await raw_wildcard_inbox(url, recs)
                joined = await raw_joined(url, recs)
                await drop_streams(url)
                bridge = await bridge_throughput(url, tmp / f"bridge-{r}", args.records)
                rounds.append((raw_async, raw_inbox, joined, bridge))
                best = max(raw_async, raw_inbox, joined)
                print(f"round {r + 1}: raw publish_async {raw_async:,.0f}, inbox {raw_inbox:,.0f}, "
                      f"joined {joined:,.0f}; bridge {bridge:,.0f} msgs/s: "
                      f"ratio {bridge / best:.2f}")  # fmt: skip
            lat_core = await latency(url, tmp / "latency-core", args.rate, args.seconds, ordered=False)
            lat = await latency(url, tmp / "latency", args.rate, args.seconds, ordered=True)
            stored, n_rows = await writer_latency(url, tmp / "latency-writer", args.rate, args.seconds)
        finally:
            server.stop()
    raw_async = statistics.median(r[0] for r in rounds)
    raw_inbox = statistics.median(r[1] for r in rounds)
    joined = statistics.median(r[2] for r in rounds)
    bridge = statistics.median(r[3] for r in rounds)
    ratios = [r[3] / max(r[:3]) for r in rounds]
    ratio = statistics.median(ratios)
    print(f"messages: {args.records:,} single-delta records ({len(recs[0][1])} B payloads) per phase, "
          f"{args.rounds} rounds; medians:")  # fmt: skip
    print(f"raw nats-py js.publish_async (async acks, {INFLIGHT:,} pending): {raw_async:,.0f} msgs/s")
    print(f"raw nats-py publish + wildcard reply inbox ({INFLIGHT:,} in flight): {raw_inbox:,.0f} msgs/s")
    print(f"raw joined HPUB writes, the bridge's technique ({INFLIGHT:,} in flight): {joined:,.0f} msgs/s")
    print(f"bridge (journal -> kxfeed worker jetstream -> stored): {bridge:,.0f} msgs/s")
    print(f"  target >= {TARGET_MSGS_S:,} msgs/s: {'MET' if bridge >= TARGET_MSGS_S else 'NOT MET'}")
    verdict = "MET" if ratio >= TARGET_RATIO else "NOT MET"
    print(f"  ratio to the best raw of its round: median {ratio:.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f} (target >= {TARGET_RATIO:.2f}: {verdict})")  # fmt: skip
    for what, samples in (
        ("a plain NATS subscriber of the subjects", lat_core),
        ("an ordered JetStream consumer (delivered once stored)", lat),
    ):
        if not samples:
            print(f"latency to {what}: no sample (the reader got nothing)")
            return 1
        print(
            f"latency journal append -> bridge -> {what}, {args.rate:,.0f} msgs/s for {args.seconds:.0f} s "
            f"({len(samples):,} samples): p50 {pct(samples, 0.5):.1f} ms, p99 {pct(samples, 0.99):.1f} ms, "
            f"max {max(samples):.1f} ms, mean {statistics.fmean(samples):.1f} ms"
        )
    batches = stored.get(float("inf"), 0.0)
    print(
        f"latency journal append -> bridge -> a writer on JetStream (SQLite) -> committed, "
        f"{args.rate:,.0f} msgs/s for {args.seconds:.0f} s ({n_rows:,} rows in {batches:,.0f} batches; "
        f"the writer's histogram of each batch's oldest message, [writer] batch_ms = "
        f"{DEFAULT_BATCH_MS} ms): p50 <= {bucket_pct(stored, 0.5) * 1000:,.0f} ms, "
        f"p99 <= {bucket_pct(stored, 0.99) * 1000:,.0f} ms"
    )
    return 0


if __name__ == "__main__":
    import uvloop

    # The loop the workers run on (shared.actor): the raw figures get the same one.
    sys.exit(uvloop.run(main()))
