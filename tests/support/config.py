"""Test configs whose every port and path is private to one test; TOML writing for child processes.

No port is ever picked and bound later (someone can take it in between): bus and control
sockets are ipc:// endpoints in the test's directory, every /metrics, the simulator and the
gateway bind port 0 and report the port they got in the data dir (:func:`reported_port`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from shared import ports
from shared.config import Config, to_toml_dict
from tests.support.procs import wait_until


def ipc_dir(tmp: Path) -> Path:
    """Where a test's ipc:// sockets live: its own directory, or a short one under /tmp when that
    path would not fit a Unix socket address (108 bytes with the name)."""
    d = tmp / "ipc"
    if len(str(d)) > 80:
        d = Path(tempfile.mkdtemp(prefix="kxipc-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def ipc_endpoint(tmp: Path, name: str) -> str:
    """An ipc:// endpoint private to this test (for sockets a test binds itself)."""
    return f"ipc://{ipc_dir(tmp)}/{name}"


def reported_port(cfg: Config, worker: str, what: str = "metrics", timeout: float = 60.0) -> int:
    """The port ``worker`` bound for ``what`` (configured 0: any free one), once it reports it."""
    got: list[int] = []

    def seen() -> bool:
        port = ports.reported(cfg.data_dir, worker, what)
        if port is not None:
            got[:] = [port]
        return port is not None

    if not wait_until(seen, timeout):
        raise AssertionError(f"{worker} never reported its {what} port in {cfg.data_dir}")
    return got[0]


def make_config(tmp: Path, **sections: dict[str, Any]) -> Config:
    """A Config whose every port and path is private to this test.

    ``sections`` override keys per section, e.g. ``make_config(tmp, bus={"rcvhwm": 10})``.
    """
    ipc = ipc_dir(tmp)
    raw: dict[str, Any] = {
        "data_dir": str(tmp),
        "bus": {"xsub": f"ipc://{ipc}/xsub", "xpub": f"ipc://{ipc}/xpub"},
        "journal": {"dir": str(tmp / "journal")},
        "db": {"url": f"sqlite+aiosqlite:///{tmp / 'kxfeed.db'}"},
    }
    for f in msgspec.structs.fields(Config):
        if f.name in ("supervisor", "busproxy", "sim", "connector", "orderbook", "writer") or (
            isinstance(f.type, type)
            and hasattr(f.type, "__struct_fields__")
            and "control" in f.type.__struct_fields__
        ):
            raw[f.name] = {"metrics_port": 0, "control": f"ipc://{ipc}/{f.name}"}
    raw["sim"]["port"] = 0
    raw["gateway"]["port"] = 0
    for name, body in sections.items():
        if isinstance(body, dict):
            raw.setdefault(name, {}).update(body)
        else:
            raw[name] = body
    return msgspec.convert(raw, Config, strict=False)


def write_config(cfg: Config, path: Path) -> Path:
    """Write ``cfg`` as TOML (for tests that start real processes with --config)."""
    path.write_text(tomli_w.dumps(to_toml_dict(cfg)))
    return path


def config_file(d: Path, **sections: Any) -> Path:
    """``make_config(d, **sections)`` written to ``d/kx.toml``; the simulator on port 0 unless
    ``sections`` says otherwise (for tests that only start a command, not the whole stack)."""
    sections.setdefault("sim", {"port": 0})
    return write_config(make_config(d, **sections), d / "kx.toml")
