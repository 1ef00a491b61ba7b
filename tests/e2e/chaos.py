"""Chaos against a running :class:`~tests.e2e.harness.System`: SIGKILL random workers, simulator
disconnects and seq skips, and (optionally) a PostgreSQL outage through a cuttable TCP proxy.

Used by ``tests/e2e/test_chaos.py`` (short) and ``bench/chaos.py`` (the issue's 5 minutes).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.control import ControlError
from tests.e2e.harness import System
from tests.support.tcpproxy import TcpProxy

#: The simulator is the exchange and holds the ground truth: it is never killed.
VICTIMS = ("bus", "writer", "orderbook", "arb", "gapfill", "poller", "connector")


@dataclass
class Plan:
    seconds: float
    kill_every_s: float = 15.0
    disconnect_every_s: float = 30.0
    #: Chance, each second, that the simulator skips a seq (withholds one frame): every other
    #: skip on the book's subscription, the rest on the trade channel's (its trades come back
    #: by REST only).
    skip_per_second: float = 0.01
    #: At least this many seq skips even when the dice say none (short runs must see one).
    min_skips: int = 0
    #: Also one seq skip every this many seconds (0: none; the soak's fixed schedule).
    skip_every_s: float = 0.0
    #: (start, duration) of the PostgreSQL outage, seconds into the run; needs a proxy.
    pg_outage: tuple[float, float] | None = None
    seed: int = 1


@dataclass
class Outcome:
    kills: Counter[str] = field(default_factory=Counter)
    disconnects: int = 0
    seq_skips: int = 0
    #: Of the seq skips, those on the trade channel.
    trade_skips: int = 0
    pg_outage_s: float = 0.0
    #: Simulator connections open when the connector was killed (their in-flight tail is gone)
    #: -> wall-clock ns just before that kill (the simulator stamps its sends on the same clock).
    killed_conns: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    timeline: list[tuple[float, str]] = field(default_factory=list)


def run(
    system: System,
    plan: Plan,
    proxy: TcpProxy | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> Outcome:
    """Run ``plan`` against ``system``; ``on_tick(elapsed_s)`` is called every turn of the loop
    (about 20 times a second: a caller samples there, e.g. bench/soak.py)."""
    rng = random.Random(plan.seed)
    out = Outcome()
    start = time.monotonic()
    next_kill, next_disconnect = plan.kill_every_s, plan.disconnect_every_s
    skip_seconds = set(rng.sample(range(int(plan.seconds)), k=min(plan.min_skips, int(plan.seconds))))
    outage_over = plan.pg_outage is None
    cut = False
    second = owed = 0
    while (elapsed := time.monotonic() - start) < plan.seconds:
        if elapsed >= next_kill:
            next_kill += plan.kill_every_s
            _kill(system, rng.choice(VICTIMS), out)
        if elapsed >= next_disconnect:
            next_disconnect += plan.disconnect_every_s
            if _sim(system, out, "inject", kind="disconnect"):
                out.disconnects += 1
        if elapsed >= second:
            owed += second in skip_seconds
            owed += bool(plan.skip_every_s) and second > 0 and second % plan.skip_every_s < 1
            skip = owed > 0 or rng.random() < plan.skip_per_second
            # A skip finds no connection while the connector restarts: the planned ones are owed
            # until one takes (min_skips is a promise the test relies on).
            channel = "trade" if out.seq_skips % 2 else "orderbook_delta"
            if skip and _sim(system, out, "inject", kind="gap", count=1, channel=channel):
                out.seq_skips += 1
                out.trade_skips += channel == "trade"
                owed = max(0, owed - 1)
            second += 1
        if not outage_over and proxy is not None and plan.pg_outage is not None:
            at, length = plan.pg_outage
            if not cut and elapsed >= at:
                proxy.cut()
                cut = True
            elif cut and elapsed >= at + length:
                proxy.restore()
                out.pg_outage_s = length
                outage_over = True
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(0.05)
    if cut and not outage_over and proxy is not None:
        proxy.restore()
        out.pg_outage_s = time.monotonic() - start - plan.pg_outage[0] if plan.pg_outage else 0.0
    return out


def _sim(system: System, out: Outcome, cmd: str, **args: str | int) -> bool:
    try:
        result = system.control("sim", cmd, 10.0, **args)
    except ControlError as exc:
        out.errors.append(f"sim {cmd} {args}: {exc}")
        return False
    return bool(result.get("connections")) if isinstance(result, dict) else True


def _kill(system: System, name: str, out: Outcome) -> None:
    worker = system.workers().get(name, {})
    pid = worker.get("pid")
    if worker.get("state") != "running" or not isinstance(pid, int) or pid <= 0:
        out.errors.append(f"{name} not running at its kill: {worker}")
        return
    conns: set[int] = set()
    if name == "connector":
        with contextlib.suppress(ControlError):
            conns = system.open_conns()
    at = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    if name == "connector":
        # A connection the killed process was just opening shows up now (its replacement takes
        # a second to start, so nothing here is the new process's).
        with contextlib.suppress(ControlError):
            conns |= system.open_conns()
        for c in conns:
            out.killed_conns.setdefault(c, at)
    out.kills[name] += 1
    out.timeline.append((round(time.monotonic(), 2), name))
