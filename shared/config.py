"""Configuration: TOML files decoded into frozen, typed msgspec Structs.

- Every key has a default; the defaults ARE the embedded default (exchange
  simulator + SQLite), mirrored in ``config/default.toml``.
- Unknown keys are errors naming the file and the key.
- ``KXFEED_<SECTION>_<KEY>`` environment variables override file values
  (e.g. ``KXFEED_DB_URL``, ``KXFEED_CONNECTOR_METRICS_PORT``).
- Secrets never come from TOML values: the Kalshi key id only from
  ``KALSHI_KEY_ID``, the private key only from a file (``KALSHI_PRIVATE_KEY_PATH``
  or ``kalshi.private_key_path``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from shared.config_common import (
    BusConfig,
    ControlConfig,
    CurveConfig,
    DbConfig,
    JournalConfig,
    KalshiConfig,
    LogConfig,
    RetentionConfig,
    WorkerBase,
    _Section,
)
from shared.config_workers import (
    ArbConfig,
    BusWorkerConfig,
    ConnectorConfig,
    GapfillConfig,
    GatewayConfig,
    OrderbookConfig,
    PollerConfig,
    RestTier,
    SimConfig,
    SupervisorChild,
    SupervisorConfig,
    WriterConfig,
)
from shared.environment import NON_CONFIG_ENV
from shared.jetstream_config import JetStreamConfig

# The section classes live in config_common / config_workers; they are re-exported here so
# ``from shared.config import X`` stays the one import path for every config name.
__all__ = [
    "CONFIG_DIR",
    "CONFIG_EXIT",
    "DEFAULT_CONFIG_PATH",
    "EXIT_NOTE_ENV",
    "EX_CONFIG",
    "NON_CONFIG_ENV",
    "ArbConfig",
    "BusConfig",
    "BusWorkerConfig",
    "Config",
    "ConfigError",
    "ConnectorConfig",
    "ControlConfig",
    "CurveConfig",
    "DbConfig",
    "GapfillConfig",
    "GatewayConfig",
    "JetStreamConfig",
    "JournalConfig",
    "KalshiConfig",
    "LogConfig",
    "OrderbookConfig",
    "PollerConfig",
    "RestTier",
    "RetentionConfig",
    "SimConfig",
    "SupervisorChild",
    "SupervisorConfig",
    "WorkerBase",
    "WriterConfig",
    "apply_env",
    "load_config",
    "resolve_paths",
    "to_toml_dict",
]


class ConfigError(Exception):
    """A configuration problem, with a message a user can act on.

    Bad settings, missing credentials, an unsafe key file, a missing data directory: a
    restart cannot fix any of them, so a worker that meets one exits :data:`EX_CONFIG`
    and the supervisor stops with its message instead of restarting it in a loop.
    """


#: The exit status of a worker that stopped on a :class:`ConfigError` (sysexits.h EX_CONFIG).
EX_CONFIG = 78
#: The exit status of a kxfeed command (``kxfeed up`` included) stopped by a configuration error.
CONFIG_EXIT = 2
#: A file the supervisor names for each child: a worker exiting :data:`EX_CONFIG` writes its
#: one-line message there, so the terminal shows the cause without reading the child's log.
EXIT_NOTE_ENV = "KXFEED_EXIT_NOTE"


class Config(_Section, frozen=True, kw_only=True):
    #: Empty = ``data/<kalshi env>`` (data/sim, data/demo, data/prod): the journals, the SQLite
    #: file, the simulator's dev key and the logs of one environment never mix with another's.
    data_dir: str = ""
    kalshi: KalshiConfig = KalshiConfig()
    bus: BusConfig = BusConfig()
    control: ControlConfig = ControlConfig()
    curve: CurveConfig = CurveConfig()
    log: LogConfig = LogConfig()
    journal: JournalConfig = JournalConfig()
    db: DbConfig = DbConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    busproxy: BusWorkerConfig = BusWorkerConfig()
    sim: SimConfig = SimConfig()
    connector: ConnectorConfig = ConnectorConfig()
    orderbook: OrderbookConfig = OrderbookConfig()
    writer: WriterConfig = WriterConfig()
    poller: PollerConfig = PollerConfig()
    gapfill: GapfillConfig = GapfillConfig()
    arb: ArbConfig = ArbConfig()
    gateway: GatewayConfig = GatewayConfig()
    jetstream: JetStreamConfig = JetStreamConfig()

    def worker(self, name: str) -> WorkerBase:
        """The section of worker ``name`` (the bus worker's section is ``busproxy``)."""
        section = getattr(self, _WORKER_SECTIONS.get(name, name), None)
        if not isinstance(section, WorkerBase):
            raise ConfigError(f"no worker section named {name!r}")
        return section


# Worker names whose section name differs (``bus`` is taken by the bus endpoints).
_WORKER_SECTIONS = {"bus": "busproxy"}

#: Top-level keys that would be secrets: refused with advice instead of "unknown key".
_SECRET_KEYS = {"key_id", "api_key", "private_key", "secret", "password"}


def _config_dir() -> Path:
    # A checkout has config/ beside shared/; an installed wheel carries the same files as the
    # package data shared/defaults/ (pyproject maps config/ there), since a top-level config/
    # would not be installed at all.
    here = Path(__file__).resolve().parent
    checkout = here.parent / "config"
    return checkout if (checkout / "default.toml").is_file() else here / "defaults"


#: The project's config directory: default.toml, demo.toml, prod.toml and teams/*.toml.
CONFIG_DIR = _config_dir()
DEFAULT_CONFIG_PATH = CONFIG_DIR / "default.toml"


def _sections() -> dict[str, type[msgspec.Struct]]:
    out: dict[str, type[msgspec.Struct]] = {}
    for f in msgspec.structs.fields(Config):
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct):
            out[f.name] = f.type
    return out


