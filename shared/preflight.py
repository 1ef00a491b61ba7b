"""Preflight: the mistakes that would otherwise surface as a crash loop, found in about a second.

``kxfeed check``, ``kxfeed config check`` and the first thing ``kxfeed up`` / ``kxfeed worker``
do (and the systemd units' ``ExecStartPre``). Each check returns problems as ONE short line
that says what to do; the caller prints them and exits 2. Nothing here raises for a bad
setup, creates a file, or shows a secret (URLs lose their password, key ids never appear).

What is checked depends on which workers will run (``workers``): credentials for the
connector against demo/prod, the database for the writer, team tables and ``ODDS_API_KEY``
for the arb, the ports each of them binds, the CURVE keys of what they bind or connect to beyond
loopback.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from shared.config import CONFIG_DIR, Config, ConfigError
from shared.environment import redact_url
from shared.kalshi.auth import KeyFileError
from shared.kalshi.credentials import load_credentials
from shared.kalshi.endpoints import effective_env

#: A TCP connect to the database gets this long (the whole preflight should take about a second).
DB_CONNECT_TIMEOUT_S = 1.0

#: Workers that call Kalshi (or the simulator) with this install's credentials.
_SIGNED = ("connector", "poller", "gapfill")


class Port(NamedTuple):
    """One TCP port a process will bind, and the config key (and variable) that sets it."""

    host: str
    port: int
    key: str
    var: str


def _tcp(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of a ``tcp://host:port`` endpoint; None for ipc:// and the like."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp" or parts.port is None:
        return None
    host = parts.hostname or "127.0.0.1"
    return ("0.0.0.0" if host == "*" else host), parts.port


def _section_name(cfg: Config, name: str) -> str:
    return "busproxy" if name == "bus" else name


def ports(cfg: Config, workers: Iterable[str], supervisor: bool = False) -> list[Port]:
    """Every TCP port the given workers (and the supervisor, when it runs) will bind."""
    out: list[Port] = []

    def add(section: str, key: str, host: str, port: int) -> None:
        if port > 0:
            out.append(Port(host, port, f"[{section}] {key}", f"KXFEED_{section.upper()}_{key.upper()}"))

    def add_endpoint(section: str, key: str, endpoint: str) -> None:
        hp = _tcp(endpoint)
        if hp is not None:
            add(section, key, *hp)

    names = [*(["supervisor"] if supervisor else []), *workers]
    for name in names:
        try:
            sec = cfg.worker(name)
        except ConfigError:
            continue  # a custom child without a section binds nothing we know of
        section = _section_name(cfg, name)
        add(section, "metrics_port", sec.metrics_host, sec.metrics_port)
        add_endpoint(section, "control", sec.control)
        if name == "bus":
            add_endpoint("bus", "xsub", cfg.bus.xsub)
            add_endpoint("bus", "xpub", cfg.bus.xpub)
        if name == "sim":
            add("sim", "port", cfg.sim.host, cfg.sim.port)
        if name == "gateway":
            add("gateway", "port", cfg.gateway.host, cfg.gateway.port)
    return out


def _bind_problem(p: Port) -> str | None:
    family = socket.AF_INET6 if ":" in p.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As the servers do (zmq, aiohttp): a port in TIME_WAIT is free to them, so it is here.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p.host, p.port))
            s.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {p.port} on {p.host} ({p.key}) is taken by another process: stop it "
                    f"(`ss -ltnp 'sport = :{p.port}'` shows which) or set {p.var} to a free port"
                )
            return f"cannot bind {p.host}:{p.port} ({p.key}): {exc.strerror}; set {p.var} to a local address"
    return None


def check_ports(cfg: Config, workers: Sequence[str], supervisor: bool = False) -> list[str]:
    problems: list[str] = []
    seen: dict[int, Port] = {}
    for p in ports(cfg, workers, supervisor):
        if p.port in seen:
            problems.append(f"{p.key} and {seen[p.port].key} are both port {p.port}: give one another port")
            continue
        seen[p.port] = p
        problem = _bind_problem(p)
        if problem:
            problems.append(problem)
    return problems


def check_simulator(cfg: Config, env: str, workers: Sequence[str]) -> list[str]:
    if "sim" in workers and env != "sim":
        return [
            f'the exchange simulator runs only with [kalshi] env = "sim" (this config talks to Kalshi '
            f"{env}): remove sim from [supervisor] workers"
        ]
    return []


def check_credentials(cfg: Config, env: str, workers: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    configured = bool(
        environ.get("KALSHI_KEY_ID", "").strip()
        or environ.get("KALSHI_PRIVATE_KEY_PATH", "").strip()
        or cfg.kalshi.private_key_path
    )
    # The connector cannot subscribe to demo/prod without a key; REST workers go unsigned
    # without one, but a key that is configured must be usable by all of them.
    needed = "connector" in workers and env != "sim"
    if not (needed or (configured and any(w in workers for w in _SIGNED))):
        return []
    try:
        load_credentials(cfg, env, environ)
    except (ConfigError, KeyFileError) as exc:
        return [str(exc)]
    return []


def _sqlite_path(url: str) -> Path | None:
    _, _, rest = url.partition(":///")
    rest = rest.split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def check_database(cfg: Config, offline: bool) -> list[str]:
    # Parsed with urllib, not SQLAlchemy: importing SQLAlchemy alone takes seconds on a busy host.
    url = cfg.db.url
    backend = url.partition("://")[0].split("+", 1)[0]
    if backend == "sqlite":
        path = _sqlite_path(url)
        if path is None:
            return []
        parent = path.parent if str(path.parent) else Path(".")
        existing = next((d for d in (parent, *parent.parents) if d.exists()), Path("/"))
        target = path if path.exists() else existing
        if not os.access(target, os.W_OK):
            return [
                f"SQLite database {path} cannot be written by this user ({target} is not writable): "
                "fix the permissions or point [db] url / KXFEED_DB_URL elsewhere"
            ]
        return []
    if backend not in ("postgresql", "postgres"):
        return [
            f"[db] url {redact_url(url)!r}: kxfeed stores into sqlite+aiosqlite:///PATH or "
            "postgresql+asyncpg://USER@HOST:PORT/DB"
        ]
    if offline:
        return []
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    except ValueError as exc:
        return [f"[db] url {redact_url(url)!r}: {exc}"]
    try:
        with socket.create_connection((host, port), timeout=DB_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        return [
            f"database {redact_url(url)} is not reachable (host {host}, port {port}): {why}; start "
            "PostgreSQL there or point [db] url / KXFEED_DB_URL at a running server"
        ]
    return []


def check_odds(cfg: Config, env: str, workers: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    # Against the simulator the odds come from its own /v4 (any key); against real Kalshi the
    # public Odds API refuses a request without a key, every cycle.
    if "arb" not in workers or env == "sim" or cfg.arb.odds_source != "http":
        return []
    if environ.get("ODDS_API_KEY", "").strip():
        return []
    return [
        "the arb worker's sportsbook odds (The Odds API) need ODDS_API_KEY: export ODDS_API_KEY=<your key> "
        '(https://the-odds-api.com), or set [arb] odds_source = "none" for complement arbitrage only'
    ]


def check_gateway(cfg: Config, workers: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """A gateway bound beyond loopback without a token would serve anyone who can reach it."""
    if "gateway" not in workers:
        return []
    from shared.gateway_token import token_problem

    problem = token_problem(cfg.gateway, environ)
    return [problem] if problem else []


def check_data(cfg: Config, workers: Sequence[str]) -> list[str]:
    problems: list[str] = []
    if "arb" in workers:
        teams = Path(cfg.arb.teams_dir) if cfg.arb.teams_dir else CONFIG_DIR / "teams"
        if not teams.is_dir() or not any(teams.glob("*.toml")):
            where = "[arb] teams_dir" if cfg.arb.teams_dir else "the packaged team tables"
            problems.append(
                f"{where}: no *.toml team tables in {teams}: reinstall kxfeed (the wheel ships them) "
                "or point [arb] teams_dir at a directory of them"
            )
    if "writer" in workers:
        # The files alembic needs, looked at rather than imported (alembic takes a second to load).
        migrations = Path(__file__).resolve().parent / "store" / "migrations"
        present = (migrations / "env.py").is_file() and (migrations / "script.py.mako").is_file()
        if not present or not any((migrations / "versions").glob("0*.py")):
            problems.append(
                f"the database migrations are missing from this install ({migrations}): reinstall kxfeed"
            )
    return problems


def check_curve(cfg: Config, workers: Sequence[str], supervisor: bool = False) -> list[str]:
    """A bus or control endpoint beyond loopback needs CURVE keys that load (shared/curve.py)."""
    from shared.curve import Curve, endpoints_of

    curve = Curve(cfg.curve)
    problems: list[str] = []
    for name in [*(["supervisor"] if supervisor else []), *workers]:
        try:
            binds, connects = endpoints_of(cfg, name)
        except ConfigError:
            continue  # a custom child without a section binds nothing we know of
        for problem in curve.problems(binds, connects):
            if problem not in problems:
                problems.append(problem)
    return problems


def preflight(
    cfg: Config,
    workers: Sequence[str],
    *,
    supervisor: bool = False,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem that would stop ``workers`` (and the supervisor) from starting, one line each."""
    environ = os.environ if environ is None else environ
    try:
        env = effective_env(cfg, environ)
    except ConfigError as exc:
        return [str(exc)]
    problems = check_simulator(cfg, env, workers)
    problems += check_credentials(cfg, env, workers, environ)
    if "writer" in workers:
        problems += check_database(cfg, offline)
    problems += check_odds(cfg, env, workers, environ)
    problems += check_data(cfg, workers)
    problems += check_gateway(cfg, workers, environ)
    problems += check_curve(cfg, workers, supervisor)
    problems += check_ports(cfg, workers, supervisor)
    return problems


def notes(cfg: Config) -> list[str]:
    """Not problems, but worth one line: data an earlier kxfeed left where it no longer looks."""
    old_db = Path("data") / "kxfeed.db"
    derived = cfg.data_dir.startswith("data/") and cfg.db.url.endswith(f"{cfg.data_dir}/kxfeed.db")
    if derived and old_db.is_file() and not (Path(cfg.data_dir) / "kxfeed.db").exists():
        return [
            f"data/kxfeed.db and data/journal are from a kxfeed before per-environment data dirs; this "
            f"run uses {cfg.data_dir}/. To keep that (simulator) data: stop kxfeed, then "
            f"`mkdir -p data/sim && mv data/kxfeed.db* data/journal data/sim/`"
        ]
    return []
