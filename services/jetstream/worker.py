"""The JetStream bridge: the durable kinds, from the producers' journals into NATS JetStream.

  kxfeed worker jetstream      (``kxfeed up`` runs it when ``[jetstream] enabled = true``)

- Follows every publisher's journal (``<journal.dir>/<publisher>/``) from its consumer cursor
  ``consumers/jetstream``, a bounded chunk at a time (:mod:`.tail`).
- Publishes each record of a mirrored kind as one JetStream message (:mod:`.core`: subject,
  ``Nats-Msg-Id``, ``Kx-Kind``; the payload is the bus frame, byte for byte), with async PubAcks
  (:mod:`.link`), at most ``max_inflight`` unacknowledged.
- Moves a journal's cursor only over records JetStream acknowledged (and every one before), so a
  kill or a NATS outage loses nothing: what was not acknowledged is sent again, and the server
  drops what it already holds by ``Nats-Msg-Id``.
- A PubAck missing after ``ack_timeout_s``, a refused publish, or a reconnect: every record not
  acknowledged is queued again (``kxfeed_jetstream_resent_total{reason}``).
- The streams (one per ``[[jetstream.streams]]`` retention class) are created or updated at each
  connection. Lag: ``kxfeed_jetstream_lag_seconds`` / ``_lag_messages`` / ``_lag_unread_bytes``.

Not a producer: it journals nothing and publishes only its heartbeat on the bus. Later readers
of the streams (a writer with ``source = "jetstream"``, a sharded collector) need nothing from
here beyond the subjects and ids of :mod:`shared.jetstream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from nats.errors import Error as NatsError

from services.jetstream import metrics as M
from services.jetstream.core import AckLedger, Outgoing, Planner
from services.jetstream.link import NatsLink, PubAck
from services.jetstream.streams import problems, stream_of_kind
from services.jetstream.tail import JournalTail
from shared import journal
from shared.actor import Actor
from shared.backoff import Backoff
from shared.config import Config, ConfigError
from shared.jetstream_config import JetStreamConfig
from shared.log import BurstLog

CONSUMER = "jetstream"
_PUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DISCOVER_S = 1.0
_METRICS_S = 0.5


class JetStreamWorker(Actor):
    name = "jetstream"

    @classmethod
    def check_config(cls, config: Config) -> list[str]:
        return problems(config.jetstream)

    async def setup(self) -> None:
        self.js_cfg: JetStreamConfig = self.config.jetstream
        bad = problems(self.js_cfg)
        if bad:
            raise ConfigError("; ".join(bad))
        self.root = Path(self.config.journal.dir)
        self.planner = Planner(self.js_cfg.subject_prefix, stream_of_kind(self.js_cfg))
        self.ledger = AckLedger(self.js_cfg.max_inflight)
        self.tails: dict[str, JournalTail] = {}
        self.burst = BurstLog(self.log)
        self.link = NatsLink(self.js_cfg, self.worker_id, self.log, self._on_ack, self._on_state)
        self._rewind_due: tuple[float, str] | None = None
        self._dirty: dict[str, journal.Position] = {}
        #: "messages": bus messages JetStream acknowledged (the status screen's MSG/S).
        self._counts = dict.fromkeys(
            ("messages", "published", "acked", "duplicates", "refused", "resent", "too_large"), 0
        )
        self._acked: dict[str, int] = {}
        self._dups: dict[str, int] = {}
        self._published: dict[str, int] = {}
        self._mirrored: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._ensure_task: asyncio.Task[None] | None = None
        self._discover()
        self.ready = True

    # ---- journals ------------------------------------------------------------------------------
    def _discover(self) -> None:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            pub = path.name
            if pub in self.tails or pub == "consumers" or not _PUB_ID.match(pub) or not path.is_dir():
                continue
            cursor, state = journal.load_cursor(path, CONSUMER)
            if cursor is None:
                segments = journal.list_segments(path)
                if not segments:
                    continue
                cursor = journal.Position(segments[0], 0)
                # Registered at once, so retention keeps what the bridge has not mirrored yet.
                journal.write_cursor(path, CONSUMER, cursor)
            elif state == "recovered":
                journal.write_cursor(path, CONSUMER, cursor)
            self.tails[pub] = JournalTail(path, cursor)
            self.log.info(
                "jetstream: following a journal",
                extra={"ctx": {"publisher": pub, "segment": cursor.segment, "offset": cursor.offset}},
            )

    def _read(self) -> int:
        """Read what the ledger has room for; records read."""
        got = 0
        for pub, tail in self.tails.items():
            room = self.js_cfg.max_pending - self.ledger.held_records
            if room <= 0 or self.ledger.held_bytes >= self.js_cfg.max_pending_bytes:
                break
            step = tail.read(room)
            for seg in step.torn_segments:
                M.TORN_SEGMENTS.inc()
                self.log.error(
                    "jetstream: a closed journal segment ends in a torn record; going on with the next",
                    extra={"ctx": {"publisher": pub, "segment": seg}},
                )
            if step.lost_segments:
                M.LOST_SEGMENTS.inc(len(step.lost_segments))
                self.log.error(
                    "jetstream: journal segments were deleted before the bridge read them",
                    extra={"ctx": {"publisher": pub, "segments": step.lost_segments[:20]}},
                )
            for rec in step.records:
                planned = self.planner.plan(rec.payload)
                if planned.bad:
                    M.BAD_RECORDS.inc()
                    self.burst.event(
                        f"bad:{pub}",
                        "jetstream: a journal record did not decode; passed",
                        publisher=pub,
                        segment=rec.end.segment,
                        end=rec.end.offset,
                    )
                elif planned.out is None:
                    M.SKIPPED.inc()
                self.ledger.add(pub, rec.end, planned.out, planned.msgs)
            got += len(step.records)
        return got

    # ---- acks ----------------------------------------------------------------------------------
    def _on_ack(self, tok: int, ack: PubAck | None, refused: str) -> None:
        if refused:
            entry = self.ledger.nack(tok)
            M.REFUSED.labels(refused).inc()
            self._counts["refused"] += 1
            self.burst.event(
                f"refused:{refused}",
                "jetstream: the server refused a publish; sending again after a backoff",
                reason=refused,
                subject=entry.out.subject if entry is not None and entry.out is not None else "",
                error=ack.error.description if ack is not None and ack.error is not None else "",
            )
            if self._rewind_due is None:
                self._rewind_due = (time.monotonic() + self._refuse_backoff.delay(), "refused")
            if refused == "no_stream" and (self._ensure_task is None or self._ensure_task.done()):
                # The stream went (deleted, or a server that lost its store): make it again.
                self._ensure_task = asyncio.get_running_loop().create_task(self._ensure_again())
            return
        entry = self.ledger.ack(tok)
        if entry is None:
            M.LATE_ACKS.inc()
            return
        assert ack is not None and entry.out is not None
        out = entry.out
        # Counted here, exported every _METRICS_S: a labelled counter call per ack cost a fifth
        # of the bridge's CPU.
        self._acked[out.stream] = self._acked.get(out.stream, 0) + 1
        self._mirrored[out.kind] = self._mirrored.get(out.kind, 0) + out.msgs
        self._counts["acked"] += 1
        self._counts["messages"] += out.msgs
        if ack.duplicate:
            self._dups[out.stream] = self._dups.get(out.stream, 0) + 1
            self._counts["duplicates"] += 1
        if self._refuse_backoff.attempt:
            self._refuse_backoff.reset()
        self._wake.set()

    def _on_state(self, up: bool) -> None:
        M.CONNECTED.set(1 if up else 0)
        if self.stopping.is_set():
            return
        if up:
            # PubAcks of what was in flight when the connection went may never come; and a
            # server that came back without its store needs the streams again.
            self._rewind_due = (0.0, "reconnect")
            self.log.info("jetstream: reconnected to NATS")
            self._ensure_task = asyncio.get_running_loop().create_task(self._ensure_again())
        else:
            M.DISCONNECTS.inc()
            self.log.warning(
                "jetstream: lost the NATS connection; the cursor waits, nothing is lost",
                extra={"ctx": {"inflight": self.ledger.inflight(), "held": self.ledger.held_records}},
            )
        self._wake.set()

    # ---- main ----------------------------------------------------------------------------------
    async def _connect(self) -> None:
        backoff = Backoff(self.js_cfg.retry_initial_s, self.js_cfg.retry_max_s)
        while not self.stopping.is_set():
            try:
                await self.link.connect()
                done = await self.link.ensure_streams()
            except ConfigError:
                raise
            except (NatsError, OSError, TimeoutError) as exc:
                M.CONNECT_FAILURES.inc()
                delay = backoff.delay()
                self.burst.event(
                    "connect",
                    "jetstream: cannot reach NATS JetStream; retrying",
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                    retry_in_s=round(delay, 2),
                )
                await self.link.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                continue
            M.CONNECTED.set(1)
            self.log.info("jetstream: streams ready", extra={"ctx": {"streams": done}})
            return

    async def _ensure_again(self) -> None:
        try:
            await self.link.ensure_streams()
        except ConfigError as exc:
            self.log.error(
                "jetstream: the server refused a stream after a reconnect", extra={"ctx": {"error": str(exc)}}
            )
        except (NatsError, OSError, TimeoutError) as exc:
            # Publishes are refused until the streams exist; the refusal path retries them.
            self.log.warning(
                "jetstream: could not check the streams after a reconnect",
                extra={"ctx": {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}},
            )

    async def main(self) -> None:
        self._refuse_backoff = Backoff(self.js_cfg.retry_initial_s, self.js_cfg.retry_max_s)
        M.CONNECTED.set(0)
        # Connecting runs beside the loop: while NATS is away the journals are still read (up to
        # max_pending) and the lag is still reported.
        self.spawn(self._connect(), name="connect")
        poll_s = self.js_cfg.poll_ms / 1000
        next_discover = next_cursor = next_metrics = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_discover:
                self._discover()
                next_discover = now + _DISCOVER_S
            got = self._read()
            sent = await self._send(now)
            if now >= next_cursor:
                self._advance()
                next_cursor = now + self.js_cfg.cursor_interval_s
            if now >= next_metrics:
                self._metrics()
                next_metrics = now + _METRICS_S
            if got or sent:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)

    async def _send(self, now: float) -> int:
        due = self._rewind_due
        if due is not None and now >= due[0]:
            self._rewind_due = None
            again = self.ledger.rewind()
            if again:
                M.RESENT.labels(due[1]).inc(again)
                self._counts["resent"] += again
        oldest = self.ledger.oldest_inflight_sent()
        if oldest is not None and now - oldest > self.js_cfg.ack_timeout_s and self._rewind_due is None:
            self.burst.event(
                "ack_timeout",
                "jetstream: PubAcks overdue; sending the unacknowledged records again",
                inflight=self.ledger.inflight(),
                timeout_s=self.js_cfg.ack_timeout_s,
            )
            self._rewind_due = (now, "ack_timeout")
        if not self.link.connected or not self.ledger.waiting():
            return 0
        batch = self._fit(self.ledger.next_batch(now, limit=2000))
        sent = await self.link.publish(batch)
        if sent < len(batch):
            self.ledger.unsend([tok for tok, _ in batch[sent:]])
        for _, out in batch[:sent]:
            self._published[out.stream] = self._published.get(out.stream, 0) + 1
        self._counts["published"] += sent
        return sent

    def _fit(self, batch: list[tuple[int, Outgoing]]) -> list[tuple[int, Outgoing]]:
        """Drop (counted, logged) a record larger than the server takes: the server would close
        the connection on it, again after every reconnect, and the bridge would never move on."""
        limit = self.link.max_payload()
        if all(len(o.payload) + len(o.headers) <= limit for _, o in batch):
            return batch
        fits = []
        for tok, out in batch:
            if len(out.payload) + len(out.headers) <= limit:
                fits.append((tok, out))
                continue
            self.ledger.ack(tok)
            M.TOO_LARGE.labels(out.stream).inc()
            self._counts["too_large"] += 1
            self.log.error(
                "jetstream: a record is larger than the NATS server's max_payload; not mirrored",
                extra={"ctx": {"msg_id": out.msg_id, "bytes": len(out.payload), "max_payload": limit}},
            )
        return fits

    def _advance(self) -> None:
        self._dirty.update(self.ledger.advance())
        for pub, pos in list(self._dirty.items()):
            tail = self.tails.get(pub)
            if tail is None:
                continue
            try:
                journal.write_cursor(tail.directory, CONSUMER, pos)
            except OSError as exc:
                self.burst.event(f"cursor:{pub}", "jetstream: cannot write the cursor", error=str(exc))
                continue
            M.CURSOR_WRITES.inc()
            del self._dirty[pub]

    def _metrics(self) -> None:
        for counts, metric in (
            (self._acked, M.ACKED),
            (self._dups, M.DUPLICATES),
            (self._published, M.PUBLISHED),
            (self._mirrored, M.MESSAGES),
        ):
            for label, n in counts.items():
                metric.labels(label).inc(n)
            counts.clear()
        M.INFLIGHT.set(self.ledger.inflight())
        M.LAG_MESSAGES.set(self.ledger.held_msgs)
        M.LAG_BYTES.set(sum(t.behind_bytes() for t in self.tails.values()))
        oldest = self.ledger.oldest_unacked_ts()
        M.LAG_SECONDS.set(0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9))

    async def drain(self) -> None:
        """Wait (bounded by the drain deadline) for the PubAcks in flight, then write the cursors."""
        deadline = time.monotonic() + max(0.0, self.settings.drain_deadline_s - 0.5)
        while self.ledger.inflight() and self.link.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._advance()
        self._metrics()

    async def teardown(self) -> None:
        if hasattr(self, "link"):
            await self.link.close()
        if hasattr(self, "burst"):
            self.burst.flush()

    def stats(self) -> dict[str, int]:
        if not hasattr(self, "ledger"):
            return {}
        return {
            **self._counts,
            "inflight": self.ledger.inflight(),
            "held_records": self.ledger.held_records,
            "lag_messages": self.ledger.held_msgs,
            # Not read yet (a bridge just started holds nothing and would look caught up).
            "unread_bytes": sum(t.behind_bytes() for t in self.tails.values()),
            "journals": len(self.tails),
            "connected": int(self.link.connected),
        }


WORKER = JetStreamWorker