def _check_secrets(raw: dict[str, Any], origin: str) -> None:
    for section, body in raw.items():
        if isinstance(body, dict):
            for key in body:
                if key in _SECRET_KEYS:
                    raise ConfigError(
                        f"{origin}: [{section}] {key}: secrets are not read from config files; "
                        "set KALSHI_KEY_ID in the environment and point KALSHI_PRIVATE_KEY_PATH "
                        "(or kalshi.private_key_path) at the key file"
                    )


def apply_env(
    raw: dict[str, Any],
    environ: dict[str, str] | os._Environ[str],
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Merge ``KXFEED_<SECTION>_<KEY>`` overrides into ``raw`` (strings; typed later).

    ``sources`` (when given) receives ``"section.key"`` -> variable name for every override, so
    a bad value is blamed on the variable that set it, not on the file."""
    sources = {} if sources is None else sources
    sections = _sections()
    top_keys = {f.name for f in msgspec.structs.fields(Config)} - set(sections)
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in environ.items():
        if not name.startswith("KXFEED_") or name in NON_CONFIG_ENV:
            continue
        rest = name[len("KXFEED_") :].lower()
        if rest in top_keys:
            merged[rest] = value
            sources[rest] = name
            continue
        for section in sorted(sections, key=len, reverse=True):
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                valid = {f.name for f in msgspec.structs.fields(sections[section])}
                if key not in valid:
                    raise ConfigError(f"environment {name}: [{section}] has no key {key!r}")
                merged.setdefault(section, {})[key] = value
                sources[f"{section}.{key}"] = name
                break
        else:
            raise ConfigError(f"environment {name}: no config section matches (sections: {sorted(sections)})")
    return merged


def _coerce_env_lists(merged: dict[str, Any]) -> dict[str, Any]:
    """Env values for list fields arrive as comma-separated strings."""
    sections = _sections()
    for section, body in merged.items():
        if section in sections and isinstance(body, dict):
            for f in msgspec.structs.fields(sections[section]):
                value = body.get(f.name)
                if isinstance(value, str) and getattr(f.type, "__origin__", None) is list:
                    body[f.name] = [v.strip() for v in value.split(",") if v.strip()]
    return merged


def load_config(
    path: str | Path | None = None, *, environ: dict[str, str] | os._Environ[str] | None = None
) -> Config:
    """Load ``path`` (default: ``$KXFEED_CONFIG`` or ``config/default.toml``) plus env overrides."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("KXFEED_CONFIG") or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    _check_secrets(raw, origin)
    sources: dict[str, str] = {}
    merged = _blast_rate(_coerce_env_lists(apply_env(raw, environ, sources)))
    try:
        cfg = msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, origin, sources, environ)) from None
    return resolve_paths(cfg, environ.get("KALSHI_ENV") or cfg.kalshi.env)


def resolve_paths(cfg: Config, env: str) -> Config:
    """Fill the per-environment defaults: ``data_dir`` = data/<env>, the journal in
    ``<data_dir>/journal``, the SQLite file ``<data_dir>/kxfeed.db`` (each only when unset)."""
    data_dir = cfg.data_dir or f"data/{env}"
    journal = (
        cfg.journal if cfg.journal.dir else msgspec.structs.replace(cfg.journal, dir=f"{data_dir}/journal")
    )
    db = (
        cfg.db
        if cfg.db.url
        else msgspec.structs.replace(cfg.db, url=f"sqlite+aiosqlite:///{data_dir}/kxfeed.db")
    )
    return msgspec.structs.replace(cfg, data_dir=data_dir, journal=journal, db=db)


def _blast_rate(merged: dict[str, Any]) -> dict[str, Any]:
    # ``kxfeed sim --rate blast`` works, so ``rate = "blast"`` (and KXFEED_SIM_RATE=blast) must too:
    # blast is rate 0, "as fast as the clients read".
    sim = merged.get("sim")
    if isinstance(sim, dict) and isinstance(sim.get("rate"), str) and sim["rate"].strip().lower() == "blast":
        sim["rate"] = 0.0
    return merged


def _explain(exc: msgspec.ValidationError, origin: str, sources: dict[str, str], environ: Any) -> str:
    # msgspec says "Expected `float`, got `str` - at `$.sim.rate`"; name the key as TOML does, and
    # blame the environment variable when one set that key.
    text = str(exc)
    if " - at `$." not in text:
        return f"{origin}: {text}"
    msg, _, where = text.partition(" - at `$.")
    where = where.rstrip("`")
    var = sources.get(where)
    if var is not None:
        # A URL may carry a password: its value is never echoed.
        shown = "" if "url" in where else f"={environ.get(var, '')!r}"
        return f"environment {var}{shown}: {msg} (it overrides {where})"
    return f"{origin}: [{where}] {msg}"


def to_toml_dict(cfg: Config) -> dict[str, Any]:
    """The effective config as plain builtins that TOML can hold (``kxfeed config check``, test
    configs): TOML has no null, so an unset optional key is left out, as it is read back."""
    out: dict[str, Any] = _without_none(msgspec.to_builtins(cfg))
    return out


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
