"""The real writer process: a stream with duplicates stored once; SIGKILL mid-batch and
restart; frames lost on the bus (inside and at the end of a stream) recovered from the
journal; a newer schema refused. Real ZeroMQ sockets, real journals, real databases."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from shared import journal
from shared.bus import Proxy, Publisher
from shared.config import Config
from shared.control import request
from shared.journal import JournalWriter
from shared.messages import BookDelta, Message, Trade
from shared.store.engine import make_engine
from shared.store.migrate import upgrade
from tests.support.config import make_config, reported_port, write_config
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.procs import spawn, wait_until
from tests.support.synth import expected_tables, mixed, read_tables


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The [db] section as a dict (what ``make_config`` takes)."""
    for cfg in fresh_db(request, tmp_path):
        yield {"url": cfg.url, "schema": cfg.schema} if cfg.schema else {"url": cfg.url}


class DropFrames:
    """Wraps a publisher's socket: frames for which ``drop(n)`` is true never leave (they are
    already in the journal), like frames lost between the bus and a slow subscriber."""

    def __init__(self, sock: Any, drop: Callable[[int], bool]) -> None:
        self._sock = sock
        self._drop = drop
        self._dropping = False
        self.sent = 0
        self.dropped = 0

    def _starts_frame(self) -> bool:
        self.sent += 1
        self._dropping = self._drop(self.sent)
        self.dropped += self._dropping
        return self._dropping

    def send(self, data: Any, flags: int = 0, **kw: Any) -> Any:
        # a frame is [topic, payload]: decide on its first part, apply to every part
        if flags & zmq.SNDMORE and not self._dropping:
            self._starts_frame()
        dropping = self._dropping
        if not flags & zmq.SNDMORE:
            self._dropping = False
        return None if dropping else self._sock.send(data, flags, **kw)

    def send_multipart(self, frames: Any, *args: Any, **kw: Any) -> Any:
        return None if self._starts_frame() else self._sock.send_multipart(frames, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Harness:
    """An in-process bus proxy, journaled publishers, and the writer as a real process."""

    def __init__(self, tmp_path: Path, db: dict[str, Any], **writer: Any) -> None:
        self.tmp = tmp_path
        self.cfg: Config = make_config(
            tmp_path,
            db=db,
            writer={
                "batch_ms": 50,
                "cursor_interval_s": 0.5,
                "tail_grace_s": 1.0,
                "retry_max_s": 1.0,
                **writer,
            },
        )
        self.path = write_config(self.cfg, tmp_path / "kxfeed.toml")
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.proxy = Proxy(self.ctx, self.cfg.bus.xsub, self.cfg.bus.xpub, 1_000_000)
        self.proxy.start()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pubs: list[Publisher] = []
        self.journals: list[JournalWriter] = []
        self.logs: list[Path] = []

    def start_writer(self) -> subprocess.Popen[bytes]:
        log = self.tmp / f"writer-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.proc = spawn(
                "worker", "writer", "--config", str(self.path), stdout=fh, stderr=subprocess.STDOUT
            )
        return self.proc

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def publisher(self, pub_id: str, *, journaled: bool = True) -> Publisher:
        jw = JournalWriter(Path(self.cfg.journal.dir) / pub_id) if journaled else None
        if jw is not None:
            self.journals.append(jw)
        pub = Publisher(self.ctx, self.cfg.bus.xsub, pub_id, journal=jw)
        self.pubs.append(pub)
        return pub

    def metric(self, name: str, **labels: str) -> float:
        """A sample from the writer's /metrics (0 when absent)."""
        url = f"http://127.0.0.1:{reported_port(self.cfg, 'writer')}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = request(self.cfg.writer.control, "stats", timeout_s=5.0)
        return result

    def ready(self) -> bool:
        try:
            return bool(self.stats().get("ready"))
        except Exception:
            return False

    def offsets(self) -> dict[tuple[str, int, str], int]:
        got = self.read(["stream_offsets"])["stream_offsets"]
        return {(r[0], r[1], r[2]): r[3] for r in got}

    def read(self, tables: list[str] | None = None) -> dict[str, set[tuple[Any, ...]]]:
        async def go() -> dict[str, set[tuple[Any, ...]]]:
            engine = make_engine(self.cfg.db)
            try:
                return await read_tables(engine, tables)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def stored_all(self, pub: Publisher, kinds: set[str]) -> bool:
        try:
            offsets = self.offsets()
        except Exception:
            return False
        return all(offsets.get((pub.pub_id, pub.epoch, k)) == pub.next_seq(k) - 1 for k in kinds)

    def wait_stored(self, pub: Publisher, kinds: set[str], timeout: float = 30.0) -> None:
        assert wait_until(lambda: self.stored_all(pub, kinds), timeout, 0.2), self.log_text()[-4000:]

    def stop_writer(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for pub in self.pubs:
            pub.close(0)
        for jw in self.journals:
            jw.close()
        self.proxy.stop()
        self.ctx.destroy(0)


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(db: dict[str, Any], **writer: Any) -> Harness:
        h = Harness(tmp_path, db, **writer)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def assert_stored_exactly(h: Harness, msgs: list[Message]) -> None:
    want = expected_tables(msgs)
    got = h.read(list(want))
    # the writer stores its own lifecycle events too; compare what the test published
    got["worker_events"] = {r for r in got["worker_events"] if r[0] == "synthetic"}
    for table, rows in want.items():
        missing, extra = rows - got[table], got[table] - rows
        assert not missing and not extra, (
            f"{table}: {len(missing)} missing, {len(extra)} extra\n" + h.log_text()[-3000:]
        )


def kinds_of(msgs: list[Message]) -> set[str]:
    return {m.kind for m in msgs}


def publish(pub: Publisher, msgs: list[Message], chunk: int = 50, pause: float = 0.0) -> None:
    for i in range(0, len(msgs), chunk):
        pub.publish_many(msgs[i : i + chunk])
        if pause:
            time.sleep(pause)


def test_stream_with_duplicates_is_stored_once(
    db: dict[str, Any], harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(db)
    h.start_writer()
    pub = h.publisher("synth")
    assert pub.wait_for_subscriber_sync("delta.", 30), h.log_text()
    msgs = mixed(6000, seed=5, duplicates=0.1)
    publish(pub, msgs)
    # A second producer re-publishes copies of deltas and trades it also saw (new bus
    # messages, same natural keys): a reconnecting connector does this.
    copies: list[Message] = []
    for m in msgs[::3]:
        if isinstance(m, BookDelta | Trade):
            copies.append(msgspec.structs.replace(m))
    dup = h.publisher("synth-dup")
    publish(dup, copies)
    # And the bus re-delivers frames it already delivered (same publisher, epoch, seq).
    raw = h.ctx.socket(zmq.XPUB)
    raw.connect(h.cfg.bus.xsub)
    time.sleep(0.3)
    records = list(journal.read(Path(h.cfg.journal.dir) / "synth"))
    for rec in records[: len(records) // 2]:
        raw.send_multipart([b"delta.x", rec.payload])
    h.wait_stored(pub, kinds_of(msgs))
    h.wait_stored(dup, kinds_of(copies))
    assert_stored_exactly(h, msgs)
    stats = h.stats()
    assert stats["lost"] == 0
    raw.close(0)
    assert h.stop_writer() == 0


def test_sigkill_mid_batch_then_restart_stores_everything_once(
    db: dict[str, Any], harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(db, batch_rows=500)
    h.start_writer()
    pub = h.publisher("synth")
    assert pub.wait_for_subscriber_sync("delta.", 30), h.log_text()
    msgs = mixed(40_000, seed=9, duplicates=0.05)
    done = threading.Event()

    def produce() -> None:  # ~20k messages/s for ~2 s
        publish(pub, msgs, chunk=100, pause=0.005)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    kills = 0
    try:
        for _ in range(2):
            # wait until rows are being written, then kill without warning
            assert wait_until(lambda: any(k[0] == "synth" for k in h.offsets()) or done.is_set(), 20, 0.05)
            time.sleep(random.uniform(0.05, 0.3))
            if done.is_set():
                break
            assert h.proc is not None
            os.kill(h.proc.pid, signal.SIGKILL)
            h.proc.wait(5)
            kills += 1
            h.start_writer()
            assert wait_until(h.ready, 30, 0.1), h.log_text()
    finally:
        producer.join(30)
    assert kills >= 1, "the producer finished before the writer could be killed"
    h.wait_stored(pub, kinds_of(msgs), timeout=60)
    assert_stored_exactly(h, msgs)
    # the restarted writer found what the killed one had not committed in the journal
    restarted = "\n".join(p.read_text() for p in h.logs[1:])
    replayed = [int(x) for x in re.findall(r"journal replay done reason=start .*accepted=(\d+)", restarted)]
    assert replayed and max(replayed) > 0, restarted[-2000:]
    assert h.stats()["lost"] == 0
    assert h.stop_writer() == 0


def test_frames_lost_on_the_bus_come_back_from_the_journal(
    tmp_path: Path, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory({"url": f"sqlite+aiosqlite:///{tmp_path / 'kx.db'}"})
    h.start_writer()
    pub = h.publisher("synth")
    assert pub.wait_for_subscriber_sync("delta.", 30), h.log_text()
    msgs = mixed(5000, seed=13, duplicates=0.0)
    rng = random.Random(1)
    total_frames = len(msgs)  # an upper bound: one frame per message at most
    lossy = DropFrames(pub._sock, lambda n: rng.random() < 0.05)
    pub._sock = lossy  # type: ignore[assignment]
    publish(pub, msgs, chunk=20)
    h.wait_stored(pub, kinds_of(msgs), timeout=30)
    # then the very last frames never arrive: nothing later reveals the hole on the bus
    lossy._drop = lambda n: True
    tail = mixed(40, seed=14, duplicates=0.0)
    publish(pub, tail, chunk=5)
    assert lossy.dropped > 10 and lossy.sent < total_frames + 40
    h.wait_stored(pub, kinds_of(msgs + tail), timeout=30)
    assert_stored_exactly(h, msgs + tail)
    assert h.stats()["lost"] == 0
    # a later frame revealed the hole: the subscriber reports a drop (or the core a hole)
    revealed = h.metric("kxfeed_writer_replays_total", reason="drop")
    assert revealed + h.metric("kxfeed_writer_replays_total", reason="hole") >= 1
    assert h.metric("kxfeed_writer_replays_total", reason="tail") >= 1  # only the journal knew
    assert h.metric("kxfeed_writer_messages_total", outcome="deferred") > 0
    assert h.stop_writer() == 0
    cursor = journal.read_cursor(Path(h.cfg.journal.dir) / "synth", "writer")
    assert cursor is not None and cursor.offset > 0


def test_writer_refuses_a_newer_schema(tmp_path: Path, harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"url": f"sqlite+aiosqlite:///{tmp_path / 'kx.db'}"})

    async def stamp_future() -> None:
        engine = make_engine(h.cfg.db)
        await upgrade(engine, h.cfg.db)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        await engine.dispose()

    asyncio.run(stamp_future())
    proc = h.start_writer()
    assert proc.wait(30) == 1
    assert "newer than this kxfeed knows" in h.log_text()
