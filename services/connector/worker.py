"""The connector worker: Kalshi's WebSocket in, journaled bus messages out.

  kxfeed worker connector [--instance N | NAME | NAME-N]
      (shard N of [connector] shard_count; NAME: this process's collector, default
      [connector] collector; see shared/collectors.py for the publisher names)

At start it resolves the market set over REST (``[connector]`` filters), publishes
a ``MarketMeta`` per market, then holds one signed WebSocket connection:
orderbook_delta / ticker / trade for the set (sharded into sids) and
market_lifecycle_v2 for everything. Lifecycle keeps the set current (created /
activated markets that match are added, determined / settled ones removed).
``[connector] private_channels`` (fill, market_positions, user_orders,
order_group_updates) adds this account's fills, positions, order states and order-group
events, but only when signing with a key from the environment: the
simulator's dev key has no account, so then they are skipped, logged and counted.

Every drained batch of frames becomes one ``publish_many``: the journal gets the
batch before the bus does. Within a batch, messages are grouped by market
(stable: each market's messages keep their order) so a market's run of deltas
travels as one bus frame; the order *across* markets inside one batch is not
Kalshi's seq order.

Commands go out paced by one token bucket (``[connector] commands_per_s``, under Kalshi's
published 10,000/s; see .pacing), counted when they wait.

Liveness: no frame and no server ping for ``stale_after_s`` = dead; reconnect
forever with capped, jittered backoff; a refused key (401/403) waits
``auth_backoff_s``. The orderbook asks for snapshots with ``Control(cmd=
"snapshot")`` on ``ctl.connector``; the control socket answers ``snapshot``,
``subscriptions`` and ``stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from shared import collectors
from shared.actor import Actor
from shared.backoff import Backoff
from shared.commands.base import Command
from shared.commands.snapshot import Snapshot, SnapshotReply
from shared.commands.subscriptions import Subscriptions
from shared.commands.table import CommandHandler
from shared.config import Config, ConfigError, ConnectorConfig
from shared.kalshi.credentials import Credentials, load_credentials
from shared.kalshi.discovery import MarketFilter
from shared.kalshi.endpoints import resolve
from shared.kalshi.rest import RestClient
from shared.messages import Control, Message
from shared.retry import Retry, RetryPolicy
from shared.tasks import finish

from .batching import by_market
from .link import AuthRejected, HandshakeFailed, Link, open_link
from .marketset import MarketSet
from .metrics import (
    AUTH_FAILURES,
    CONNECTED,
    CONTROL_REQUESTS,
    DECODE,
    PRIVATE_SKIPPED,
    RECONNECTS,
    SUBSCRIBED_MARKETS,
    SUBSCRIPTIONS,
    UPTIME,
    CoreExport,
)
from .pacing import CommandPacer, send_paced
from .session import Session
from .upkeep import MarketUpkeep
from .validity import Recovery

#: Re-run discovery on reconnect when the last one is older than this (lifecycle news may be missed).
REDISCOVER_AFTER_S = 60.0
_WATCH_INTERVAL_S = 0.1


class ConnectorWorker(Actor):
    name = "connector"
    durable = True

    def __init__(self, config: Config, *, instance: str = "") -> None:
        # The worker id is the publisher name: it carries the collector and the shard, so two
        # collectors (or two shards) never share a journal, a bus sequence or a JetStream msg id.
        cc = config.connector
        try:
            named, index = collectors.parse_instance(instance)
        except ValueError as exc:
            raise ConfigError(f"--instance: {exc}") from None
        self.collector = cc.collector if named is None else named
        if index is None and cc.shard_count > 1:
            index = cc.shard_index
        self.shard_index = index
        super().__init__(config, instance=collectors.instance(self.collector, index))

    # ---- lifecycle -------------------------------------------------------------------------
    async def setup(self) -> None:
        self.cc: ConnectorConfig = self.config.connector
        self.filter = MarketFilter.from_config(self.cc, self.shard_index)
        self.endpoints = resolve(self.config)
        self.creds: Credentials = load_credentials(self.config, self.endpoints.env)
        self.private = self._private_channels()
        self.rest = RestClient(self.endpoints.rest_url, signer=self._sign, timeout_s=self.cc.rest_timeout_s)
        self.markets = MarketSet(self.rest, self.filter, self._sleep)
        self.recovery = Recovery()
        # The cores count; this exports what they counted (after every batch, in _flush).
        self.export = CoreExport()
        self.unknown_types: set[str] = set()
        self.backoff = Backoff(
            self.cc.backoff_initial_s, self.cc.backoff_max_s, self.cc.backoff_reset_after_s
        )
        #: Paces reconnects; the backoff resets itself after a stable connection (connected/disconnected).
        self.reconnect = RetryPolicy(self.backoff, sleep=self._sleep)
        self.session: Session | None = None
        self.link: Link | None = None
        self.sendq: asyncio.Queue[str] = asyncio.Queue()
        self.upkeep = MarketUpkeep(
            cc=self.cc,
            markets=self.markets,
            recovery=self.recovery,
            session=lambda: self.session,
            stopping=self.stopping,
            log=self.log,
            sleep=self._sleep,
            publish=self._publish,
            flush=self._flush,
        )
        self.ctl = self.subscriber([f"ctl.{self.name}"])
        #: Every connector, every shard of this collector (the orderbook asks one line), this one.
        self._targets = {self.name, collectors.connector_id(self.collector, None), self.worker_id}
        self.last_frame = 0.0
        self.connected_at: float | None = None
        self.counts = {"reconnects": 0, "auth_failures": 0, "sessions": 0}
        wid = self.worker_id
        CONNECTED.labels(wid).set(0)
        UPTIME.labels(wid).set_function(
            lambda: time.monotonic() - self.connected_at if self.connected_at is not None else 0.0
        )
        SUBSCRIBED_MARKETS.labels(wid).set_function(lambda: len(self.markets))
        SUBSCRIPTIONS.labels(wid).set_function(lambda: len(self.session.table.by_sid) if self.session else 0)
        self.log.info(
            "connector configured",
            extra={
                "ctx": {
                    "env": self.endpoints.env,
                    "ws": self.endpoints.ws_url,
                    "credentials": self.creds.source,
                    "private_channels": list(self.private),
                    "shard": f"{self.filter.shard_index}/{self.filter.shard_count}",
                    "collector": self.collector,
                }
            },
        )

    async def main(self) -> None:
        self.spawn(self._control_loop(), name="control-loop")
        self.spawn(self.upkeep.lifecycle_loop(), name="lifecycle")
        self.spawn(self.upkeep.reconcile_loop(), name="reconcile")
        await self.upkeep.discover_until_done()
        while not self.stopping.is_set():
            reason = await self._connect_once()
            self._ended(reason)
            if self.stopping.is_set():
                return
            # A refused key waits its own (jittered) interval: retrying sooner only burns the limit.
            refused = (
                Retry("auth", self.cc.auth_backoff_s * random.uniform(0.75, 1.0))
                if reason == "auth"
                else None
            )
            delay = self.reconnect.next_delay(refused)
            self.log.info("reconnecting", extra={"ctx": {"reason": reason, "in_s": round(delay, 3)}})
            await self.reconnect.sleep(delay)
            if self.markets.stale or time.monotonic() - self.markets.discovered_at > REDISCOVER_AFTER_S:
                await self.upkeep.discover_once(initial=False)

    async def teardown(self) -> None:
        self.export(self.session, self.recovery)
        if self.link is not None:
            await self.link.close()
        await self.rest.close()
        self.ctl.close()

    def stats(self) -> dict[str, int]:
        s = self.session.stats() if self.session is not None else {}
        return {
            **self.counts,
            "connected": int(self.connected_at is not None),
            "markets": len(self.markets),
            "invalid_books": len(self.recovery.invalid),
            "open_gaps": len(self.recovery.open),
            "gaps_recovered": self.recovery.recovered,
            **{k: v for k, v in s.items() if k != "markets"},
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {Snapshot: self._on_snapshot, Subscriptions: self._on_subscriptions}

    async def _on_snapshot(self, cmd: Snapshot) -> SnapshotReply:
        CONTROL_REQUESTS.labels("snapshot").inc()
        return SnapshotReply(requested=self._snapshots(list(cmd.tickers) or None, "control"))

    async def _on_subscriptions(self, _: Subscriptions) -> dict[str, Any]:
        CONTROL_REQUESTS.labels("subscriptions").inc()
        s = self.session
        return {
            "conn": s.conn if s is not None else 0,
            "markets": self.markets.tickers(),
            "subscriptions": s.table.describe() if s is not None else [],
        }

    # ---- helpers ---------------------------------------------------------------------------
    def _private_channels(self) -> tuple[str, ...]:
        """The enabled private channels, if this connector signs as a real account (a key from
        the environment, as demo/prod require); the simulator's dev key has no account."""
        wanted = tuple(dict.fromkeys(self.cc.private_channels))
        if not wanted or self.creds.source == "environment":
            return wanted
        for ch in wanted:
            PRIVATE_SKIPPED.labels(ch).inc()
        self.log.warning(
            "private channels enabled but not subscribed: no Kalshi credentials "
            "(set KALSHI_KEY_ID and KALSHI_PRIVATE_KEY_PATH)",
            extra={"ctx": {"channels": list(wanted), "env": self.endpoints.env}},
        )
        return ()

    def _sign(self, method: str, path: str) -> dict[str, str]:
        return self.creds.headers(method, path, time.time_ns() // 1_000_000)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _publish(self, msgs: list[Message]) -> None:
        if msgs and self.pub is not None:
            self.pub.publish_many(by_market(msgs))

    def _flush(self, s: Session) -> None:
        """Publish what the session produced, queue its commands, hand lifecycle news on,
        export its counts and observations."""
        self._publish(s.take())
        self.export(s, self.recovery)
        for cmd in s.table.take_commands():
            self.sendq.put_nowait(cmd)
        if s.lifecycle:
            for m in s.lifecycle:
                self.upkeep.lifeq.put_nowait(m)
            s.lifecycle.clear()
        if s.rejected:
            self.markets.reject(s.rejected)
            self.log.warning(
                "Kalshi does not know these markets; dropped", extra={"ctx": {"tickers": s.rejected}}
            )
            s.rejected.clear()
        if s.lifecycle_gaps:
            self.markets.stale = True
            self.upkeep.reconcile(s.lifecycle_gaps)
            s.lifecycle_gaps = []

    def _snapshots(self, tickers: list[str] | None, source: str) -> list[str]:
        s = self.session
        if s is None:
            return []
        # Whoever asks for books (a restarted orderbook builder) also lacks their price
        # ladders: send the MarketMeta first so the snapshots can be tick-checked.
        metas = self.markets.markets
        self._publish([metas[t] for t in tickers if t in metas] if tickers else list(metas.values()))
        asked = s.request_snapshots(tickers, source, time.monotonic())
        self._flush(s)
        return asked

    # ---- one connection --------------------------------------------------------------------
    async def _connect_once(self) -> str:
        """Run one connection to its end; returns why it ended (the reconnect reason)."""
        cc = self.cc
        conn = time.time_ns()
        try:
            headers = self.creds.headers("GET", self.endpoints.ws_path, conn // 1_000_000)
            link = await open_link(
                self.endpoints.ws_url,
                headers,
                open_timeout=cc.open_timeout_s,
                max_size=cc.max_frame_bytes or None,
                max_queue=max(16, cc.max_batch * 2),
                compression=cc.compression,
            )
        except AuthRejected as exc:
            AUTH_FAILURES.inc()
            self.counts["auth_failures"] += 1
            self.log.error(
                "Kalshi refused the WebSocket handshake: the key id or private key is wrong, revoked, or "
                "belongs to another environment; waiting before trying again",
                extra={
                    "ctx": {"status": exc.status, "env": self.endpoints.env, "retry_in_s": cc.auth_backoff_s}
                },
            )
            return "auth"
        except HandshakeFailed as exc:
            self.log.warning(
                "WebSocket connect failed", extra={"ctx": {"reason": exc.reason, "error": str(exc)}}
            )
            return exc.reason
        now = time.monotonic()
        session = Session(
            conn,
            recovery=self.recovery,
            max_markets=cc.max_markets_per_subscription,
            resync_timeout_s=cc.resync_timeout_s,
            initial_timeout_s=cc.command_timeout_s,
            command_timeout_s=cc.command_timeout_s,
            use_yes_price=cc.use_yes_price,
            private=self.private,
            unknown_types=self.unknown_types,
        )
        self.link, self.session = link, session
        self.counts["sessions"] += 1
        self.last_frame = now
        self.sendq = asyncio.Queue()
        session.start(self.markets.tickers(), now)
        self._flush(session)
        self.log.info("connected", extra={"ctx": {"conn": conn, "markets": len(self.markets)}})
        tasks = [
            asyncio.create_task(self._reader(link, session)),
            asyncio.create_task(self._watch(link, session)),
            asyncio.create_task(self._sender(link, CommandPacer(cc.commands_per_s, session.counts, now=now))),
            asyncio.create_task(self._stop_watch()),
        ]
        reason = "crashed"
        first: asyncio.Task[str] | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = next(iter(done))
            reason = first.result()  # an exception here is the worker's crash, logged by the Actor
        finally:
            for t in tasks:
                if t is not first:
                    await finish(t, f"connection {conn} task {t.get_name()}", self._connection_task_failed)
            if reason == "stopping":
                try:
                    await asyncio.wait_for(link.close(), 2.0)
                except Exception as exc:  # the TCP abort below ends it anyway
                    self.log.warning(
                        "close handshake failed", extra={"ctx": {"conn": conn, "error": repr(exc)}}
                    )
            link.transport.abort()
            ts = time.time_ns()
            session.close(ts, "shutdown" if reason == "stopping" else "disconnect")
            self._flush(session)
            self.session = None
            self.link = None
        return reason

    def _connection_task_failed(self, what: str, exc: BaseException) -> None:
        # A second task of a connection failing while the first one's outcome ends it.
        self.log.error(what, exc_info=exc, extra={"ctx": {"error": repr(exc)}})

    async def _reader(self, link: Link, s: Session) -> str:
        max_batch = self.cc.max_batch
        try:
            while True:
                first = await link.recv(decode=False)
                batch = [first]
                while link.buffered() and len(batch) < max_batch:
                    batch.append(await link.recv(decode=False))
                now = time.monotonic()
                self.last_frame = now
                started = time.perf_counter()
                s.frames(batch, time.time_ns(), now)
                DECODE.observe((time.perf_counter() - started) / len(batch))
                self._flush(s)
                if s.broken:
                    return s.broken
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is not None and rcvd.code == 1009:
                return "frame_too_big"
            return "closed_by_server" if rcvd is not None else "connection_lost"

    async def _watch(self, link: Link, s: Session) -> str:
        stale = self.cc.stale_after_s
        while True:
            await asyncio.sleep(_WATCH_INTERVAL_S)
            now = time.monotonic()
            if now - max(self.last_frame, link.last_ping) > stale:
                self.log.warning(
                    "no frame and no ping: connection is dead",
                    extra={"ctx": {"silent_s": round(now - self.last_frame, 1)}},
                )
                return "stale"
            s.tick(now, time.time_ns())
            self._flush(s)
            if s.broken:
                return s.broken
            if self.connected_at is None and s.subscribed():
                self.connected_at = now
                self.backoff.connected(now)
                CONNECTED.labels(self.worker_id).set(1)
                self.ready = True
                self.log.info("subscribed", extra={"ctx": {"sids": len(s.table.by_sid)}})

    async def _sender(self, link: Link, pacer: CommandPacer) -> str:
        """The connection's commands, paced under Kalshi's command rate (see .pacing)."""
        try:
            await send_paced(self.sendq, link.send, pacer)
        except ConnectionClosed:
            return "connection_lost"
        raise AssertionError("send_paced returned")  # it runs until cancelled

    async def _stop_watch(self) -> str:
        await self.stopping.wait()
        return "stopping"

    def _ended(self, reason: str) -> None:
        now = time.monotonic()
        if reason != "stopping":
            RECONNECTS.labels(reason).inc()
            self.counts["reconnects"] += 1
        self.backoff.disconnected(now)
        self.connected_at = None
        CONNECTED.labels(self.worker_id).set(0)

    # ---- control ---------------------------------------------------------------------------
    async def _control_loop(self) -> None:
        while True:
            for m in await self.ctl.recv():
                if not isinstance(m, Control) or m.target not in self._targets:
                    continue
                CONTROL_REQUESTS.labels("bus:snapshot" if m.cmd == "snapshot" else "bus:unknown").inc()
                if m.cmd == "snapshot":
                    self._snapshots(m.tickers or None, "control")
                else:
                    self.log.warning("unknown bus control command", extra={"ctx": {"cmd": m.cmd[:40]}})


WORKER = ConnectorWorker
