"""The retention classes of ``[jetstream] streams``: checks, and the JetStream stream configs (pure)."""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from shared import jetstream as js
from shared.jetstream_config import JetStreamConfig, StreamClass
from shared.messages import KINDS


def problems(cfg: JetStreamConfig) -> list[str]:
    """What is wrong with the section, one line each (empty: fine)."""
    out: list[str] = []
    if not cfg.servers:
        out.append("[jetstream] servers: name at least one NATS server")
    for url in cfg.servers:
        if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
            out.append(f"[jetstream] servers: {redact(url)!r} is not a nats:// (or tls://) URL")
    if not js.valid_prefix(cfg.subject_prefix):
        out.append(
            f"[jetstream] subject_prefix {cfg.subject_prefix!r}: dot-separated tokens of letters, "
            "digits, '_' and '-'"
        )
    if not cfg.streams:
        out.append("[jetstream] streams: configure at least one stream")
    seen_kind: dict[str, str] = {}
    names: set[str] = set()
    for s in cfg.streams:
        if not js.valid_stream_name(s.name):
            out.append(f"[jetstream] stream {s.name!r}: a name is 1-64 letters, digits, '_' or '-'")
        if s.name in names:
            out.append(f"[jetstream] stream {s.name!r} is configured twice")
        names.add(s.name)
        if not s.kinds:
            out.append(f"[jetstream] stream {s.name!r}: no kinds")
        for kind in s.kinds:
            cls = KINDS.get(kind)
            if cls is None:
                out.append(f"[jetstream] stream {s.name!r}: unknown kind {kind!r}")
            elif not cls.durable:
                out.append(f"[jetstream] stream {s.name!r}: kind {kind!r} is not durable (never journaled)")
            elif kind in seen_kind:
                out.append(f"[jetstream] kind {kind!r} is in streams {seen_kind[kind]!r} and {s.name!r}")
            else:
                seen_kind[kind] = s.name
    if cfg.retry_max_s < cfg.retry_initial_s:
        out.append("[jetstream] retry_max_s must be at least retry_initial_s")
    return out


def stream_of_kind(cfg: JetStreamConfig) -> dict[str, str]:
    return {kind: s.name for s in cfg.streams for kind in s.kinds}


def stream_config(prefix: str, s: StreamClass) -> StreamConfig:
    """The JetStream config of one retention class (nats-py takes durations in seconds)."""
    return StreamConfig(
        name=s.name,
        subjects=[js.kind_subjects(prefix, kind) for kind in s.kinds],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE if s.storage == "file" else StorageType.MEMORY,
        num_replicas=s.replicas,
        max_age=s.max_age_s,
        max_bytes=s.max_bytes,
        duplicate_window=s.duplicate_window_s,
        discard=DiscardPolicy.OLD,
    )


def redact(url: str) -> str:
    return js.redact_server(url)
