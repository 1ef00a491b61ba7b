"""A small async Kalshi REST v2 client (aiohttp): typed models, cursor pagination, retries.

- Every request can be signed (pass ``signer``: ``(method, path) -> headers``); the
  signed path is the URL path from the API root, query string excluded.
- 429 and 5xx and connection failures are retried with capped exponential
  backoff and full jitter through :mod:`shared.retry` (Kalshi sends no Retry-After); each retry is counted in
  ``kxfeed_rest_retries_total{endpoint,reason}``. 401/403 raise
  :class:`RestAuthError` at once (retrying a bad key only burns the rate limit);
  404 raises :class:`RestNotFound`.
- Pagination: pass the response ``cursor`` back until it is empty/null/absent.
- Budget: give the client a :class:`TokenBucket` (``TokenBucket.for_tier("basic")``)
  and every attempt waits for its tokens first, so kxfeed stays under Kalshi's
  read limit by design; a 429 anyway empties the bucket (the exchange says the
  budget is spent) before the jittered backoff. Waiting is counted in
  ``kxfeed_rest_budget_wait_seconds_total``.
- 4xx other than 429 are not retried; the error message carries the response body.

Models keep Kalshi's field names and decimal strings; :mod:`shared.kalshi.parse`
converts them to exact units. Unknown fields are ignored.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import msgspec
from prometheus_client import Counter

from shared.backoff import Backoff
from shared.kalshi.envelope import decode_failure
from shared.kalshi.ratelimit import TokenBucket
from shared.kalshi.rest_models import (
    Event,
    EventResponse,
    EventsPage,
    ExchangeStatus,
    Market,
    MarketOrderbook,
    MarketResponse,
    MarketsPage,
    Orderbook,
    OrderbookResponse,
    OrderbooksResponse,
    RestTrade,
    Schedule,
    ScheduleResponse,
    Series,
    SeriesList,
    SeriesResponse,
    TradesPage,
)
from shared.log import BurstLog, get_logger
from shared.messages import DECODE_ERRORS
from shared.retry import GaveUp, Retry, RetryEvent, RetryPolicy, retrying

REQUESTS = Counter(
    "kxfeed_rest_requests_total", "Kalshi REST requests by endpoint and HTTP status", ["endpoint", "status"]
)
RETRIES = Counter(
    "kxfeed_rest_retries_total",
    "Kalshi REST requests retried, by endpoint and reason",
    ["endpoint", "reason"],
)

BAD_RESPONSES = Counter(
    "kxfeed_rest_bad_responses_total",
    "Kalshi REST 200 responses refused by the schema, by endpoint and reason (json, schema, range)",
    ["endpoint", "reason"],
)

BUDGET_WAIT = Counter(
    "kxfeed_rest_budget_wait_seconds_total",
    "Seconds Kalshi REST requests waited for the client-side rate budget, by endpoint",
    ["endpoint"],
)

_log = get_logger("kalshi.rest")

Signer = Callable[[str, str], Mapping[str, str]]
Params = Mapping[str, str] | Sequence[tuple[str, str]]
T = TypeVar("T")

#: Most tickers one GET /markets/orderbooks (and one GET /markets?tickers=) takes.
TICKERS_PER_CALL = 100


class RestError(Exception):
    """A request that failed for good (after retries, or not retryable)."""

    def __init__(self, endpoint: str, status: int, detail: str) -> None:
        super().__init__(
            f"GET {endpoint}: HTTP {status}: {detail}" if status else f"GET {endpoint}: {detail}"
        )
        self.endpoint = endpoint
        self.status = status


class RestAuthError(RestError):
    """401/403: the key was refused."""


class RestNotFound(RestError):
    pass


class _Retryable(Exception):
    """An attempt that may succeed if tried again (429, 5xx, no connection); never escapes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _retryable(exc: BaseException) -> Retry | None:
    return Retry(exc.reason) if isinstance(exc, _Retryable) else None


def _query(**values: str | None) -> dict[str, str]:
    # Only the filters a caller set go on the query string: None or "" means "no filter",
    # never a parameter with an empty value.
    return {k: v for k, v in values.items() if v}


def _body_text(body: bytes) -> str:
    return body[:300].decode(errors="replace").strip() or "(empty body)"


