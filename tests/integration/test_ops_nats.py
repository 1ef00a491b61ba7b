"""ops/nats/ and ops/jetstream.md say what works: each shipped nats-server node config passes
``nats-server -t``, the three form one cluster (distinct names, each routing to the other two),
and every kxfeed config block of the deployment document loads as kxfeed reads it, naming those
three nodes, the streams the bridge makes, workers that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from services import registry
from services.writer.jsack import config_problems
from shared.config import load_config
from shared.jetstream_config import DEFAULT_STREAMS
from tests.integration.test_jetstream_rig import NATS_SERVER, require_nats
from tests.support.procs import ROOT

NODES = [ROOT / "ops" / "nats" / f"node-{i}.conf" for i in (1, 2, 3)]
DOC = ROOT / "ops" / "jetstream.md"


@pytest.mark.parametrize("conf", NODES, ids=lambda p: p.name)
def test_each_node_config_passes_the_servers_own_check(conf: Path) -> None:
    require_nats()
    done = subprocess.run([NATS_SERVER, "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "is valid" in done.stdout + done.stderr, done.stderr


def test_the_three_nodes_are_one_cluster() -> None:
    names = []
    for i, conf in enumerate(NODES, 1):
        text = conf.read_text()
        name = re.search(r"^server_name: (\S+)$", text, re.M)
        assert name and name.group(1) == f"nats-{i}"
        names.append(name.group(1))
        routes = set(re.findall(r"nats-route://(nats-\d)\.kxfeed\.internal:6222", text))
        assert routes == {f"nats-{j}" for j in (1, 2, 3) if j != i}, (conf.name, routes)
        assert re.search(r"^\s+name: kxfeed$", text, re.M), "one cluster name"
        assert "jetstream {" in text and "store_dir:" in text
    assert len(set(names)) == 3


def doc_configs(tmp_path: Path) -> list[Path]:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 3, "collector, writer and consumer hosts"
    out = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"host-{i}.toml"
        path.write_text(block)
        out.append(path)
    return out


def test_the_documented_host_configs_load_and_agree(tmp_path: Path) -> None:
    collector, writer, consumer = (load_config(p, environ={}) for p in doc_configs(tmp_path))
    nodes = [f"nats://nats-{i}.kxfeed.internal:4222" for i in (1, 2, 3)]
    for cfg in (collector, writer, consumer):
        assert cfg.jetstream.servers == nodes
    # Collector: workers that exist, the bridge on, the default streams at three replicas.
    assert set(collector.supervisor.workers) <= set(registry.WORKER_MODULES)
    assert "jetstream" in collector.supervisor.workers and collector.jetstream.enabled
    assert [(s.name, s.kinds, s.max_age_s) for s in collector.jetstream.streams] == [
        (s.name, s.kinds, s.max_age_s) for s in DEFAULT_STREAMS
    ]
    assert {s.replicas for s in collector.jetstream.streams} == {3}
    # Writer: reads JetStream, nothing keeps it from starting, the same database.
    assert writer.writer.source == "jetstream" and config_problems(writer) == []
    assert writer.db.url == collector.db.url
