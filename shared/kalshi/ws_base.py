"""What every Kalshi WebSocket frame module builds on: the tagged base Struct and the bounded
integer types (shared by :mod:`shared.kalshi.ws` and :mod:`shared.kalshi.ws_private`).

Every integer on the wire is bounded where it is decoded, by what kxfeed derives from it: a
value the bus or a BIGINT cannot hold fails the decode as a ValidationError that
shared.kalshi.envelope.is_range_error recognises, so no OverflowError can surface later at
bus encode.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.messages import INT64_MAX, INT64_MIN

Side = Literal["yes", "no"]
#: A sid, a command id.
Sid = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
#: A per-sid seq: ``seq + 1`` (the next expected) must still fit.
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX - 1)]
#: Unix seconds: kxfeed stores them as ms, so ``ts * 1000`` must fit.
Seconds = Annotated[int, msgspec.Meta(ge=INT64_MIN // 1000 + 1, le=INT64_MAX // 1000)]


class Frame(msgspec.Struct, tag_field="type", frozen=True):
    """A server frame: tagged by its ``type``."""
