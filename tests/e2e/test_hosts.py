"""Across real hosts: five network namespaces on this machine, joined only by veth pairs.

    exchange ── collector ── nats ── writer
                              └───── tap

- exchange: the simulator (Kalshi's stand-in, holding the ground truth), listening on its veth.
- collector: ``kxfeed up`` with bus, orderbook, gapfill, poller, connector and the jetstream
  bridge; its bus is its own (ipc:// in its directory), it reaches the exchange and NATS over
  its veths only.
- nats: ``nats-server -js`` with a store dir, listening on its veth addresses.
- writer: ``kxfeed worker writer`` with ``[writer] source = "jetstream"``, into PostgreSQL over
  the unix socket (the root namespace's 127.0.0.1 is not reachable from there), its own schema.
- tap: ``kxfeed tap --jetstream 'kxfeed.>'`` prints the live feed.

The collector host is crashed (every process on it SIGKILLed at once) and brought back; later
the NATS server is SIGKILLed, the collector journals on without it, and it comes back on the
same store. Then the database is proven against the simulator's truth (tests/e2e/proof.py):
nothing lost beyond what the proof excuses for a killed connector (each row within its bound),
nothing duplicated, and every live book equal to the true book.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.control import ControlError
from tests.e2e.harness import System, drop_pg_schema, sent_frames
from tests.e2e.proof import settle
from tests.integration.test_jetstream_bridge import stats as bridge_stats
from tests.integration.test_jetstream_rig import QUICK, NatsServer
from tests.integration.test_writer_jetstream import setup_config, writer_stats
from tests.support.config import make_config, reported_port, write_config
from tests.support.netns import Hosts, hosts
from tests.support.procs import kxfeed_cmd, wait_until

pytestmark = [pytest.mark.slow(waits=True), pytest.mark.postgres]

#: PostgreSQL through its unix socket: a file, so reachable from every namespace.
PG_SOCKET_DIR = Path("/var/run/postgresql")
PG_SOCKET_URL = f"postgresql+asyncpg://postgres@/test?host={PG_SOCKET_DIR}"

HOSTS = ("exchange", "collector", "nats", "writer", "tap")
LINKS = (("exchange", "collector"), ("nats", "collector"), ("nats", "writer"), ("nats", "tap"))
NATS_PORT = 4222  # fixed: the namespace and its addresses are this test's alone
COLLECTOR = ["bus", "orderbook", "gapfill", "poller", "connector", "jetstream"]
#: What the bridge mirrors and the writer stores, as ``kxfeed tap`` names the kinds.
FEED_KINDS = {"snap", "delta", "trade", "ticker", "lifecycle", "evlifecycle", "fee", "gap", "signal"}


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[dict[str, Any]]:
    if not (PG_SOCKET_DIR / ".s.PGSQL.5432").exists():
        pytest.fail(f"PostgreSQL answers on 127.0.0.1:5432 but has no unix socket in {PG_SOCKET_DIR}")
    db = {"url": PG_SOCKET_URL, "schema": f"kxhosts_{uuid.uuid4().hex[:12]}"}
    yield db
    drop_pg_schema(db["url"], db["schema"])


def get_from(net: Hosts, host: str) -> Any:
    """An HTTP GET made from ``host`` (the simulator's REST is reachable only over its veth)."""

    def get(url: str) -> bytes:
        def go() -> bytes:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: bytes = resp.read()
            return body

        result: bytes = net.call(host, go)
        return result

    return get


def nats_url(net: Hosts, client: str) -> str:
    return f"nats://{net.address('nats', client)}:{NATS_PORT}"


def acked(cfg: Any) -> int:
    return int(writer_stats(cfg).get("js_acked", 0))


def test_collector_crash_and_nats_kill_across_hosts_lose_nothing(
    tmp_path: Path, pg_schema: dict[str, Any]
) -> None:
    with hosts(HOSTS, LINKS) as net:
        nats = NatsServer(tmp_path / "nats", wrap=net.command("nats", []), host="0.0.0.0", port=NATS_PORT)
        system = System(
            tmp_path / "collector",
            db=pg_schema,
            wrap=net.command("collector", []),
            http_get=get_from(net, "exchange"),
            sim={"host": net.address("exchange", "collector"), "rate": 100.0, "markets": 12},
            supervisor={"workers": COLLECTOR},
            jetstream={
                "enabled": True,
                "servers": [nats_url(net, "collector")],
                **QUICK,
            },
        )
        (tmp_path / "writer").mkdir()  # a long tmp path puts the ipc dir elsewhere
        wcfg, wpath = setup_config(tmp_path / "writer", nats_url(net, "writer"), pg_schema)
        tap_cfg = make_config(tmp_path / "tap", jetstream={"servers": [nats_url(net, "tap")]})
        tap_path = write_config(tap_cfg, tmp_path / "tap.toml")
        try:
            nats.start()
            net.kxfeed("exchange", "worker", "sim", "--config", str(system.path), log=tmp_path / "sim.log")
            reported_port(system.cfg, "sim", "http")
            system.start(timeout=150.0)
            net.kxfeed("writer", "worker", "writer", "--config", str(wpath), log=tmp_path / "writer.log")

            # The feed crosses two hops (collector -> nats -> writer) into the database.
            assert wait_until(lambda: acked(wcfg) > 200, 90), (writer_stats(wcfg), bridge_stats(system.cfg))

            # A fourth host reads the live feed from JetStream (from now on: no --since).
            tap = net.run(
                "tap",
                kxfeed_cmd("tap", "--config", str(tap_path), "--jetstream", "kxfeed.>",
                           "--count", "30", "--timeout", "20"),
                timeout=90,
            )  # fmt: skip
            assert tap.returncode == 0, tap.stderr
            lines = [json.loads(x) for x in tap.stdout.splitlines()]
            markets = set(system.control("sim", "books"))
            assert len(lines) == 30 and {m["kind"] for m in lines} <= FEED_KINDS, tap.stdout[-2000:]
            assert any(m.get("ticker") in markets for m in lines), tap.stdout[-2000:]

            # The collector host loses power: every process on it at once, then it boots again.
            killed: dict[int, int] = {}
            conns = system.open_conns()
            at = time.time_ns()
            net.crash("collector")
            conns |= system.open_conns()
            killed.update((c, at) for c in conns)
            assert system.proc is not None
            system.proc.wait(10)
            before = acked(wcfg)
            system.start(timeout=150.0)
            assert wait_until(lambda: acked(wcfg) > before + 200, 90), writer_stats(wcfg)

            # NATS dies; the collector journals on; NATS comes back on the same store.
            nats.kill()
            assert wait_until(lambda: bridge_stats(system.cfg).get("connected") == 0, 30), bridge_stats(
                system.cfg
            )
            frames = sent_frames(system)
            assert wait_until(lambda: sent_frames(system) > frames + 300, 60)
            nats.start()
            assert wait_until(lambda: bridge_stats(system.cfg).get("connected") == 1, 60)
            before = acked(wcfg)
            assert wait_until(lambda: acked(wcfg) > before + 200, 90), writer_stats(wcfg)

            assert wait_until(lambda: set(system.states().values()) == {"running"}, 60), system.states()
            result = settle(system, timeout=60.0, killed=killed)
            wstats = writer_stats(wcfg)
        except (AssertionError, ControlError):
            print(f"collector log:\n{system.log_tail(80)}")
            print(f"writer log:\n{(tmp_path / 'writer.log').read_text(errors='replace')[-4000:]}")
            raise
        finally:
            system.kill()
            nats.stop()
    summary = result.summary()
    print(f"excused: {result.excuses_text()}; writer: {wstats}")
    assert killed, "the collector held a simulator connection when it crashed"
    assert result.info["connections"] >= 2, "the connector came back on a new connection"
    assert result.info["truncated"] == 0, "the truth is complete"
    missing = {k: d["missing"][:5] for k, d in result.diff.items() if d["missing"]}
    assert result.lost() == 0, f"lost: {missing} {summary}; excused: {result.excuses_text()}"
    assert result.duplicated_or_foreign() == 0, f"duplicated or wrong: {summary}"
    assert result.books == {}, f"books differ from the truth: {dict(list(result.books.items())[:5])}"
    assert wstats["lost"] == 0 and wstats["js_poison"] == 0, wstats
