"""``kxfeed tap --jetstream SUBJECT [--since TIME]``: the feed from JetStream, from anywhere.

One ephemeral ordered consumer per stream that holds part of SUBJECT (``kxfeed.>`` spans the
book and the events streams): from TIME (``--since``), else only what arrives from now on.
Each message is a bus frame; its messages are printed as ``kxfeed tap`` prints them, one JSON
line each. Nothing a server sends is trusted: a payload that does not decode, or whose
``Kx-Kind`` disagrees with it, is counted and said on stderr (once per kind of fault), never a
crash. A consumer that resets before its first message may start again from the stream's
beginning (nats-py): messages stored before TIME are skipped, by the server's timestamp.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from nats.errors import Error as NatsError

from services.cli.common import Printing
from services.cli.instants import instant
from shared import jetstream as js
from shared.config import Config
from shared.messages import BATCH_DECODER, DECODE_ERRORS, JSON_ENCODER, to_jsonable


class TapFaults:
    """What did not print, by fault; each fault said once on stderr."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, fault: str, detail: str) -> None:
        n = self.counts.get(fault, 0)
        self.counts[fault] = n + 1
        if n == 0:
            print(f"kxfeed tap: {fault}: {detail[:200]} (counted; said once)", file=sys.stderr)


def frame_lines(data: bytes, kind_header: str, faults: TapFaults) -> list[str]:
    """The JSON lines of one JetStream message's payload (empty when it does not decode)."""
    try:
        msgs = BATCH_DECODER.decode(data)
    except DECODE_ERRORS as exc:
        faults.add("undecodable payload", f"{type(exc).__name__}: {exc}")
        return []
    if kind_header and msgs and any(m.kind != kind_header for m in msgs):
        faults.add("Kx-Kind header disagrees with the payload", repr(kind_header))
    return [JSON_ENCODER.encode(to_jsonable(m)).decode() for m in msgs]


def stored_ns(msg: Any) -> int | None:
    """The server's store time of a JetStream message, from its reply subject (None: unreadable)."""
    try:
        ts = msg.metadata.timestamp
    except (ValueError, IndexError, AttributeError, TypeError, NatsError, OverflowError):
        return None
    if not isinstance(ts, datetime):
        return None
    return int(ts.timestamp() * 1e9)


async def _tap(args: argparse.Namespace, cfg: Config, since: datetime | None) -> int:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    subject = args.jetstream
    opts: dict[str, Any] = {
        "servers": list(cfg.jetstream.servers),
        "connect_timeout": 5,
        "max_reconnect_attempts": -1,
    }
    if cfg.jetstream.creds_file:
        opts["user_credentials"] = cfg.jetstream.creds_file
    try:
        nc = await nats.connect(**opts)
    except (nats.errors.Error, OSError) as exc:
        where = f"{len(cfg.jetstream.servers)} server(s) in [jetstream] servers"
        print(f"kxfeed tap: cannot reach NATS ({where}): {type(exc).__name__}", file=sys.stderr)
        return 1
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=10_000)
    try:
        jsc = nc.jetstream()
        plan: list[tuple[str, str]] = []
        for info in await nc.jsm().streams_info():
            name = info.config.name or ""
            for f in js.consumer_filters(subject, list(info.config.subjects or [])):
                plan.append((name, f))
        if not plan:
            print(f"kxfeed tap: no JetStream stream holds {subject!r}", file=sys.stderr)
            return 1

        async def on_msg(msg: Any) -> None:
            await queue.put(msg)

        for name, f in plan:
            if since is not None:
                config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
            else:
                config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            await jsc.subscribe(f, stream=name, cb=on_msg, ordered_consumer=True, config=config)
        return await _print(args, queue, since, f"JetStream messages on {subject!r}")
    finally:
        await nc.close()


async def _print(
    args: argparse.Namespace, queue: asyncio.Queue[Any], since: datetime | None, what: str
) -> int:
    faults = TapFaults()
    floor = int(since.timestamp() * 1e9) if since is not None else None
    printing = Printing("kxfeed tap", what, args.count, args.timeout)
    out = sys.stdout
    while not printing.done:
        try:
            msg = await asyncio.wait_for(queue.get(), 0.2)
        except TimeoutError:
            status = printing.idle()
            if status is not None:
                return status
            continue
        printing.heard()
        if floor is not None:
            at = stored_ns(msg)
            if at is not None and at < floor:
                continue
        headers = msg.headers or {}
        kind = headers.get(js.KIND_HEADER, "")
        for line in frame_lines(msg.data, kind if isinstance(kind, str) else "", faults):
            out.write(line + "\n")
            if printing.printed():
                break
        out.flush()
    if faults.counts:
        print(f"kxfeed tap: not printed: {faults.counts}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, cfg: Config) -> int:
    if not js.valid_filter(args.jetstream):
        print(f"kxfeed tap: --jetstream {args.jetstream!r} is not a NATS subject (e.g. 'kxfeed.trade.>')",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.prefixes != [""]:
        print("kxfeed tap: give bus topic prefixes or --jetstream SUBJECT, not both", file=sys.stderr)
        return 2
    since: datetime | None = None
    if args.since:
        try:
            since = instant(args.since, datetime.now(UTC), "--since")
        except ValueError as exc:
            print(f"kxfeed tap: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_tap(args, cfg, since))
    except KeyboardInterrupt:
        return 0
