"""What can still be read of a WebSocket frame the typed decode refused, and why it was refused.

:data:`~shared.kalshi.ws.FRAME_DECODER` refuses a frame as a whole; the connector still
needs to know its type (an unknown type is counted apart from a malformed known one), and,
for a sequenced frame, its sid, seq and market (a bad delta holds its place in the sid's
sequence). Every function here is total: it never raises, whatever the bytes.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import msgspec

from shared.kalshi.ws import Seq, Sid
from shared.messages import DECODE_ERRORS

_NULL = msgspec.Raw(b"null")


class _Envelope(msgspec.Struct):
    # Raw: each field is read on its own, so one misshapen field cannot hide the others.
    type: msgspec.Raw = _NULL
    sid: msgspec.Raw = _NULL
    seq: msgspec.Raw = _NULL
    msg: msgspec.Raw = _NULL


class _TickerOf(msgspec.Struct):
    market_ticker: msgspec.Raw = _NULL


class Envelope(NamedTuple):
    """What can still be read of a frame the typed decode refused (None: absent or unusable)."""

    type: str
    sid: int | None
    seq: int | None
    ticker: str | None


_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_TICKER_DECODER = msgspec.json.Decoder(_TickerOf)
_STR = msgspec.json.Decoder(str)
_SID = msgspec.json.Decoder(Sid)
_SEQ = msgspec.json.Decoder(Seq)


_T = TypeVar("_T")


def _read(decoder: msgspec.json.Decoder[_T], raw: msgspec.Raw) -> _T | None:
    try:
        return decoder.decode(raw)
    except DECODE_ERRORS:
        return None


def frame_envelope(raw: bytes | str) -> Envelope | None:
    """Type, sid, seq and ``msg.market_ticker`` of a frame that failed the typed decode (each
    None when absent, mistyped or out of range), or None if it is not a JSON object with a
    string ``type``. Total: never raises."""
    try:
        env = _ENVELOPE_DECODER.decode(raw)
    except DECODE_ERRORS:
        return None
    kind = _read(_STR, env.type)
    if kind is None:
        return None
    inner = _read(_TICKER_DECODER, env.msg)
    ticker = _read(_STR, inner.market_ticker) if inner is not None else None
    return Envelope(kind, _read(_SID, env.sid), _read(_SEQ, env.seq), ticker)


def frame_type(raw: bytes | str) -> tuple[str, int | None, int | None] | None:
    """``(type, sid, seq)`` of :func:`frame_envelope`."""
    env = frame_envelope(raw)
    return None if env is None else (env.type, env.sid, env.seq)


_RANGE_MESSAGES = ("Expected `int` >=", "Expected `int` <=")


def is_range_error(exc: Exception) -> bool:
    """A ValidationError raised by a numeric bound (``Expected `int` <= ...``), not by a type."""
    return isinstance(exc, msgspec.ValidationError) and str(exc).startswith(_RANGE_MESSAGES)


def decode_failure(exc: Exception) -> str:
    """The bad-frame reason of an exception from :data:`FRAME_DECODER`: json | range | schema."""
    if is_range_error(exc):
        return "range"
    return "schema" if isinstance(exc, msgspec.ValidationError) else "json"
