"""Frames the connector cannot use: counted by reason, sampled into the log, never fatal.

Reasons: ``json`` (not JSON, or nested deeper than the decoder goes), ``schema`` (a known
type misshapen), ``range`` (a number the bus or the database cannot hold), ``units`` (a
decimal finer than its unit, a book price outside (0, 1), ...).
"""

from __future__ import annotations

from shared.kalshi.envelope import Envelope, decode_failure, frame_envelope
from shared.kalshi.numbers import RangeError
from shared.kalshi.ws import KNOWN_TYPES
from shared.log import BurstLog, get_logger

from .counts import Counts

#: Distinct unknown type names that get their own metric label (the rest count as "other").
MAX_UNKNOWN_LABELS = 50
#: Distinct retired or unknown error codes logged (each once per process; the rest are counted).
MAX_LOGGED_CODES = 50
_logged_codes: set[int] = set()
_log = get_logger("connector.frames")


class FrameFaults:
    def __init__(self, unknown_types: set[str], counts: Counts | None = None) -> None:
        #: Unknown types seen so far (shared across connections: each is logged once).
        self.unknown_types = unknown_types
        #: ``bad_frames`` and ``unknown_types``, by reason / type (the shell exports them).
        self.counts = counts if counts is not None else Counts()
        self._burst = BurstLog(_log)

    def undecodable(self, raw: bytes, exc: Exception) -> Envelope | None:
        """A frame the typed decoder refused: not JSON (or nested past the decoder's depth), an
        unknown type, a number out of range, or a known type misshapen. Returns what can be
        read of a known type's frame (its sid and seq may still matter), else None."""
        reason = decode_failure(exc)
        if reason == "json":
            self.bad("json", raw, exc)
            return None
        env = frame_envelope(raw)
        if env is not None and env.type and env.type not in KNOWN_TYPES:
            kind = env.type
            if kind not in self.unknown_types:
                if len(self.unknown_types) < MAX_UNKNOWN_LABELS:
                    self.unknown_types.add(kind)
                    _log.warning(
                        "unknown message type (counted, ignored)", extra={"ctx": {"type": kind[:60]}}
                    )
                else:
                    kind = "other"
            self.counts.add("unknown_types", kind)
            return None
        self.bad(reason, raw, exc)
        return env

    @staticmethod
    def odd_code(code: int, kind: str, ctx: dict[str, object]) -> None:
        """A retired or unknown error code: logged the first time this process sees it."""
        if code in _logged_codes or len(_logged_codes) >= MAX_LOGGED_CODES:
            return
        _logged_codes.add(code)
        _log.warning(
            f"error code {'Kalshi retired' if kind == 'retired' else 'Kalshi does not define'}: "
            "counted, not acted on",
            extra={"ctx": {**ctx, "code": code}},
        )

    def unusable(self, raw: bytes, exc: Exception) -> None:
        """A decoded frame whose values parse could not use: units, or a number out of range."""
        self.bad("range" if isinstance(exc, RangeError) else "units", raw, exc)

    def bad(self, reason: str, raw: bytes, exc: Exception) -> None:
        self.counts.add("bad_frames", reason)
        sample = bytes(raw[:200]).decode(errors="replace")
        self._burst.event(
            f"bad:{reason}", "bad frame skipped", reason=reason, error=str(exc)[:200], sample=sample
        )
