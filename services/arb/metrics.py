"""Prometheus metrics of the arb worker, and the sync from the core's plain counters."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

from shared.log import BurstLog

SIGNALS = Counter("kxfeed_arb_signals_total", "Signals published", ["strategy", "side"])
REJECTED = Counter(
    "kxfeed_arb_rejected_total", "Markets or messages outside the sports filter, by stage", ["stage"]
)
SKIPPED = Counter(
    "kxfeed_arb_skipped_total", "Market evaluations that could not price an edge, by reason", ["reason"]
)
BLOCKED = Counter(
    "kxfeed_arb_blocked_total", "Opportunities not signalled: limits, breaker, rounding", ["reason"]
)
EVALUATIONS = Counter("kxfeed_arb_evaluations_total", "Opportunities checked in full", ["strategy"])
MATCHES = Counter(
    "kxfeed_arb_match_results_total",
    "Game match outcomes (counted when a game's outcome changes)",
    ["reason"],
)
MATCH_REASONS = (
    "matched",
    "low_confidence",
    "ambiguous",
    "no_candidates",
    "unknown_team",
    "unparsed",
    "no_odds",
    "no_league",
)
GAMES = Gauge("kxfeed_arb_games", "Games by match outcome now (matched, low_confidence, ...)", ["reason"])
ODDS_REQUESTS = Counter("kxfeed_arb_odds_requests_total", "Odds fetches and arrivals", ["source", "result"])
ODDS_REJECTED = Counter(
    "kxfeed_arb_odds_rejected_total", "Sportsbook events or lines left out, by reason", ["reason"]
)
ODDS_QUOTA = Gauge("kxfeed_arb_odds_quota_remaining", "The Odds API requests left (x-requests-remaining)")
DISCOVERY = Counter("kxfeed_arb_discovery_total", "REST discovery rounds", ["result"])
SEEDS = Counter("kxfeed_arb_book_seeds_total", "Books asked of the orderbook worker", ["result"])
UNVERIFIED = Counter(
    "kxfeed_arb_books_unverified_total", "Times every book was marked not fresh, by cause", ["cause"]
)
BREAKER_OPEN = Gauge("kxfeed_arb_breaker_open", "1 while the circuit breaker holds every signal")
BREAKER_TRIPS = Counter("kxfeed_arb_breaker_trips_total", "Circuit breaker trips (signals per minute)")
EXPOSURE = Gauge("kxfeed_arb_exposure_dollars", "Paper ledger: cost plus fees committed today (UTC)")
LATENCY = Histogram(
    "kxfeed_arb_detection_latency_seconds",
    "Triggering input (top of book, depth, odds) reaching the worker -> its signal published",
    ["trigger"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

_BY_PREFIX = {
    "rejected.": REJECTED,
    "skip.": SKIPPED,
    "blocked.": BLOCKED,
    "match.": MATCHES,
    "odds_rejected.": ODDS_REJECTED,
}
_EVALUATED = {"evaluated": "sportsbook", "evaluated_complement": "complement"}
#: Counted and logged once per burst: bad odds data as warnings; the sports filter and the
#: limits at work (normal operation) as info.
_WARN = ("odds_rejected.",)
_INFO = ("rejected.", "blocked.")


class CounterSync:
    """Moves the core's counters into Prometheus, logging rejections once per burst."""

    def __init__(self, log: logging.Logger) -> None:
        self._synced: dict[str, int] = {}
        self.burst = BurstLog(log)
        self.info = BurstLog(log, level=logging.INFO, window_s=60.0)

    def sync(self, counts: dict[str, int]) -> None:
        for key, value in list(counts.items()):
            n = value - self._synced.get(key, 0)
            if n <= 0:
                continue
            self._synced[key] = value
            if key in _EVALUATED:
                EVALUATIONS.labels(_EVALUATED[key]).inc(n)
                continue
            for prefix, metric in _BY_PREFIX.items():
                if key.startswith(prefix):
                    metric.labels(key[len(prefix) :]).inc(n)
                    break
            if key.startswith(_WARN):
                self.burst.event(key, "sportsbook data left out", amount=n, what=key, total=value)
            elif key.startswith(_INFO):
                self.info.event(key, "arb turned something away", amount=n, what=key, total=value)
            elif key.startswith("match.") and key != "match.matched":
                self.info.event(key, "game not matched to a sportsbook event", amount=n, reason=key[6:])
