"""The poller's Prometheus metrics (``kxfeed_poller_*``, ``kxfeed_exchange_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MARKETS = Gauge("kxfeed_poller_markets", "Markets in the poller's universe (all filters)")
DISCOVERIES = Counter("kxfeed_poller_discoveries_total", "Market discoveries, by result", ["result"])
DISCOVERY_SECONDS = Histogram(
    "kxfeed_poller_discovery_seconds",
    "Duration of a full market discovery",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
MARKET_CHANGES = Counter(
    "kxfeed_poller_market_changes_total", "Markets added to / removed from the universe", ["change"]
)
META = Counter("kxfeed_poller_meta_published_total", "MarketMeta published (new or changed metadata)")
POLLS = Counter(
    "kxfeed_poller_snapshots_published_total",
    "PollSnapshots published (changed ones only), by mode",
    ["mode"],
)
UNCHANGED = Counter(
    "kxfeed_poller_snapshots_unchanged_total", "Polled markets whose snapshot had not changed", ["mode"]
)
BAD_MARKETS = Counter(
    "kxfeed_poller_bad_markets_total", "REST markets with unreadable values (skipped), by what", ["what"]
)
ERRORS = Counter("kxfeed_poller_errors_total", "Poller REST rounds that failed, by task", ["task"])
FALLBACK_ACTIVE = Gauge("kxfeed_poller_fallback_active", "1 while the fallback polls markets the feed lost")
FALLBACK_MARKETS = Gauge("kxfeed_poller_fallback_markets", "Markets the fallback is polling")
FALLBACK_SWITCHES = Counter(
    "kxfeed_poller_fallback_switches_total", "Fallback polling switched on / off", ["to"]
)
FEED_OUTAGES = Counter(
    "kxfeed_poller_feed_outages_total",
    "Connector feeds seen going down; expected = inside maintenance or outside trading hours",
    ["expected"],
)
FEED_UP = Gauge(
    "kxfeed_poller_feed_up", "1 while this connector's feed is up, as the poller sees it", ["connector"]
)
EXCHANGE_ACTIVE = Gauge("kxfeed_exchange_active", "1 while Kalshi says the exchange is active")
TRADING_ACTIVE = Gauge("kxfeed_exchange_trading_active", "1 while Kalshi says trading is active")
MAINTENANCE = Gauge(
    "kxfeed_exchange_maintenance", "1 inside a maintenance window or while the exchange is inactive"
)
