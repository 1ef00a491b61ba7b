"""The preflight's checks as pure functions of a config and an environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import registry
from services.supervisor.specs import child_specs
from shared.config import Config, load_config
from shared.preflight import check_odds, check_ports, notes, ports, preflight
from tests.support.config import make_config


def test_the_simulator_is_a_default_worker_only_for_env_sim(tmp_path: Path) -> None:
    installed = registry.available()
    assert "sim" in registry.default_workers("sim", installed)
    for env in ("demo", "prod"):
        assert "sim" not in registry.default_workers(env, installed)
        cfg = make_config(tmp_path, kalshi={"env": env})
        assert "sim" not in [s.name for s in child_specs(cfg, None, available=installed)]


def test_odds_key_needed_only_against_real_kalshi_over_http(tmp_path: Path) -> None:
    demo = make_config(tmp_path, kalshi={"env": "demo"})
    assert (
        check_odds(demo, "demo", ["arb"], {}) and "ODDS_API_KEY" in check_odds(demo, "demo", ["arb"], {})[0]
    )
    assert check_odds(demo, "demo", ["arb"], {"ODDS_API_KEY": "k"}) == []
    assert check_odds(demo, "demo", ["writer"], {}) == []
    assert check_odds(make_config(tmp_path), "sim", ["arb"], {}) == []
    none = make_config(tmp_path, kalshi={"env": "demo"}, arb={"odds_source": "none"})
    assert check_odds(none, "demo", ["arb"], {}) == []


def test_two_keys_on_one_port_are_named(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, writer={"metrics_port": 19_999}, arb={"metrics_port": 19_999})
    problems = check_ports(cfg, ["writer", "arb"])
    assert any("[arb] metrics_port and [writer] metrics_port are both port 19999" in p for p in problems)


def test_ports_cover_bus_sim_and_supervisor() -> None:
    cfg = Config()  # the defaults: TCP endpoints and fixed ports (test configs use ipc:// and 0)
    keys = {p.key for p in ports(cfg, ["bus", "sim"], supervisor=True)}
    assert {
        "[bus] xsub",
        "[bus] xpub",
        "[busproxy] control",
        "[sim] port",
        "[supervisor] metrics_port",
    } <= keys
    assert all(p.var.startswith("KXFEED_") for p in ports(cfg, ["bus"]))


def test_default_config_passes_offline_in_a_private_setup(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"port": 0})
    assert preflight(cfg, registry.default_workers("sim"), supervisor=True, offline=True, environ={}) == []
    assert load_config(None, environ={}).kalshi.env == "sim"


def test_data_of_an_earlier_kxfeed_gets_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, environ={})
    assert notes(cfg) == []
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kxfeed.db").write_bytes(b"")
    (note,) = notes(cfg)
    assert "data/sim/" in note and "mv data/kxfeed.db* data/journal data/sim/" in note
    (tmp_path / "data" / "sim").mkdir()
    (tmp_path / "data" / "sim" / "kxfeed.db").write_bytes(b"")
    assert notes(cfg) == []