_MARKETS = msgspec.json.Decoder(MarketsPage)
_MARKET = msgspec.json.Decoder(MarketResponse)
_EVENTS = msgspec.json.Decoder(EventsPage)
_EVENT = msgspec.json.Decoder(EventResponse)
_SERIES = msgspec.json.Decoder(SeriesResponse)
_SERIES_LIST = msgspec.json.Decoder(SeriesList)
_ORDERBOOK = msgspec.json.Decoder(OrderbookResponse)
_ORDERBOOKS = msgspec.json.Decoder(OrderbooksResponse)
_TRADES = msgspec.json.Decoder(TradesPage)
_STATUS = msgspec.json.Decoder(ExchangeStatus)
_SCHEDULE = msgspec.json.Decoder(ScheduleResponse)


# ---- client --------------------------------------------------------------------------------------


class RestClient:
    def __init__(
        self,
        base_url: str,
        *,
        signer: Signer | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        bucket: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_retries = max_retries
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._sleep = sleep
        #: Shared by every request of this client; None = no client-side budget.
        self.bucket = bucket
        self._clock = clock
        self._burst = BurstLog(_log)

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def get(
        self,
        path: str,
        decoder: msgspec.json.Decoder[T],
        params: Params | None = None,
        *,
        endpoint: str = "",
    ) -> T:
        """GET ``path`` (relative to the API root), decode with ``decoder``; retries as documented."""
        endpoint = endpoint or path
        url = self.base_url + path

        async def attempt() -> T:
            if self.bucket is not None:
                wait = self.bucket.reserve(self._clock())
                if wait > 0:
                    BUDGET_WAIT.labels(endpoint).inc(wait)
                    await self._sleep(wait)
            headers = dict(self._signer("GET", self._base_path + path)) if self._signer is not None else {}
            try:
                async with self._http().get(url, params=params, headers=headers) as resp:
                    body = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Retryable(0, type(exc).__name__) from exc
            REQUESTS.labels(endpoint, str(status)).inc()
            if status == 200:
                try:
                    return decoder.decode(body)
                except DECODE_ERRORS as exc:
                    # Total: whatever the body, the caller gets a RestError it already handles.
                    why = decode_failure(exc)
                    BAD_RESPONSES.labels(endpoint, why).inc()
                    raise RestError(
                        endpoint, status, f"unexpected response body ({why}): {str(exc)[:200]}"
                    ) from None
            if status in (401, 403):
                raise RestAuthError(
                    endpoint,
                    status,
                    f"request refused: check KALSHI_KEY_ID and the private key: {_body_text(body)}",
                )
            if status == 404:
                raise RestNotFound(endpoint, status, f"not found: {_body_text(body)}")
            if status == 429:
                if self.bucket is not None:
                    self.bucket.empty(self._clock())
                raise _Retryable(status, "rate_limited")
            if status >= 500:
                raise _Retryable(status, f"http_{status}")
            raise RestError(endpoint, status, _body_text(body))

        def note(e: RetryEvent) -> None:
            RETRIES.labels(endpoint, e.reason).inc()
            self._burst.event(f"retry:{endpoint}", "REST request retried", endpoint=endpoint, reason=e.reason)

        try:
            return await retrying(attempt, self._policy(), _retryable, note)
        except GaveUp as g:
            status = g.last.status if isinstance(g.last, _Retryable) else 0
            raise RestError(endpoint, status, str(g)) from None

    def _policy(self) -> RetryPolicy:
        """Per request: ``max_retries`` retries after the first try, full jitter drawn from
        the client's rng (``uniform(0, ceiling)``, as ``1 - r`` turns the backoff's
        ``c * (1 - r)`` into)."""
        initial, cap = self._backoff
        return RetryPolicy(
            Backoff(initial, cap, jitter=1.0),
            max_attempts=self._max_retries + 1,
            sleep=self._sleep,
            clock=self._clock,
            draw=lambda: 1.0 - self._rng.random(),
        )

    async def _pages(
        self, path: str, decoder: msgspec.json.Decoder[T], params: dict[str, str], endpoint: str
    ) -> AsyncIterator[T]:
        cursor = ""
        while True:
            query = dict(params)
            if cursor:
                query["cursor"] = cursor
            page = await self.get(path, decoder, query, endpoint=endpoint)
            yield page
            cursor = getattr(page, "cursor", None) or ""
            if not cursor:
                return

    async def markets(
        self,
        *,
        status: str | None = None,
        series_ticker: str | None = None,
        event_ticker: str | None = None,
        tickers: list[str] | None = None,
        limit: int = 1000,
    ) -> AsyncIterator[Market]:
        """Every market matching the filters, across pages (``GET /markets``)."""
        params = _query(
            limit=str(limit),
            status=status,
            series_ticker=series_ticker,
            event_ticker=event_ticker,
            tickers=",".join(tickers) if tickers else None,
        )
        async for page in self._pages("/markets", _MARKETS, params, "/markets"):
            for market in page.markets:
                yield market

    async def market(self, ticker: str) -> Market:
        resp = await self.get(f"/markets/{ticker}", _MARKET, endpoint="/markets/{ticker}")
        return resp.market

    async def events(
        self,
        *,
        status: str | None = None,
        series_ticker: str | None = None,
        with_nested_markets: bool = False,
        limit: int = 200,
    ) -> AsyncIterator[Event]:
        """Every event matching the filters, across pages (``GET /events``)."""
        params = _query(
            limit=str(limit),
            status=status,
            series_ticker=series_ticker,
            with_nested_markets="true" if with_nested_markets else None,
        )
        async for page in self._pages("/events", _EVENTS, params, "/events"):
            for event in page.events:
                yield event

    async def event(self, event_ticker: str) -> Event:
        resp = await self.get(f"/events/{event_ticker}", _EVENT, endpoint="/events/{event_ticker}")
        return resp.event

    async def series_list(self, *, category: str | None = None) -> list[Series]:
        """Every series (``GET /series``; one page: the endpoint takes no cursor)."""
        params = {"category": category} if category else None
        resp = await self.get("/series", _SERIES_LIST, params, endpoint="/series")
        return resp.series or []

    async def series(self, series_ticker: str) -> Series:
        resp = await self.get(f"/series/{series_ticker}", _SERIES, endpoint="/series/{series_ticker}")
        return resp.series

    # ---- order books, trades, exchange -------------------------------------------------------

    async def orderbook(self, ticker: str, *, depth: int = 0) -> Orderbook:
        """One market's book (``GET /markets/{ticker}/orderbook``; depth 0 = every level)."""
        params = {"depth": str(depth)} if depth else None
        resp = await self.get(
            f"/markets/{ticker}/orderbook", _ORDERBOOK, params, endpoint="/markets/{ticker}/orderbook"
        )
        return resp.orderbook_fp

    async def orderbooks(self, tickers: Sequence[str]) -> list[MarketOrderbook]:
        """Books of up to 100 markets in one call (``GET /markets/orderbooks``); a longer
        list is split into calls of 100. Raises RestNotFound when Kalshi knows a ticker not."""
        out: list[MarketOrderbook] = []
        for i in range(0, len(tickers), TICKERS_PER_CALL):
            chunk = tickers[i : i + TICKERS_PER_CALL]
            resp = await self.get(
                "/markets/orderbooks",
                _ORDERBOOKS,
                [("tickers", t) for t in chunk],
                endpoint="/markets/orderbooks",
            )
            out.extend(resp.orderbooks)
        return out

    async def trades(
        self,
        *,
        ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int = 1000,
    ) -> AsyncIterator[RestTrade]:
        """Trades newest first across pages (``GET /markets/trades``; times in Unix seconds)."""
        params = _query(
            limit=str(limit),
            ticker=ticker,
            min_ts=None if min_ts is None else str(min_ts),
            max_ts=None if max_ts is None else str(max_ts),
        )
        async for page in self._pages("/markets/trades", _TRADES, params, "/markets/trades"):
            for trade in page.trades:
                yield trade

    async def exchange_status(self) -> ExchangeStatus:
        return await self.get("/exchange/status", _STATUS, endpoint="/exchange/status")

    async def exchange_schedule(self) -> Schedule:
        resp = await self.get("/exchange/schedule", _SCHEDULE, endpoint="/exchange/schedule")
        return resp.schedule
