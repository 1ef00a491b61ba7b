"""The bridge's NATS connection: connect, create or update the streams, publish with async PubAcks.

Each record is published with a reply subject ``<inbox>.<token>`` under one wildcard
subscription, so a PubAck costs one message and a dict lookup (no future or task per publish).
The ack's JSON is decoded with a typed decoder and range-checked; anything else is a refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from services.jetstream.core import Outgoing
from services.jetstream.streams import stream_config
from shared import jetstream as js
from shared.config import ConfigError
from shared.jetstream_config import JetStreamConfig

_U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _ApiError(msgspec.Struct):
    code: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    err_code: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class PubAck(msgspec.Struct):
    stream: Annotated[str, msgspec.Meta(max_length=256)] = ""
    seq: _U63 = 0
    duplicate: bool = False
    error: _ApiError | None = None


_ACK = msgspec.json.Decoder(PubAck)
#: The client internals the joined publish uses (see NatsLink._publish_joined).
_FAST = all(hasattr(Client, a) for a in ("_send_command", "_flush_pending"))
_MAX_TOKEN_DIGITS = 19

#: (token, ack or None, refusal reason or "") -> None
AckHandler = Callable[[int, PubAck | None, str], None]


class NatsLink:
    def __init__(
        self,
        cfg: JetStreamConfig,
        name: str,
        log: logging.Logger,
        on_ack: AckHandler,
        on_state: Callable[[bool], None],
    ) -> None:
        self.cfg = cfg
        self.name = name
        self.log = log
        self.on_ack = on_ack
        self.on_state = on_state
        self.nc: Client | None = None
        self._inbox = ""
        self._inbox_b = b""
        self._cut = 0
        #: Set once the streams are checked: a publish before would find no stream for its subject.
        self.streams_ready = False

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected and self.streams_ready

    async def connect(self) -> None:
        """One attempt (raises on failure); once connected, nats-py reconnects by itself."""

        async def disconnected() -> None:
            self.on_state(False)

        async def reconnected() -> None:
            self.on_state(True)

        async def error(exc: Exception) -> None:
            self.log.warning("jetstream: NATS connection error", extra={"ctx": {"error": str(exc)[:300]}})

        opts: dict[str, Any] = {
            "servers": list(self.cfg.servers),
            "name": self.name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.cfg.retry_initial_s,
            "connect_timeout": 2,
            "ping_interval": self.cfg.ping_interval_s,
            "max_outstanding_pings": self.cfg.max_outstanding_pings,
            "disconnected_cb": disconnected,
            "reconnected_cb": reconnected,
            "error_cb": error,
            "pending_size": 64 * 1024 * 1024,
        }
        if self.cfg.creds_file:
            opts["user_credentials"] = self.cfg.creds_file
        nc = await nats.connect(**opts)
        self._inbox = nc.new_inbox()
        self._inbox_b = f"{self._inbox}.".encode()
        self._cut = len(self._inbox) + 1
        await nc.subscribe(
            f"{self._inbox}.*", cb=self._on_reply, pending_msgs_limit=10_000_000, pending_bytes_limit=-1
        )
        self.nc = nc
        self.log.info(
            "jetstream: connected to NATS",
            extra={"ctx": {"server": _where(nc), "servers": len(self.cfg.servers)}},
        )

    async def ensure_streams(self) -> list[str]:
        """Create each retention class's stream, or update it to the configured settings.

        A setting the server refuses (replicas above the cluster's size, a subject taken by
        another stream) is a configuration error: retrying cannot fix it.
        """
        assert self.nc is not None
        jsm = self.nc.jsm()
        done = []
        for s in self.cfg.streams:
            want = stream_config(self.cfg.subject_prefix, s)
            try:
                try:
                    await jsm.stream_info(s.name)
                except NotFoundError:
                    await jsm.add_stream(want)
                    done.append(f"created {s.name}")
                else:
                    await jsm.update_stream(want)
                    done.append(f"updated {s.name}")
            except ServiceUnavailableError:
                raise  # JetStream not up yet (a restarting server): retried by the caller
            except APIError as exc:
                raise ConfigError(
                    f"[jetstream] stream {s.name!r}: the NATS server refused it: {exc.description}"
                ) from exc
        self.streams_ready = True
        return done

    async def publish(self, batch: list[tuple[int, Outgoing]]) -> int:
        """Send ``batch`` in order; how many went out (the rest stays for after a reconnect)."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            return 0
        if _FAST:
            return await self._publish_joined(nc, batch)
        inbox = self._inbox
        sent = 0
        try:
            for tok, out in batch:
                await nc.publish(
                    out.subject,
                    out.payload,
                    reply=f"{inbox}.{tok}",
                    headers={js.MSG_ID_HEADER: out.msg_id, js.KIND_HEADER: out.kind},
                )
                sent += 1
        except NatsError as exc:
            self._publish_failed(exc, len(batch) - sent)
        return sent

    async def _publish_joined(self, nc: Client, batch: list[tuple[int, Outgoing]]) -> int:
        """The whole batch as one write of HPUB commands.

        nats-py's ``publish`` validates and encodes the headers dict of every message: with it,
        that is most of the bridge's CPU. The header block is built once per record instead
        (``Outgoing.headers``, from checked tokens) and the commands are queued with the
        client's own ``_send_command`` and flushed by its flusher, exactly as ``publish`` does
        after its encoding (nats-py 2.x; the plain path is used when those are missing).
        """
        inbox = self._inbox_b
        parts: list[bytes] = []
        for tok, out in batch:
            hdr = out.headers
            parts.append(
                b"HPUB %b %b%d %d %d\r\n%b%b\r\n"
                % (out.subject.encode(), inbox, tok, len(hdr), len(hdr) + len(out.payload), hdr, out.payload)
            )
        try:
            await nc._send_command(b"".join(parts))
            if nc._flush_queue is not None and nc._flush_queue.empty():
                await nc._flush_pending()
        except NatsError as exc:
            self._publish_failed(exc, len(batch))
            return 0
        return len(batch)

    def _publish_failed(self, exc: Exception, unsent: int) -> None:
        self.log.warning(
            "jetstream: publish failed; the rest is sent after the reconnect",
            extra={"ctx": {"error": str(exc)[:300], "unsent": unsent}},
        )

    def max_payload(self) -> int:
        """The largest message the connected server takes (its INFO; 1 MiB by default)."""
        return self.nc.max_payload if self.nc is not None else 1024 * 1024

    async def _on_reply(self, msg: Msg) -> None:
        tail = msg.subject[self._cut :]
        if not tail.isdigit() or len(tail) > _MAX_TOKEN_DIGITS:
            self.on_ack(0, None, "garbled")
            return
        tok = int(tail)
        headers = msg.headers or {}
        if headers.get("Status") == "503":
            self.on_ack(tok, None, "no_stream")
            return
        try:
            ack = _ACK.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.on_ack(tok, None, "garbled")
            return
        if ack.error is not None:
            self.on_ack(tok, ack, "error")
            return
        self.on_ack(tok, ack, "")

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        self.streams_ready = False
        if nc is not None and not nc.is_closed:
            try:
                await nc.drain()
            except (NatsError, TimeoutError, OSError):
                await nc.close()


def _where(nc: Client) -> str:
    """host:port of the server ``nc`` is connected to (never the URL's user or password)."""
    url = nc.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else ""
