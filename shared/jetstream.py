"""How kxfeed's bus frames look in NATS JetStream: subjects, message ids, headers (pure).

Shared by the ``jetstream`` bridge (which publishes) and ``kxfeed tap --jetstream`` (which reads).

- Subject: ``<prefix>.<kind>.<series>.<ticker>`` where ``<ticker>`` is the bus topic's suffix
  (a market ticker, an event ticker for ``fee``/``evlifecycle``, ``sid-<conn>-<sid>`` for a gap of
  several markets) and ``<series>`` its part before the first ``-``. A character a subject token
  may not hold (``.``, ``*``, ``>``, whitespace, anything outside ``[A-Za-z0-9_-]``) is written
  ``%XX`` (its UTF-8 bytes in hex), ``%`` itself included, so the mapping is one-to-one.
- Payload: the bus frame's payload, byte for byte (a msgpack array of messages of one topic).
- ``Nats-Msg-Id``: ``<publisher>:<epoch>:<kind>:<seq>`` of the frame's last message. A journal
  record never changes, so a record sent again (after a bridge kill or a lost PubAck) carries the
  same id and the server drops it within the stream's duplicate window.
- ``Kx-Kind``: the bus kind, so a reader can pick a decoder without opening the payload.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MSG_ID_HEADER = "Nats-Msg-Id"
KIND_HEADER = "Kx-Kind"

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A publisher id, as the journal directories are named (shared.journal).
_PUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_SEQ = 2**63 - 1


def token(text: str) -> str:
    """``text`` as one subject token (never empty, never with a separator or wildcard)."""
    if not text:
        return "%"  # a lone '%' cannot come out of escaping, so the empty text stays distinct
    if _SAFE.fullmatch(text):
        return text
    return "".join(c if c in _TOKEN_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def untoken(tok: str) -> str | None:
    """The text :func:`token` made ``tok`` from; None when ``tok`` is not one of its outputs."""
    if tok == "%":
        return ""
    if "%" not in tok:
        return tok if _SAFE.fullmatch(tok) else None
    out = bytearray()
    i = 0
    while i < len(tok):
        c = tok[i]
        if c == "%":
            hexpart = tok[i + 1 : i + 3]
            if len(hexpart) != 2 or not all(h in "0123456789ABCDEF" for h in hexpart):
                return None
            out.append(int(hexpart, 16))
            i += 3
        elif c in _TOKEN_SAFE:
            out.append(ord(c))
            i += 1
        else:
            return None
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def series_of(suffix: str) -> str:
    """The series part of a topic suffix: ``KXNFLGAME-25NOV23BUFHOU-BUF`` -> ``KXNFLGAME``."""
    return suffix.split("-", 1)[0]


def subject(prefix: str, topic: str) -> str:
    """The subject of bus topic ``<kind>.<suffix>`` under ``prefix``."""
    kind, _, suffix = topic.partition(".")
    return f"{prefix}.{kind}.{token(series_of(suffix))}.{token(suffix)}"


def kind_subjects(prefix: str, kind: str) -> str:
    """The subject filter of every message of ``kind`` (a stream's subjects)."""
    return f"{prefix}.{kind}.>"


class MsgId(NamedTuple):
    pub: str
    epoch: int
    kind: str
    seq: int


def msg_id(pub: str, epoch: int, kind: str, seq: int) -> str:
    return f"{pub}:{epoch}:{kind}:{seq}"


def parse_msg_id(text: str) -> MsgId | None:
    """The parts of a ``Nats-Msg-Id``; None for anything else (total: hostile headers are normal)."""
    if len(text) > 256:
        return None
    parts = text.split(":")
    if len(parts) != 4:
        return None
    pub, epoch, kind, seq = parts
    if not _PUB_ID.match(pub) or not _SAFE.fullmatch(kind):
        return None
    if not (epoch.isdigit() and seq.isdigit() and len(epoch) <= 19 and len(seq) <= 19):
        return None
    e, s = int(epoch), int(seq)
    if e > _MAX_SEQ or not 1 <= s <= _MAX_SEQ:
        return None
    return MsgId(pub, e, kind, s)


def redact_server(url: str) -> str:
    """A NATS server URL fit for a log line or a printed config: user and password (or a token)
    replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rsplit("@", 1)[-1]
    host = rest.rsplit("@", 1)
    return f"{scheme}://***@{host[1]}" if len(host) == 2 else url


def valid_pub(pub: str) -> bool:
    """A publisher id as journals and message ids hold it."""
    return bool(_PUB_ID.match(pub))


def valid_prefix(prefix: str) -> bool:
    """A subject prefix: one or more safe tokens joined by dots."""
    return bool(prefix) and all(_SAFE.fullmatch(t) for t in prefix.split("."))


def valid_stream_name(name: str) -> bool:
    return bool(_STREAM_NAME.match(name))


def valid_filter(subject: str) -> bool:
    """A subscription subject: non-empty tokens, ``*`` as a whole token, ``>`` only last."""
    if not subject or len(subject) > 1024 or any(c in subject for c in " \t\r\n"):
        return False
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if not tok:
            return False
        if tok == ">":
            if i != len(tokens) - 1:
                return False
        elif ("*" in tok and tok != "*") or ">" in tok:
            return False
    return True


def covers(wide: str, narrow: str) -> bool:
    """Whether every subject ``narrow`` matches is matched by ``wide`` (both valid filters)."""
    w, n = wide.split("."), narrow.split(".")
    for i, tok in enumerate(w):
        if tok == ">":
            return len(n) > i
        if i >= len(n):
            return False
        if n[i] == ">":
            return False
        if tok != "*" and (n[i] == "*" or n[i] != tok):
            return False
    return len(n) == len(w)


def consumer_filters(wanted: str, stream_subjects: list[str]) -> list[str]:
    """The filters a consumer of one stream takes for ``wanted``: ``wanted`` itself where one of
    the stream's subjects covers it, else each of the stream's subjects that ``wanted`` covers."""
    if any(covers(s, wanted) for s in stream_subjects):
        return [wanted]
    return [s for s in stream_subjects if covers(wanted, s)]
