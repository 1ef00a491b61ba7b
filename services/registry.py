"""Worker names -> the module that defines them (each module exposes ``WORKER``).

Start order is consumers before producers; stop order is the reverse.
Only workers whose module exists are offered: nothing pretends to run.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from shared.collectors import connector_id

if TYPE_CHECKING:  # the CLI's preflight reads the names without loading zmq and prometheus
    from shared.actor import Actor
    from shared.config import Config

#: name -> module, in start order. The simulator stands in for Kalshi itself, so it starts
#: right after the bus: workers that call the exchange at start find it listening.
WORKER_MODULES: dict[str, str] = {
    "bus": "services.bus.worker",
    "sim": "services.exchange_sim.worker",
    "writer": "services.writer.worker",
    "orderbook": "services.orderbook.worker",
    "gateway": "services.gateway.worker",
    "arb": "services.arb.worker",
    "gapfill": "services.gapfill.worker",
    "poller": "services.poller.worker",
    "connector": "services.connector.worker",
    # Last: it reads the producers' journals, not the bus, so it needs no place among them,
    # and the default pipeline's order stays as it was. Opt-in (OPT_IN).
    "jetstream": "services.jetstream.worker",
}

#: Workers ``kxfeed up`` runs only when their section enables them (``opted_in``): the bridge
#: into NATS JetStream needs a NATS server, and the default run must not.
OPT_IN = frozenset({"jetstream"})


#: The supervisor is not a worker it starts: ``kxfeed up`` runs it in the foreground.
SUPERVISOR_MODULE = "services.supervisor.worker"


def available() -> list[str]:
    """Workers that exist in this install, in start order."""
    out = []
    for name, module in WORKER_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            out.append(name)
    return out


def default_workers(
    env: str, installed: list[str] | None = None, opted_in: frozenset[str] = frozenset()
) -> list[str]:
    """What ``kxfeed up`` runs when the config names no workers: every installed one, except the
    exchange simulator unless ``[kalshi] env = "sim"`` (demo and prod never start it) and the
    :data:`OPT_IN` workers not in ``opted_in``."""
    names = available() if installed is None else installed
    return [n for n in names if (n != "sim" or env == "sim") and (n not in OPT_IN or n in opted_in)]


def opted_in(cfg: Config) -> frozenset[str]:
    """The :data:`OPT_IN` workers ``cfg`` enables."""
    return frozenset({"jetstream"}) if cfg.jetstream.enabled else frozenset()


def worker_id(cfg: Config, name: str) -> str:
    """The id ``kxfeed worker NAME`` runs under with ``cfg`` (its heartbeats', journal's and
    publisher's name): a connector's carries its collector and shard (shared/collectors.py)."""
    if name == "connector":
        cc = cfg.connector
        return connector_id(cc.collector, cc.shard_index if cc.shard_count > 1 else None)
    return name


def worker_class(name: str) -> type[Actor]:
    if name not in WORKER_MODULES:
        raise KeyError(f"unknown worker {name!r}; known: {', '.join(WORKER_MODULES)}")
    if name not in available():
        raise KeyError(
            f"worker {name!r} is not part of this install yet; available: {', '.join(available())}"
        )
    cls: type[Actor] = importlib.import_module(WORKER_MODULES[name]).WORKER
    return cls


def supervisor_class() -> type[Actor]:
    """The supervisor (its constructor takes more than a config: see ``kxfeed up``)."""
    cls: type[Actor] = importlib.import_module(SUPERVISOR_MODULE).WORKER
    return cls
