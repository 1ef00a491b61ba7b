"""The writer fed by NATS JetStream (``[writer] source = "jetstream"``), as real processes: a
journaling publisher, the ``jetstream`` bridge from its journal into a private nats-server, and
``kxfeed worker writer`` on a durable pull consumer, SIGKILLed mid-stream and started again. The
database (SQLite and PostgreSQL) ends up holding every journaled message of a mirrored kind exactly
once; a poison message in the stream is counted, terminated, and blocks nothing behind it; every
delivery is acked once its rows are committed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from services.jetstream.streams import stream_config
from services.writer.rows import MAPPERS
from shared import jetstream as js
from shared import journal
from shared.bus import stamp
from shared.config import EX_CONFIG, Config
from shared.jetstream_config import DEFAULT_STREAMS
from shared.messages import BATCH_DECODER, Message, Trade
from shared.store import deltaread
from shared.store.engine import make_engine
from tests.integration.test_jetstream_rig import QUICK, NatsServer, mirrored_kinds, spawn_publisher
from tests.support import control
from tests.support.config import make_config, write_config
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.procs import spawn, stop, wait_until
from tests.support.synth import expected_tables, read_tables

pytestmark = pytest.mark.xdist_group(name="jetstream")

DURABLE = "kx-test-writer"


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for cfg in fresh_db(request, tmp_path):
        yield {"url": cfg.url, "schema": cfg.schema} if cfg.schema else {"url": cfg.url}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def setup_config(tmp: Path, url: str | list[str], db: dict[str, Any], **writer: Any) -> tuple[Config, Path]:
    """The writer's config (``url``: a NATS server, or a cluster's servers)."""
    cfg = make_config(
        tmp,
        db=db,
        jetstream={
            "enabled": True,
            "servers": [url] if isinstance(url, str) else url,
            **QUICK,
        },
        writer={
            "source": "jetstream",
            "jetstream_durable": DURABLE,
            "batch_rows": 400,
            "batch_ms": 50,
            "retry_initial_s": 0.1,
            "retry_max_s": 0.5,
            **writer,
        },
    )
    return cfg, write_config(cfg, tmp / "kx.toml")


def writer_stats(cfg: Config) -> dict[str, Any]:
    return control.stats(cfg.writer.control, timeout_s=2.0)


def journaled(journal_dir: Path) -> list[Message]:
    """Every journaled message the bridge mirrors and the writer stores, in journal order."""
    kinds = mirrored_kinds()
    out: list[Message] = []
    for pub_dir in sorted(p for p in journal_dir.iterdir() if p.is_dir()):
        for rec in journal.read(pub_dir):
            out.extend(m for m in BATCH_DECODER.decode(rec.payload) if m.kind in kinds and type(m) in MAPPERS)
    return out


def read_db(cfg: Config, tables: list[str]) -> tuple[dict[str, set[Any]], int]:
    """The tables as sets, and how many delta rows the store holds (a list: a twice-stored
    delta would count twice)."""

    async def go() -> tuple[dict[str, set[Any]], int]:
        engine = make_engine(cfg.db)
        try:
            got = await read_tables(engine, tables)
            async with engine.connect() as conn:
                n = 0
                async for part in deltaread.deltas(conn, deltaread.DeltaFilter()):
                    n += len(part)
            return got, n
        finally:
            await engine.dispose()

    return asyncio.run(go())


def offsets(cfg: Config) -> dict[tuple[str, int, str], int]:
    try:
        rows = read_db(cfg, ["stream_offsets"])[0]["stream_offsets"]
    except Exception:  # the table is not there before the writer's first start
        return {}
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def publish_poison(url: str) -> None:
    async def go() -> None:
        nc = await nats.connect(url)
        try:
            ack = await nc.jetstream().publish(
                "kxfeed.trade.POISON.POISON-1",
                b"\xc1 not msgpack",
                headers={"Nats-Msg-Id": "poison:1:trade:1", "Kx-Kind": "trade"},
            )
            assert ack.stream == "KXFEED_EVENTS"
        finally:
            await nc.close()

    asyncio.run(go())


def consumer_backlog(url: str) -> dict[str, tuple[int, int]]:
    """Per stream: (messages not yet delivered, delivered and not acked) of the writer's consumer."""

    async def go() -> dict[str, tuple[int, int]]:
        nc = await nats.connect(url)
        try:
            out = {}
            for name in ("KXFEED_BOOK", "KXFEED_EVENTS"):
                info = await nc.jsm().consumer_info(name, DURABLE)
                out[name] = (info.num_pending or 0, info.num_ack_pending or 0)
            return out
        finally:
            await nc.close()

    return asyncio.run(go())


def start_writer(path: Path) -> subprocess.Popen[bytes]:
    return spawn("worker", "writer", "--config", str(path))


