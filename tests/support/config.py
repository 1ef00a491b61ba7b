"""Test configs whose every port and path is private to one test; TOML writing for child processes."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import msgspec

from shared.config import Config


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_rng = random.Random()


def free_port() -> int:
    """A free port OUTSIDE the kernel's ephemeral range.

    A port from the ephemeral range can be handed to some outbound connection the moment a
    killed worker releases it, and the restarted worker then cannot bind it again.
    """
    low, high = (10_000, _EPHEMERAL[0]) if _EPHEMERAL[0] > 12_000 else (_EPHEMERAL[1] + 1, 65_000)
    for _ in range(200):
        port = _rng.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}..{high}")


def make_config(tmp: Path, **sections: dict[str, Any]) -> Config:
    """A Config whose every port and path is private to this test.

    ``sections`` override keys per section, e.g. ``make_config(tmp, bus={"rcvhwm": 10})``.
    """
    raw: dict[str, Any] = {
        "data_dir": str(tmp),
        "bus": {"xsub": f"tcp://127.0.0.1:{free_port()}", "xpub": f"tcp://127.0.0.1:{free_port()}"},
        "journal": {"dir": str(tmp / "journal")},
        "db": {"url": f"sqlite+aiosqlite:///{tmp / 'kxfeed.db'}"},
    }
    for f in msgspec.structs.fields(Config):
        if f.name in ("supervisor", "busproxy", "sim", "connector", "orderbook", "writer") or (
            isinstance(f.type, type)
            and hasattr(f.type, "__struct_fields__")
            and "control" in f.type.__struct_fields__
        ):
            raw[f.name] = {"metrics_port": free_port(), "control": f"tcp://127.0.0.1:{free_port()}"}
    for name, body in sections.items():
        if isinstance(body, dict):
            raw.setdefault(name, {}).update(body)
        else:
            raw[name] = body
    return msgspec.convert(raw, Config, strict=False)


def write_config(cfg: Config, path: Path) -> Path:
    """Write ``cfg`` as TOML (for tests that start real processes with --config)."""
    lines: list[str] = []
    data = msgspec.to_builtins(cfg)
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml(value)}")
    for section, body in data.items():
        if isinstance(body, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in body.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
