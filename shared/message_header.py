"""What every bus message has: the header fields and the integer and literal types of the
schema (:mod:`shared.messages` is the schema; it re-exports all of this)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

#: What a BIGINT column and a signed msgpack int hold. Every integer of the bus schema is
#: bounded by it, so a decoder refuses (ValidationError, counted) what the database could not
#: store, and producers range-check before they build a message (shared.kalshi.parse).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

#: Everything a total decode of a payload may raise: malformed bytes, a schema or range
#: violation, and nesting deeper than the decoder recurses (``Any`` fields, skipped fields).
DECODE_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)

Side = Literal["yes", "no"]
Source = Literal["ws", "rest", "poll", "sim"]


class Header(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=True, omit_defaults=False):
    pub: str = ""
    epoch: Int64 = 0
    seq: Int64 = 0
    ts_exch: Int64 | None = None
    ts_recv: Int64 = 0

    #: Topic suffix field: topic = "<kind>.<value of this field>".
    topic_field: ClassVar[str] = "ticker"
    #: Journaled by durable publishers and stored by the writer.
    durable: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]

    def topic(self) -> str:
        return f"{type(self).__struct_config__.tag}.{getattr(self, self.topic_field)}"
