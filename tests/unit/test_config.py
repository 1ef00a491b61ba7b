"""Config: defaults are the embedded default; typos and secrets fail with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config, resolve_paths


def test_defaults_are_the_embedded_default() -> None:
    cfg = load_config(None, environ={})
    assert cfg.kalshi.env == "sim"
    assert cfg.db.url.startswith("sqlite+aiosqlite:///")


def test_shipped_default_toml_equals_struct_defaults() -> None:
    assert DEFAULT_CONFIG_PATH.exists()
    assert load_config(DEFAULT_CONFIG_PATH, environ={}) == resolve_paths(Config(), "sim")


@pytest.mark.parametrize("env", ["sim", "demo", "prod"])
def test_data_is_per_environment_by_default(env: str) -> None:
    for environ in ({"KXFEED_KALSHI_ENV": env}, {"KALSHI_ENV": env}):
        cfg = load_config(DEFAULT_CONFIG_PATH, environ=environ)
        assert cfg.data_dir == f"data/{env}"
        assert cfg.journal.dir == f"data/{env}/journal"
        assert cfg.db.url == f"sqlite+aiosqlite:///data/{env}/kxfeed.db"


def test_explicit_paths_are_kept(tmp_path: Path) -> None:
    f = tmp_path / "kx.toml"
    f.write_text('data_dir = "/srv/kx"\n[kalshi]\nenv = "demo"\n')
    cfg = load_config(f, environ={})
    assert (cfg.data_dir, cfg.journal.dir, cfg.db.url) == (
        "/srv/kx",
        "/srv/kx/journal",
        "sqlite+aiosqlite:////srv/kx/kxfeed.db",
    )


@pytest.mark.parametrize("name", ["demo.toml", "prod.toml"])
def test_shipped_environment_configs_load(name: str) -> None:
    cfg = load_config(DEFAULT_CONFIG_PATH.parent / name, environ={})
    assert cfg.kalshi.env == name.removesuffix(".toml")


def test_typo_names_file_section_and_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[bus]\nxpubb = "tcp://127.0.0.1:1"\n')
    with pytest.raises(ConfigError) as err:
        load_config(f, environ={})
    text = str(err.value)
    assert str(f) in text and "xpubb" in text and "bus" in text


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[conector]\nx = 1\n")
    with pytest.raises(ConfigError, match="conector"):
        load_config(f, environ={})


def test_wrong_type_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[bus]\nsndhwm = "lots"\n')
    with pytest.raises(ConfigError, match="sndhwm"):
        load_config(f, environ={})


def test_env_overrides_are_typed() -> None:
    cfg = load_config(None, environ={"KXFEED_BUS_SNDHWM": "42", "KXFEED_DB_URL": "sqlite+aiosqlite:///x.db"})
    assert cfg.bus.sndhwm == 42
    assert cfg.db.url == "sqlite+aiosqlite:///x.db"


def test_env_override_typo_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KXFEED_BUS_SNDHWMM"):
        load_config(None, environ={"KXFEED_BUS_SNDHWMM": "1"})


def test_secret_in_toml_is_refused_with_advice(tmp_path: Path) -> None:
    f = tmp_path / "secret.toml"
    f.write_text('[kalshi]\nkey_id = "abc-123"\n')
    with pytest.raises(ConfigError) as err:
        load_config(f, environ={})
    assert "KALSHI_KEY_ID" in str(err.value)
    assert "abc-123" not in str(err.value)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})
    f = tmp_path / "broken.toml"
    f.write_text("[bus\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(f, environ={})


@pytest.mark.parametrize("value", ["0.5", "86401.0"])
def test_trade_backfill_max_s_is_range_checked(tmp_path: Path, value: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(f"[gapfill]\ntrade_backfill_max_s = {value}\n")
    with pytest.raises(ConfigError, match="trade_backfill_max_s"):
        load_config(f, environ={})
    f.write_text("[gapfill]\ntrade_backfill_max_s = 60.0\n")
    assert load_config(f, environ={}).gapfill.trade_backfill_max_s == 60.0
