"""Child specs from the config: defaults, overrides, refusals, reload fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest

from services.supervisor.specs import child_specs, policy_settings
from shared.config import Config, ConfigError, load_config


def _with(cfg: Config, section: str, **changes: object) -> Config:
    return msgspec.structs.replace(
        cfg, **{section: msgspec.structs.replace(getattr(cfg, section), **changes)}
    )


def test_default_children_are_the_installed_workers_in_order() -> None:
    specs = child_specs(Config(), "/etc/kx.toml", ["--log-json"], available=["bus", "writer", "orderbook"])
    assert [s.name for s in specs] == ["bus", "writer", "orderbook"]
    bus, writer, _ = specs
    assert bus.command == (
        sys.executable,
        "-m",
        "services.cli.main",
        "worker",
        "bus",
        "--config",
        "/etc/kx.toml",
        "--log-json",
    )
    assert (bus.ready, bus.control) == ("control", Config().busproxy.control)
    assert writer.ready == "heartbeat" and writer.heartbeat and writer.restart == "permanent"
    assert writer.heartbeat_timeout_s == Config().supervisor.heartbeat_timeout_s


def test_without_a_config_file_children_find_theirs_the_same_way() -> None:
    (bus,) = child_specs(Config(), None, available=["bus"])
    assert "--config" not in bus.command


def test_a_worker_not_installed_is_refused_not_pretended() -> None:
    cfg = _with(Config(), "supervisor", workers=["bus", "connector"])
    with pytest.raises(ConfigError, match=r"connector.*not part of this install"):
        child_specs(cfg, None, available=["bus", "writer"])
    with pytest.raises(ConfigError, match="unknown nosuch"):
        child_specs(_with(Config(), "supervisor", workers=["nosuch"]), None, available=["bus"])
    with pytest.raises(ConfigError, match="no child to run"):
        child_specs(Config(), None, available=[])


def test_explicit_children_from_toml(tmp_path: Path) -> None:
    f = tmp_path / "kx.toml"
    f.write_text(
        '[supervisor]\nstrategy = "rest_for_one"\nshutdown_timeout_s = 4.0\n'
        '[[supervisor.children]]\nname = "bus"\n'
        '[[supervisor.children]]\nname = "probe"\ncommand = ["/bin/probe", "-x"]\n'
        'restart = "transient"\nheartbeat = false\nshutdown_timeout_s = 1.5\n',
    )
    cfg = load_config(f, environ={})
    bus, probe = child_specs(cfg, str(f), available=["bus"])
    assert probe.command == ("/bin/probe", "-x")
    assert (probe.restart, probe.ready, probe.heartbeat) == ("transient", "spawn", False)
    assert (probe.shutdown_timeout_s, bus.shutdown_timeout_s) == (1.5, 4.0)
    assert policy_settings(cfg).strategy == "rest_for_one"


def test_inconsistent_children_are_refused() -> None:
    from shared.config import SupervisorChild

    def children(*c: SupervisorChild) -> Config:
        return _with(Config(), "supervisor", children=list(c))

    with pytest.raises(ConfigError, match="no command"):
        child_specs(children(SupervisorChild(name="x")), None, available=["bus"])
    with pytest.raises(ConfigError, match="control"):
        child_specs(children(SupervisorChild(name="x", command=["x"], ready="control")), None, available=[])
    with pytest.raises(ConfigError, match="named twice"):
        child_specs(
            children(SupervisorChild(name="bus"), SupervisorChild(name="bus")), None, available=["bus"]
        )
    too_short = _with(
        children(SupervisorChild(name="bus", heartbeat_timeout_s=1.0)), "busproxy", heartbeat_interval_s=1.0
    )
    with pytest.raises(ConfigError, match="twice its heartbeat interval"):
        child_specs(too_short, None, available=["bus"])


def test_fingerprints_change_only_for_what_a_child_depends_on() -> None:
    names = ["bus", "writer", "orderbook"]
    before = {s.name: s for s in child_specs(Config(), None, available=names)}
    writer_changed = {
        s.name: s for s in child_specs(_with(Config(), "writer", batch_ms=50), None, available=names)
    }
    assert [n for n in names if before[n] != writer_changed[n]] == ["writer"]
    db_changed = {
        s.name: s
        for s in child_specs(_with(Config(), "db", url="sqlite+aiosqlite:///x"), None, available=names)
    }
    assert all(before[n] != db_changed[n] for n in names), "shared sections affect every child"
    supervisor_changed = _with(Config(), "supervisor", max_restarts=9)
    assert {s.name: s for s in child_specs(supervisor_changed, None, available=names)} == before


def test_a_connector_child_is_named_by_its_collector_and_shard() -> None:
    names = ["bus", "connector"]
    assert [s.name for s in child_specs(Config(), None, available=names)] == names
    named = _with(Config(), "connector", collector="a")
    assert [s.name for s in child_specs(named, None, available=names)] == ["bus", "connector-a"]
    shard = _with(named, "connector", shard_count=2, shard_index=1)
    _, conn = child_specs(shard, None, available=names)
    assert conn.name == "connector-a-1" and conn.command[-1] == "connector"
