"""Where sportsbook odds come from: The Odds API v4 over HTTP, or JSON files.

Each source yields raw Odds API JSON (see :mod:`.odds`); the worker parses and applies it.
(Odds from the bus are ``Odds`` messages the worker's own subscriber receives.)

- :class:`OddsApi` polls ``GET {base}/sports/{sport}/odds?regions=..&markets=h2h&
  oddsFormat=american&apiKey=..`` for every sport with a team table. It reads the quota
  headers (``x-requests-remaining`` / ``-used`` / ``-last``) and stops asking while fewer
  than ``min_remaining`` requests are left; 429 and server errors back off (doubling),
  401/403 waits long (the key is wrong), a sport the API does not know (404/422) is not
  asked again for a while. The key is only ever sent, never logged.
- :class:`OddsFiles`: a file (re-read when it changes) or a directory (one new file per
  call, in name order: a replay).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from shared.backoff import Backoff

PUBLIC_ODDS_API = "https://api.the-odds-api.com/v4"
AUTH_WAIT_S = 600.0
QUOTA_WAIT_S = 3600.0
MAX_BACKOFF_S = 600.0


@dataclass
class Fetch:
    """One request's outcome: ``body`` on success, else ``error`` (a short reason)."""

    sport: str
    body: bytes | None = None
    error: str = ""
    status: int = 0


@dataclass
class OddsApi:
    base_url: str
    api_key: str
    sports: list[str]
    regions: str = "us"
    bookmakers: list[str] = field(default_factory=list)
    min_remaining: int = 20
    timeout_s: float = 10.0
    remaining: int | None = None
    used: int | None = None
    #: monotonic time before which no request is sent (quota, auth, throttling)
    hold_until: float = 0.0
    #: sport -> monotonic time before which it is not asked again (the API does not know it)
    sport_hold: dict[str, float] = field(default_factory=dict)
    #: Throttling and errors: 1 s, doubling to MAX_BACKOFF_S, no jitter (one client, one API).
    _backoff: Backoff = field(default_factory=lambda: Backoff(1.0, MAX_BACKOFF_S, jitter=0.0))
    _session: aiohttp.ClientSession | None = None

    def params(self) -> dict[str, str]:
        p = {"regions": self.regions, "markets": "h2h", "oddsFormat": "american", "apiKey": self.api_key}
        if self.bookmakers:
            p["bookmakers"] = ",".join(self.bookmakers)
        return p

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def held(self, now: float) -> bool:
        return now < self.hold_until

    async def fetch_all(self, now: float, sports: list[str] | None = None) -> list[Fetch]:
        """One request per sport (``sports``, default all of them; none while held)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        out: list[Fetch] = []
        for sport in self.sports if sports is None else sports:
            if self.held(now) or now < self.sport_hold.get(sport, 0.0):
                out.append(Fetch(sport, error="held"))
                continue
            out.append(await self._fetch(sport, now))
        return out

    async def _fetch(self, sport: str, now: float) -> Fetch:
        assert self._session is not None
        url = f"{self.base_url.rstrip('/')}/sports/{sport}/odds"
        try:
            async with self._session.get(url, params=self.params()) as resp:
                body = await resp.read()
                self._quota(resp.headers)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._back_off(now)
            return Fetch(sport, error=f"connection: {type(exc).__name__}")
        if status == 200:
            self._backoff.reset()
            if self.remaining is not None and self.remaining < self.min_remaining:
                self.hold_until = now + QUOTA_WAIT_S
            return Fetch(sport, body=body, status=status)
        if status in (401, 403):
            self.hold_until = now + AUTH_WAIT_S
            return Fetch(sport, error="auth", status=status)
        if status == 429:
            self._back_off(now)
            return Fetch(sport, error="throttled", status=status)
        if status in (404, 422):
            self.sport_hold[sport] = now + AUTH_WAIT_S
            return Fetch(sport, error="unknown_sport", status=status)
        self._back_off(now)
        return Fetch(sport, error="http", status=status)

    def _back_off(self, now: float) -> None:
        self.hold_until = now + self._backoff.delay()

    def _quota(self, headers: Any) -> None:
        for name, attr in (("x-requests-remaining", "remaining"), ("x-requests-used", "used")):
            value = headers.get(name)
            if value is not None:
                with contextlib.suppress(ValueError):
                    setattr(self, attr, int(float(value)))


class OddsFiles:
    """A JSON file, or a directory of them replayed one per call in name order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: dict[Path, tuple[int, int]] = {}

    def next(self) -> list[tuple[Path, bytes]]:
        if self.path.is_dir():
            for f in sorted(self.path.glob("*.json")):
                if self._changed(f):
                    return [(f, f.read_bytes())]
            return []
        if self.path.is_file() and self._changed(self.path):
            return [(self.path, self.path.read_bytes())]
        return []

    def _changed(self, f: Path) -> bool:
        st = f.stat()
        mark = (st.st_mtime_ns, st.st_size)
        if self._seen.get(f) == mark:
            return False
        self._seen[f] = mark
        return True


async def sleep_until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