def test_writer_on_jetstream_stores_everything_once_through_a_kill_and_a_poison_message(
    tmp_path: Path, nats_server: NatsServer, db: dict[str, Any]
) -> None:
    cfg, path = setup_config(tmp_path, nats_server.url, db)
    publisher = spawn_publisher(path, "pubA", 8000, rate=2_500.0)
    bridge = spawn("worker", "jetstream", "--config", str(path))
    writer = start_writer(path)
    try:
        # Killed once batches of both streams are committed (and acked) and more are on the way.
        def some_committed() -> bool:
            kinds = {k[2] for k in offsets(cfg)}
            return {"delta", "trade"} <= kinds and writer_stats(cfg).get("js_acked", 0) > 1000

        assert wait_until(some_committed, 90), (writer_stats(cfg), offsets(cfg))
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        publish_poison(nats_server.url)
        writer = start_writer(path)

        # NATS freezes (pings unanswered: the writer drops the connection), then thaws.
        assert wait_until(lambda: writer_stats(cfg).get("js_connected") == 1, 60), writer_stats(cfg)
        nats_server.pause()
        try:
            assert wait_until(lambda: writer_stats(cfg).get("js_connected") == 0, 60), writer_stats(cfg)
        finally:
            nats_server.resume()
        assert wait_until(lambda: writer_stats(cfg).get("js_connected") == 1, 60), writer_stats(cfg)

        assert publisher.wait(120) == 0
        msgs = journaled(tmp_path / "journal")
        want_pos: dict[tuple[str, int, str], int] = {}
        for m in msgs:
            key = (m.pub, m.epoch, m.kind)
            want_pos[key] = max(want_pos.get(key, 0), m.seq)
        assert wait_until(lambda: offsets(cfg) == want_pos, 120), (offsets(cfg), want_pos)

        want = expected_tables(msgs)
        got, delta_rows = read_db(cfg, list(want))
        for table, rows in want.items():
            missing, extra = rows - got[table], got[table] - rows
            assert not missing and not extra, f"{table}: {len(missing)} missing, {len(extra)} extra"
        assert delta_rows == len(want["book_deltas"])

        # Every delivery acked after its commit, the poison message terminated: nothing pending.
        assert wait_until(lambda: all(v == (0, 0) for v in consumer_backlog(nats_server.url).values()), 60), (
            consumer_backlog(nats_server.url)
        )
        s = writer_stats(cfg)
        assert s["js_poison"] == 1, s
        assert s["lost"] == 0, s
        assert s["js_errors"] >= 1, s  # the disconnect, counted
        assert stop(writer) == 0
    finally:
        for p in (publisher, bridge, writer):
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_source_jetstream_without_servers_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, writer={"source": "jetstream"}, jetstream={"servers": []})
    path = write_config(cfg, tmp_path / "kx.toml")
    proc = spawn("worker", "writer", "--config", str(path), stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EX_CONFIG
    assert b"[jetstream] servers" in err


def trade_frames(pub: str, epoch: int, n: int, per: int) -> list[list[Message]]:
    msgs: list[Message] = [
        Trade(
            trade_id=f"{pub}-{seq}", ticker="KXT-26JAN01-A", yes_price=4000, no_price=6000, count=100,
            taker_side="yes", ts_exch=1_700_000_000_000 + seq, ts_recv=1_700_000_000_000_000_000 + seq,
        )
        for seq in range(1, n + 1)
    ]  # fmt: skip
    stamp(msgs, pub, epoch)
    return [msgs[i : i + per] for i in range(0, n, per)]


def publish_frames(url: str, frames: list[list[Message]]) -> None:
    """Each frame as the bridge publishes a journal record (streams created as it creates them)."""

    async def go() -> None:
        nc = await nats.connect(url)
        try:
            jsm = nc.jsm()
            for s in DEFAULT_STREAMS:
                await jsm.add_stream(stream_config("kxfeed", s))
            for f in frames:
                last = f[-1]
                await nc.jetstream().publish(
                    js.subject("kxfeed", last.topic()),
                    msgspec.msgpack.encode(f),
                    headers={js.MSG_ID_HEADER: js.msg_id(last.pub, last.epoch, last.kind, last.seq),
                             js.KIND_HEADER: last.kind},
                )  # fmt: skip
        finally:
            await nc.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    "settle",
    [
        # The hole is settled after its grace (long beside the gap between two fetches, which
        # the out-of-order pair must not outwait twice)...
        {"jetstream_hole_grace_s": 2.0},
        # ... or at once when frames held behind it fill the in-flight bound (the grace is long).
        {"jetstream_hole_grace_s": 600.0, "jetstream_max_inflight": 3},
    ],
    ids=["grace", "bound"],
)
def test_out_of_order_frames_are_stored_and_a_hole_the_stream_lacks_is_counted_lost_after_an_outage(
    tmp_path: Path, nats_server: NatsServer, db: dict[str, Any], settle: dict[str, Any]
) -> None:
    cfg, path = setup_config(tmp_path, nats_server.url, db, **settle)
    frames = trade_frames("pubX", 5, 45, 3)  # seqs 1-3, 4-6, ... 43-45
    # 13-15 lands before 10-12 (a re-sent record does), and 22-24 is not in the stream at all.
    order = [frames[0], frames[1], frames[2], frames[4], frames[3], frames[5], frames[6], *frames[8:]]
    publish_frames(nats_server.url, order)
    # The writer starts while NATS answers nothing: it retries (counted), and neither crashes
    # nor stops until NATS is back.
    nats_server.pause()
    writer = start_writer(path)
    try:
        try:
            assert wait_until(lambda: writer_stats(cfg).get("js_errors", 0) >= 1, 60), writer_stats(cfg)
            assert writer.poll() is None
        finally:
            nats_server.resume()
        key = ("pubX", 5, "trade")
        assert wait_until(lambda: offsets(cfg).get(key) == 45, 120), (offsets(cfg), writer_stats(cfg))
        stored = [m for f in order for m in f]
        got, _ = read_db(cfg, ["trades"])
        assert got["trades"] == expected_tables(stored)["trades"]
        assert wait_until(lambda: writer_stats(cfg).get("lost") == 3, 30), writer_stats(cfg)
        s = writer_stats(cfg)
        # Waited for, then one reset (re-delivery in stream order from the ack floor), then given up.
        assert s["js_resets"] >= 1 and s["js_holes_given_up"] == 1, s
        assert wait_until(lambda: all(v == (0, 0) for v in consumer_backlog(nats_server.url).values()), 60), (
            consumer_backlog(nats_server.url)
        )
        assert stop(writer) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
