"""Run the whole pipeline under the supervisor: the main way to run kxfeed.

  kxfeed up [--config FILE] [--workers NAME,...] [--log-json] [--no-live]

Starts the workers this install has (or [supervisor] workers / children), bus
first, each one once the one before it reports ready; restarts them by policy
(strategy, backoff, restart intensity); a worker whose heartbeat stops is
restarted by the watchdog. SIGTERM or Ctrl-C stops them in reverse order
(producers first, the bus last); SIGHUP re-reads the config and restarts only
the workers whose settings changed. In a terminal it shows a live status
refreshed in place (the workers' logs go to <data_dir>/logs/); otherwise, or
with --log-json, it logs lines. Exits non-zero when restarts exceed the
intensity with [supervisor] on_intensity = "exit" (the default, "park", parks the
flapping worker and keeps the rest running). Before anything starts it runs
`kxfeed check` (credentials, key file, database, ports, odds key, packaged
data): each problem is one line on the terminal, exit 2. A worker that still cannot
start with this configuration is not restarted: its one-line message is printed and
kxfeed up exits 2.

examples:
  kxfeed up                                   # simulator + pipeline + SQLite
  kxfeed up --config config/demo.toml --log-json
  kxfeed up --workers bus,sim                 # only the bus and the exchange simulator
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any

import msgspec

from services import registry
from services.cli.common import add_config_options, planned_workers, preflight_failed, subcommand
from services.cli.screen import live_screen
from shared.commands.ping import Ping
from shared.config import CONFIG_EXIT, Config, load_config
from shared.control import ControlError, request
from shared.log import get_logger, setup_logging


def register(sub: Any) -> None:
    p = subcommand(sub, "up", __doc__)
    add_config_options(p)
    p.add_argument(
        "--workers", metavar="NAME,...", help="run only these workers, in this order (default: all)"
    )
    p.add_argument("--no-live", action="store_true", help="log lines even in a terminal")
    p.add_argument(
        "--status-every",
        type=float,
        default=60.0,
        metavar="S",
        help="without the live view, log a status line every S seconds (0: never)",
    )
    p.set_defaults(func=run)


def with_overrides(cfg: Config, workers: str | None) -> Config:
    if not workers:
        return cfg
    names = [n.strip() for n in workers.split(",") if n.strip()]
    sup = cfg.supervisor
    if sup.children:
        by_name = {c.name: c for c in sup.children}
        sup = msgspec.structs.replace(sup, children=[by_name[n] for n in names if n in by_name])
    else:
        sup = msgspec.structs.replace(sup, workers=names)
    return msgspec.structs.replace(cfg, supervisor=sup)


class LiveScreen:
    """Redraws the status in place: up to the first line of the last frame, clear, print."""

    def __init__(self, out: IO[str], log_dir: str) -> None:
        self.out = out
        self.log_dir = log_dir
        self._height = 0
        self._width = 0

    def _columns(self) -> int:
        # The terminal's size now, not $COLUMNS: an exported COLUMNS is stale after a resize.
        try:
            return os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return shutil.get_terminal_size((100, 24)).columns

    def __call__(self, status: dict[str, Any]) -> None:
        width = max(40, self._columns() - 1)
        lines = live_screen(status, width=width, log_dir=self.log_dir)
        if self._height and width != self._width:
            # Resized: the terminal re-wrapped the old frame, so "up N lines" no longer finds
            # its top. Clear the screen and start again at the top.
            prefix = "\x1b[H\x1b[2J"
        else:
            prefix = f"\x1b[{self._height}F\x1b[J" if self._height else ""
        self._width = width
        self.out.write(prefix + "\n".join(lines) + "\n")
        self.out.flush()
        self._height = len(lines)


class StatusLog:
    """Without a terminal: one status line per worker every ``every_s`` seconds."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = time.monotonic()
        self.log = get_logger("supervisor")

    def __call__(self, status: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        for w in status["workers"]:
            ctx = {
                k: w[k]
                for k in (
                    "worker",
                    "pid",
                    "state",
                    "uptime_s",
                    "restarts",
                    "heartbeat_age_s",
                    "messages_per_s",
                )
            }
            ctx.update(w["counters"])
            self.log.info("status", extra={"ctx": ctx})


def run(args: argparse.Namespace) -> int:
    config_path = os.path.abspath(args.config) if args.config else None
    cfg = with_overrides(load_config(config_path), args.workers)
    json_logs = bool(args.log_json or cfg.log.json)
    level = args.log_level or cfg.log.level
    live = sys.stdout.isatty() and not json_logs and not args.no_live
    log_dir = Path(cfg.supervisor.log_dir or Path(cfg.data_dir) / "logs")
    log_stream: IO[str] | None = None
    if live:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_stream = open(log_dir / "supervisor.log", "a")  # noqa: SIM115 - open for the whole run
    setup_logging(level, json=json_logs, stream=log_stream)
    try:
        answer = request(cfg.supervisor.control, Ping(), timeout_s=0.3)
    except ControlError:
        pass
    else:
        print(
            f"kxfeed up: a supervisor already answers on {cfg.supervisor.control}: {answer}", file=sys.stderr
        )
        return 1
    if preflight_failed("kxfeed up", cfg, planned_workers(cfg), supervisor=True):
        return 2
    child_args = ["--log-json"] if json_logs else []
    if args.log_level:
        child_args += ["--log-level", args.log_level]
    views: list[Any] = []
    if live:
        views.append(LiveScreen(sys.stdout, str(log_dir)))
    elif args.status_every > 0:
        views.append(StatusLog(args.status_every))
    supervisor: Any = registry.supervisor_class()  # takes more than a config
    sup = supervisor(
        cfg,
        config_path=config_path,
        loader=lambda: with_overrides(load_config(config_path), args.workers),
        child_args=child_args,
        child_log_dir=log_dir if live else None,
        views=views,
    )
    try:
        code = sup.run()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        port = cfg.supervisor.metrics_port
        print(f"kxfeed up: cannot serve /metrics on port {port}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        if log_stream is not None:
            log_stream.close()
    if code == CONFIG_EXIT:
        # The worker's own message, live screen or not: the fix is in the config, not the logs.
        print(f"kxfeed up: {sup.core.stop_cause}", file=sys.stderr)
    elif code and live:
        print(f"kxfeed up: exited {code}: {sup.core.stop_cause} (see {log_dir}/)", file=sys.stderr)
    return code
