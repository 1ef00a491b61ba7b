"""Frames the connector cannot use: counted by reason, sampled into the log, never fatal."""

from __future__ import annotations

import msgspec

from shared.kalshi.ws import KNOWN_TYPES, frame_type
from shared.log import BurstLog, get_logger

from .metrics import BAD_FRAMES, UNKNOWN_TYPES

#: Distinct unknown type names that get their own metric label (the rest count as "other").
MAX_UNKNOWN_LABELS = 50

_log = get_logger("connector.frames")


class FrameFaults:
    def __init__(self, unknown_types: set[str]) -> None:
        #: Unknown types seen so far (shared across connections: each is logged once).
        self.unknown_types = unknown_types
        self._burst = BurstLog(_log)

    def undecodable(self, raw: bytes, exc: Exception) -> None:
        """A frame the typed decoder refused: not JSON, an unknown type, or a known type misshapen."""
        if not isinstance(exc, msgspec.ValidationError):
            self.bad("json", raw, exc)
            return
        env = frame_type(raw)
        if env is not None and env[0] and env[0] not in KNOWN_TYPES:
            kind = env[0]
            if kind not in self.unknown_types:
                if len(self.unknown_types) < MAX_UNKNOWN_LABELS:
                    self.unknown_types.add(kind)
                    _log.warning(
                        "unknown message type (counted, ignored)", extra={"ctx": {"type": kind[:60]}}
                    )
                else:
                    kind = "other"
            UNKNOWN_TYPES.labels(kind).inc()
            return
        self.bad("schema", raw, exc)

    def bad(self, reason: str, raw: bytes, exc: Exception) -> None:
        BAD_FRAMES.labels(reason).inc()
        sample = bytes(raw[:200]).decode(errors="replace")
        self._burst.event(
            f"bad:{reason}", "bad frame skipped", reason=reason, error=str(exc)[:200], sample=sample
        )
