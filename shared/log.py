"""Structured logging: human lines by default, JSON lines with ``--log-json``.

Context goes in ``extra={"ctx": {...}}``; both formats print it. :class:`BurstLog`
logs the first event of a burst at once and folds the rest into one summary line,
so a drop storm is visible without flooding the log.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_JSON = msgspec.json.Encoder()


class _HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        ctx = getattr(record, "ctx", None)
        extra = " " + " ".join(f"{k}={v}" for k, v in ctx.items()) if ctx else ""
        line = (
            f"{ts}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: {record.getMessage()}{extra}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = getattr(record, "ctx", None)
        if ctx:
            out.update(
                {
                    k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                    for k, v in ctx.items()
                }
            )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _JSON.encode(out).decode()


def setup_logging(level: str = "INFO", *, json: bool = False, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter() if json else _HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (websockets frames, aiohttp access lines, the plugins Alembic sets up when
    # it is first imported: before any module could quiet it) is not our log.
    for noisy in ("websockets", "aiohttp.access", "asyncio", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"kxfeed.{name}")


class BurstLog:
    """Log the first event of a burst at once; fold repeats within ``window_s`` into one line.

    ``key`` separates independent bursts (e.g. per publisher). Call :meth:`flush` on
    shutdown so a pending summary is not lost.
    """

    def __init__(self, logger: logging.Logger, window_s: float = 5.0, level: int = logging.WARNING) -> None:
        self._log = logger
        self._window = window_s
        self._level = level
        self._state: dict[str, tuple[float, int, int]] = {}  # key -> (window start, events, amount)

    def event(self, key: str, msg: str, amount: int = 1, now: float | None = None, **ctx: Any) -> None:
        now = time.monotonic() if now is None else now
        start, events, total = self._state.get(key, (0.0, 0, 0))
        if events == 0 or now - start >= self._window:
            if events > 1:
                self._summary(key, events - 1, total)
            self._log.log(self._level, msg, extra={"ctx": {"key": key, "amount": amount, **ctx}})
            self._state[key] = (now, 1, 0)
        else:
            self._state[key] = (start, events + 1, total + amount)

    def _summary(self, key: str, events: int, total: int) -> None:
        self._log.log(
            self._level,
            "burst continued",
            extra={"ctx": {"key": key, "more_events": events, "more_amount": total}},
        )

    def flush(self) -> None:
        for key, (_, events, total) in self._state.items():
            if events > 1:
                self._summary(key, events - 1, total)
        self._state.clear()
