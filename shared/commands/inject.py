"""The ``inject`` control command (:class:`Inject`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Inject(Command, tag="inject", frozen=True):
    """Inject a fault into the simulator now: ``{"kind": ..., "connections": [...]}`` or the armed HTTP fault.

    Kinds: gap, duplicate, disconnect, stall, no_ping, error25, auth401, rate429, rest5xx,
    malformed (see services/exchange_sim/faults.py). WebSocket faults hit every open connection
    unless ``conn`` names one.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    """the fault kind"""
    conn: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """only this WebSocket connection"""
    sid: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """only this subscription (gap, duplicate, error25, malformed)"""
    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    """only this channel's subscription, e.g. trade (gap, duplicate, error25; default: the book's)"""
    count: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    """how many frames (or HTTP requests) the fault hits"""
    code: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    """close code (disconnect) or error code (error25)"""
    seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """how long (stall, no_ping, HTTP faults)"""
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    """HTTP status (rest5xx)"""
    variant: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    """which malformed frame (malformed)"""
