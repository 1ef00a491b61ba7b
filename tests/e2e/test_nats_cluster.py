"""The NATS cluster of three that ops/jetstream.md deploys, from the shipped ops/nats/node-N.conf
files as they are (each node on a host of its own: a network namespace whose /etc/hosts names the
other two, joined by veth pairs; only the store directory is the test's), with the kxfeed streams
at replicas = 3. A journaling publisher and the jetstream bridge run on a fourth host, a writer
(``source = "jetstream"``) on a fifth; both know all three nodes. The leader of a stream is
SIGKILLed mid-stream: the other two elect a new one; the bridge and the writer, SIGKILLed and
started again while the node is down, go on; the node comes back on its store and catches up
(every replica current again). At the end every journaled record of a
mirrored kind is in the streams exactly once, and the writer's database holds every one of its
messages exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.jetstream_config import DEFAULT_STREAMS
from tests.integration.test_jetstream_bridge import caught_up
from tests.integration.test_jetstream_bridge import stats as bridge_stats
from tests.integration.test_jetstream_rig import (
    QUICK,
    NatsServer,
    journal_ids,
    mirrored_kinds,
    publisher_cmd,
    read_stream_sync,
)
from tests.integration.test_writer_jetstream import journaled, offsets, read_db, setup_config, writer_stats
from tests.support.config import make_config, write_config
from tests.support.netns import Hosts, hosts
from tests.support.procs import ROOT, wait_until
from tests.support.synth import expected_tables

pytestmark = pytest.mark.slow(waits=True)

NODES = ("nats-1", "nats-2", "nats-3")
LINKS = (
    ("nats-1", "nats-2"), ("nats-2", "nats-3"), ("nats-1", "nats-3"),
    ("nats-1", "collector"), ("nats-2", "collector"), ("nats-3", "collector"),
    ("nats-1", "writer"), ("nats-2", "writer"), ("nats-3", "writer"),
)  # fmt: skip
DOMAIN = "kxfeed.internal"  # what the shipped configs' routes name
SHIPPED_STORE = "store_dir: /var/lib/nats-server"


def shipped(i: int, store: Path) -> str:
    """ops/nats/node-<i>.conf as shipped, but for its store directory (the test's own)."""
    text = (ROOT / "ops" / "nats" / f"node-{i}.conf").read_text()
    assert text.count(SHIPPED_STORE) == 1, "the shipped config names its store once"
    return text.replace(SHIPPED_STORE, f"store_dir: {store}")


def client_url(net: Hosts, node: str, client: str = "collector") -> str:
    return f"nats://{net.address(node, client)}:4222"


def cluster_state(url: str) -> dict[str, Any]:
    """Per stream: its leader, and how many replicas it has that are current."""

    async def go() -> dict[str, Any]:
        import nats

        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            out: dict[str, Any] = {}
            for info in await nc.jsm().streams_info():
                c = info.cluster
                peers = (c.replicas or []) if c else []
                out[info.config.name or ""] = {
                    "leader": c.leader if c else None,
                    "current": sum(1 for p in peers if p.current),
                    "replicas": info.config.num_replicas,
                    "messages": info.state.messages,
                }
            return out
        finally:
            await nc.close()

    return asyncio.run(go())


def test_the_shipped_three_node_cluster_survives_losing_a_stream_leader(tmp_path: Path) -> None:
    with hosts((*NODES, "collector", "writer"), LINKS) as net:
        for node in NODES:
            net.resolve(node, {f"{o}.{DOMAIN}": net.address(o, node) for o in NODES if o != node})
        servers = {
            node: NatsServer(
                tmp_path / node,
                shipped(i, tmp_path / node / "store"),
                wrap=net.command(node, []),
                host="0.0.0.0",
                port=4222,
            )
            for i, node in enumerate(NODES, 1)
        }
        urls = [client_url(net, n) for n in NODES]
        streams = [
            {"name": s.name, "kinds": list(s.kinds), "max_age_s": s.max_age_s, "replicas": 3}
            for s in DEFAULT_STREAMS
        ]
        cfg = make_config(
            tmp_path / "collector",
            jetstream={
                "enabled": True,
                "servers": urls,
                "streams": streams,
                **QUICK,
            },
        )
        for d in ("collector", "writer"):  # a long tmp path puts the ipc dir elsewhere
            (tmp_path / d).mkdir(exist_ok=True)
        path = write_config(cfg, tmp_path / "collector" / "kx.toml")
        wcfg, wpath = setup_config(
            tmp_path / "writer",
            [client_url(net, n, "writer") for n in NODES],
            {"url": f"sqlite+aiosqlite:///{tmp_path / 'writer' / 'kx.db'}"},
        )
        try:
            for s in servers.values():
                s.start()

            def state_from(url: str) -> dict[str, Any]:
                try:
                    return net.call("collector", lambda: cluster_state(url))
                except Exception:  # a node not up, or no meta leader yet
                    return {}

            bridge_log = tmp_path / "js.log"
            bridge = net.kxfeed("collector", "worker", "jetstream", "--config", str(path), log=bridge_log)
            writer_log = tmp_path / "writer.log"
            writer = net.kxfeed("writer", "worker", "writer", "--config", str(wpath), log=writer_log)

            # The cluster is up once the bridge has its streams, each with three replicas.
            def streams_made() -> bool:
                got = state_from(urls[1])
                return set(got) == {s.name for s in DEFAULT_STREAMS} and all(
                    v["replicas"] == 3 and v["leader"] in NODES for v in got.values()
                )

            assert wait_until(streams_made, 90), (state_from(urls[1]), bridge_log.read_text()[-3000:])
            publisher = net.spawn(
                "collector", publisher_cmd(path, "pubC", 12_000, rate=1_000.0), log=tmp_path / "pub.log"
            )

            def stored(url: str = urls[1]) -> int:
                return sum(v["messages"] for v in state_from(url).values())

            assert wait_until(lambda: stored() > 300, 60), (bridge_stats(cfg), state_from(urls[1]))
            # The leader of the events stream dies while the publisher journals on.
            leader = state_from(urls[1])["KXFEED_EVENTS"]["leader"]
            servers[leader].kill()
            assert publisher.poll() is None, "killed mid-stream"
            alive = next(client_url(net, n) for n in NODES if n != leader)

            def new_leader() -> bool:
                s = state_from(alive).get("KXFEED_EVENTS", {})
                return s.get("leader") not in (None, leader)

            assert wait_until(new_leader, 60), state_from(alive)
            # The collector and the writer restart while the node is down (a host rebooted in the
            # meantime): the bridge re-asserts its streams, the writer re-creates its consumer.
            for p in (bridge, writer):
                p.kill()
                p.wait(10)
            bridge = net.kxfeed("collector", "worker", "jetstream", "--config", str(path), log=bridge_log)
            writer = net.kxfeed("writer", "worker", "writer", "--config", str(wpath), log=writer_log)
            # Two of three store everything: the bridge catches up before the third is back.
            assert publisher.wait(120) == 0
            expected = journal_ids(tmp_path / "collector" / "journal", mirrored_kinds())
            # (A bridge just started reports no lag before it has read the journals: the streams'
            # count is what says it is done.)
            done = wait_until(lambda: stored(alive) == len(expected) and caught_up(bridge_stats(cfg)), 120)
            assert done, (stored(alive), len(expected), bridge_stats(cfg), bridge_log.read_text()[-3000:])
            # The killed node comes back on its store and catches up.
            servers[leader].start()
            back = client_url(net, leader)

            def all_current() -> bool:
                s = state_from(back)
                return bool(s) and all(v["current"] == 2 for v in s.values())  # the 2 followers

            assert wait_until(all_current, 60), state_from(back)
            assert bridge.poll() is None, bridge_log.read_text()[-3000:]
            # The writer on its host stored every message once, through the leader's death.
            msgs = journaled(tmp_path / "collector" / "journal")
            want_rows = expected_tables(msgs)
            want_pos: dict[tuple[str, int, str], int] = {}
            for m in msgs:
                key = (m.pub, m.epoch, m.kind)
                want_pos[key] = max(want_pos.get(key, 0), m.seq)
            assert wait_until(lambda: offsets(wcfg) == want_pos, 120), (writer_stats(wcfg), writer_log)
            got_rows, delta_rows = read_db(wcfg, list(want_rows))
            wstats = writer_stats(wcfg)
            assert writer.poll() is None, writer_log.read_text()[-3000:]
            got_stored = net.call("collector", lambda: read_stream_sync(back))
        finally:
            for s in servers.values():
                s.stop()
    got = Counter(tuple(m.ids) for m in got_stored)
    want = Counter(tuple(ids) for ids in expected)
    assert len(got_stored) == len(expected), "one JetStream message per journal record"
    assert max(got.values()) == 1, [k for k, n in got.items() if n > 1][:3]
    assert got == want
    for table, rows in want_rows.items():
        missing, extra = rows - got_rows[table], got_rows[table] - rows
        assert not missing and not extra, f"{table}: {len(missing)} missing, {len(extra)} extra"
    assert delta_rows == len(want_rows["book_deltas"]), "no delta stored twice"
    assert wstats["lost"] == 0 and wstats["js_poison"] == 0, wstats
