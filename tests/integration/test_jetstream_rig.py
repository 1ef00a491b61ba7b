"""The JetStream tests' rig: a private nats-server per test module, a real journaling publisher, and
reading a stream back. No test here: the modules ``test_jetstream_*.py`` use it.

The server listens on a port it picks itself (``-p -1``) and writes it to a ports file
(``--ports_file_dir``): no port is chosen by the test and bound later.

Run as a script it is the publisher: ``python -m tests.integration.test_jetstream_rig publish
CONFIG PUB_ID COUNT [RATE]`` journals and publishes COUNT messages of every stored kind through a
real :class:`shared.bus.Publisher` (the durable ones land in ``<journal.dir>/<PUB_ID>/``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.messages import BATCH_DECODER, KINDS
from tests.support.procs import ROOT, wait_until

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
#: [jetstream] timings for tests: a dead server noticed, and every failure retried, within a
#: second or two (the defaults suit a production link, not a test's kill and restart).
QUICK: dict[str, Any] = {
    "ack_timeout_s": 2.0,
    "ping_interval_s": 0.5,
    "max_outstanding_pings": 2,
    "cursor_interval_s": 0.2,
    "retry_initial_s": 0.1,
    "retry_max_s": 0.5,
}


def require_nats() -> None:
    if not Path(NATS_SERVER).exists():
        pytest.fail("nats-server is not installed (Debian package nats-server; .ci/run installs it)")


class NatsServer:
    """One nats-server with JetStream, its store in ``root/store``; restartable on the same store."""

    def __init__(
        self,
        root: Path,
        config: str = "",
        *,
        wrap: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int = -1,
    ) -> None:
        """``wrap``: a command prefix (``ip netns exec NS``: on another host); ``host``/``port``:
        where it listens (port -1: one it picks and reports)."""
        self.root = root
        self.wrap = list(wrap)
        self.host, self.port = host, port
        #: nats-server config file text (e.g. ``max_payload: 2048``), for what has no flag.
        self.config = config
        self.store = root / "store"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self) -> str:
        require_nats()
        self.starts += 1
        portsdir = self.root / f"ports-{self.starts}"
        portsdir.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"nats-{self.starts}.log", "wb")  # noqa: SIM115 - the process keeps it
        extra: list[str] = []
        if self.config:
            conf = self.root / "nats.conf"
            conf.write_text(self.config)
            extra = ["-c", str(conf)]
        # A config with its own JetStream store_dir (a shipped node config) must not get the
        # flags too: nats-server refuses a store set twice.
        store = [] if "store_dir" in self.config else ["-js", "-sd", str(self.store)]
        self.proc = subprocess.Popen(
            [*self.wrap, NATS_SERVER, *extra, *store, "-a", self.host,
             "-p", str(self.port), "--ports_file_dir", str(portsdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        found: list[str] = []

        def reported() -> bool:
            for f in portsdir.glob("*.ports"):
                try:
                    found[:] = json.loads(f.read_text())["nats"]
                except (ValueError, KeyError):
                    return False
                return bool(found)
            return False

        assert wait_until(reported, 30), (self.root / f"nats-{self.starts}.log").read_text()
        self.url = found[0]
        return self.url

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def nats_server(root: Path) -> Iterator[NatsServer]:
    server = NatsServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def publisher_cmd(config: Path, pub_id: str, count: int, rate: float = 0.0) -> list[str]:
    return [sys.executable, "-m", "tests.integration.test_jetstream_rig", "publish",
            str(config), pub_id, str(count), str(rate)]  # fmt: skip


def spawn_publisher(config: Path, pub_id: str, count: int, rate: float = 0.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(publisher_cmd(config, pub_id, count, rate), cwd=ROOT)


class Stored(msgspec.Struct):
    stream: str
    stream_seq: int
    subject: str
    msg_id: str
    kind_header: str
    ids: list[tuple[str, int, str, int]]  # (pub, epoch, kind, seq) of each message in the payload


async def read_stream(url: str, prefix: str = "kxfeed") -> list[Stored]:
    """Every message of every stream holding ``prefix`` subjects, with its messages decoded."""
    import nats

    nc = await nats.connect(url)
    try:
        jsm = nc.jsm()
        out: list[Stored] = []
        for info in await jsm.streams_info():
            name = info.config.name or ""
            if not all(subj.startswith(prefix + ".") for subj in info.config.subjects or []):
                continue
            last = info.state.last_seq
            first = info.state.first_seq
            for seq in range(first, last + 1):
                raw = await jsm.get_msg(name, seq)
                assert raw.subject is not None and raw.subject.startswith(prefix + ".")
                msgs = BATCH_DECODER.decode(raw.data or b"")
                headers = raw.headers or {}
                out.append(
                    Stored(
                        name, seq, raw.subject, headers.get("Nats-Msg-Id", ""), headers.get("Kx-Kind", ""),
                        [(m.pub, m.epoch, m.kind, m.seq) for m in msgs],
                    )
                )  # fmt: skip
        return out
    finally:
        await nc.close()


def read_stream_sync(url: str) -> list[Stored]:
    return asyncio.run(read_stream(url))


def stream_counts(url: str) -> dict[str, int]:
    async def go() -> dict[str, int]:
        import nats

        nc = await nats.connect(url)
        try:
            return {i.config.name or "": i.state.messages for i in await nc.jsm().streams_info()}
        finally:
            await nc.close()

    return asyncio.run(go())


def _publish(config_path: str, pub_id: str, count: int, rate: float) -> None:
    import zmq

    from shared.bus import Publisher
    from shared.config import load_config
    from shared.journal import open_journal
    from tests.support import synth

    cfg = load_config(config_path)
    journal = open_journal(cfg, pub_id)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, cfg.bus.xsub, pub_id, journal=journal)
    msgs: list[Any] = synth.mixed(count, seed=3)
    started = time.monotonic()
    i = 0
    step = 7  # frames of several messages and of one: publish_many groups runs of one topic
    while i < len(msgs):
        pub.publish_many(msgs[i : i + step])
        i += step
        if rate > 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    journal.close()
    pub.close(0)
    ctx.destroy(0)


def mirrored_kinds() -> frozenset[str]:
    from shared.jetstream_config import DEFAULT_STREAMS

    return frozenset(k for s in DEFAULT_STREAMS for k in s.kinds)


def journal_ids(journal_dir: Path, kinds: frozenset[str]) -> list[list[tuple[str, int, str, int]]]:
    """Per journal record of ``kinds``: its messages' ids, in journal order."""
    from shared import journal

    out = []
    for pub_dir in sorted(p for p in journal_dir.iterdir() if p.is_dir()):
        for rec in journal.read(pub_dir):
            msgs = BATCH_DECODER.decode(rec.payload)
            if msgs and msgs[0].kind in kinds:
                out.append([(m.pub, m.epoch, m.kind, m.seq) for m in msgs])
    return out


assert "trade" in KINDS  # the synth stream's kinds are bus kinds

if __name__ == "__main__" and sys.argv[1:2] == ["publish"]:
    _publish(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]) if len(sys.argv) > 5 else 0.0)
