"""The ZeroMQ size limits in config: defaults, overrides, and out-of-range values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.bus import MAX_MSG_BYTES
from shared.config import ConfigError, load_config
from shared.control_server import DEFAULT_MAX_MSG_BYTES


def test_defaults_match_the_code() -> None:
    cfg = load_config(None, environ={})
    assert cfg.bus.max_msg_bytes == MAX_MSG_BYTES == 16 * 1024 * 1024
    assert cfg.control.max_msg_bytes == DEFAULT_MAX_MSG_BYTES == 1024 * 1024


def test_file_and_environment_override(tmp_path: Path) -> None:
    f = tmp_path / "kx.toml"
    f.write_text("[bus]\nmax_msg_bytes = 1048576\n[control]\nmax_msg_bytes = 65536\n")
    cfg = load_config(f, environ={"KXFEED_CONTROL_MAX_MSG_BYTES": "131072"})
    assert cfg.bus.max_msg_bytes == 1024 * 1024
    assert cfg.control.max_msg_bytes == 128 * 1024


@pytest.mark.parametrize("value", ["0", "-1", "1000", str(2**31 + 1)])
def test_out_of_range_limits_are_config_errors(tmp_path: Path, value: str) -> None:
    f = tmp_path / "kx.toml"
    f.write_text(f"[bus]\nmax_msg_bytes = {value}\n")
    with pytest.raises(ConfigError, match="max_msg_bytes"):
        load_config(f, environ={})
