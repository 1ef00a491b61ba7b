"""Per-worker config sections: one Struct per ``[<worker>]`` table, plus the supervisor's children.

Split out of ``shared.config`` (which re-exports every name) to keep modules small.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.collectors import COLLECTOR_PATTERN
from shared.config_common import WorkerBase, _Section

__all__ = [
    "ArbConfig",
    "BusWorkerConfig",
    "ConnectorConfig",
    "GapfillConfig",
    "GatewayConfig",
    "OrderbookConfig",
    "PollerConfig",
    "RestTier",
    "SimConfig",
    "SupervisorChild",
    "SupervisorConfig",
    "WriterConfig",
]


class BusWorkerConfig(WorkerBase, frozen=True, kw_only=True):
    metrics_port: int = 9101
    control: str = "tcp://127.0.0.1:5601"


class SimConfig(WorkerBase, frozen=True, kw_only=True):
    """The local Kalshi exchange simulator (``services/exchange_sim``)."""

    metrics_port: int = 9102
    control: str = "tcp://127.0.0.1:5602"
    #: One port serves WS (/trade-api/ws/v2), REST (/trade-api/v2) and the Odds API (/v4).
    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 7
    #: Mixed into trade ids only (the market stays the seed's): 0 = a new one at every start,
    #: so a restarted simulator's trades are new trades, as on Kalshi; fixed = the same ids again.
    run_id: int = 0
    #: Markets listed at start (games have 2 markets, soccer 3; non-sports events several).
    markets: int = 60
    #: Book-changing steps per second across all markets; 0 or "blast" = as fast as clients read.
    rate: float = 20.0
    #: Fault spec, e.g. "gap:0.01,disconnect:30s,stall:60s:5s" (see ``kxfeed sim --help``).
    faults: str = ""
    #: Extra trusted keys, each "KEY_ID=PATH_TO_PUBLIC_PEM"; the dev key in data_dir is always trusted.
    public_keys: list[str] = []
    #: Catalog anchor (Unix ms, tickers' dates derive from it); 0 = today 00:00 UTC.
    start_ms: int = 0
    #: Server WS ping period (Kalshi: 10 s) and unanswered pings before the sim disconnects.
    ping_interval_s: float = 10.0
    missed_pongs: int = 3
    #: Oldest/newest KALSHI-ACCESS-TIMESTAMP accepted, relative to now.
    auth_max_skew_s: float = 30.0
    #: REST must be signed (Kalshi serves market data unsigned; signed is optional).
    rest_require_auth: bool = False
    #: REST rate-limit tier: basic | advanced | expert | premier | paragon | prime | prestige.
    rest_tier: str = "basic"
    #: Frames queued for one connection before its subscriptions die with error 25.
    out_buffer_frames: int = 200_000
    #: Markets one subscription may hold, 0 = no cap (Kalshi's is unpublished). Above it, error
    #: 26; a subscribe that fits the cap but not the channel's subscription gets a new sid.
    max_markets_per_sub: int = 0
    #: Commands/s per subscription (error 27).
    sub_cmd_rate: float = 100.0
    #: Whether the ``ok`` to update_subscription takes the sid's next seq (the next snapshot is
    #: its seq + 1) or repeats the last one. Kalshi's behaviour is unconfirmed; false = repeat.
    ok_consumes_seq: bool = False
    #: Kalshi's historical cutoff for trades: ones older than this many seconds leave
    #: /markets/trades for /historical/trades. 0 = never (every kept trade stays live).
    historical_trades_after_s: float = 0.0
    #: A lifecycle action (game ends, pause, new market, ...) every N activity steps on average.
    lifecycle_every: int = 400
    #: Planted mispricings (price units, $0.0001): every Nth sports event quotes off the
    #: sportsbook consensus by ``planted_edge``; every Mth has an in-event complement arbitrage.
    planted_edge: int = 400
    planted_edge_every: int = 4
    planted_arb_every: int = 5
    #: Ground truth: frames kept per connection (last 64 connections) and deltas in the global log.
    truth_max_frames: int = 100_000
    truth_max_events: int = 500_000


class ConnectorConfig(WorkerBase, frozen=True, kw_only=True):
    metrics_port: int = 9103
    control: str = "tcp://127.0.0.1:5603"
    # Market set. All empty = every open market; otherwise the union of the filters.
    series: list[str] = []
    categories: list[str] = []
    tickers: list[str] = []
    #: Keep only sports markets (series category "Sports").
    sports_only: bool = False
    #: Several connector processes: this one takes tickers with crc32(ticker) % count == index.
    #: A numeric ``--instance`` sets the index.
    shard_count: int = 1
    shard_index: int = 0
    #: This collector's name when two collectors feed the same markets (redundant lines, e.g.
    #: one per host): publisher names become connector-NAME[-SHARD]; empty = the one collector.
    #: A letter first, then up to 23 of a-z 0-9 _ (``--instance NAME[-N]`` overrides it).
    collector: Annotated[str, msgspec.Meta(pattern=COLLECTOR_PATTERN)] = ""
    #: The other collectors of the same markets (their names): the poller's fallback polls a
    #: market only when none of them carries it either.
    peers: list[Annotated[str, msgspec.Meta(pattern=COLLECTOR_PATTERN)]] = []
    #: At most this many markets per subscription (sid); more markets -> more sids.
    max_markets_per_subscription: int = 500
    #: Commands sent per second at most, with a burst of one second's worth: at most twice this
    #: in any second, so the default stays within Kalshi's published 10,000 commands/s.
    commands_per_s: Annotated[float, msgspec.Meta(gt=0, le=5_000)] = 5_000.0
    #: No frame and no server ping for this long = a dead connection.
    stale_after_s: float = 30.0
    #: In-band recovery (get_snapshot) must finish within this, else unsubscribe + subscribe.
    resync_timeout_s: float = 5.0
    #: A command without a reply for this long = a broken session (reconnect).
    command_timeout_s: float = 10.0
    #: Reconnect backoff: capped exponential with full jitter, reset after a stable period.
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 30.0
    backoff_reset_after_s: float = 60.0
    #: Wait after a refused handshake (401/403): a bad key must not hammer the exchange.
    auth_backoff_s: float = 60.0
    #: Ask Kalshi for NO levels on the YES axis; the bus always carries NO prices either way.
    use_yes_price: bool = False
    #: permessage-deflate on the WebSocket (less bandwidth, more CPU).
    compression: bool = False
    #: Most frames handled per drain (one publish per drain).
    max_batch: int = 4096
    #: Largest WebSocket frame accepted (bytes; 0 = no limit). A bigger one ends the connection.
    max_frame_bytes: int = 16 * 1024 * 1024
    open_timeout_s: float = 10.0
    rest_timeout_s: float = 10.0
    #: This account's private channels to carry ("fill", "market_positions", "user_orders",
    #: "order_group_updates"). Subscribed only with real credentials (KALSHI_KEY_ID): the
    #: simulator's dev key has no account.
    private_channels: list[Literal["fill", "market_positions", "user_orders", "order_group_updates"]] = []


class OrderbookConfig(WorkerBase, frozen=True, kw_only=True):
    metrics_port: int = 9104
    control: str = "tcp://127.0.0.1:5604"
    #: Least seconds between two tob messages of one market (0: every change; 1.0: a 1 s publisher).
    min_publish_interval: float = 0.0
    #: Seconds between depth rounds (changed books only; 0 disables depth messages).
    depth_interval: float = 1.0
    #: Levels per side in a depth message.
    depth_levels: int = 10
    #: An INVALID book still INVALID this long after its snapshot request is asked again,
    #: of the connector and of the gap filler (REST), with doubling backoff up to the max.
    resync_timeout_s: float = 2.0
    resync_max_backoff_s: float = 30.0
    #: Ready once this long has passed after the start-up snapshot request with no new
    #: market appearing and every book VALID.
    ready_quiet_s: float = 0.5
    #: Movers history: sample interval (the window's resolution) and how far back it goes.
    movers_sample_s: float = 5.0
    movers_horizon_s: float = 1800.0
    #: Default age after which a VALID book without updates is listed by ``scan stale``.
    stale_after_s: float = 300.0
    #: Most bus messages handled per round (0: [bus] max_batch). Bounds how many decoded
    #: snapshots are alive at once (a start-up burst of 5,000 would otherwise fragment memory).
    max_batch: int = 2000


class GatewayConfig(WorkerBase, frozen=True, kw_only=True):
    """The HTTP API, the live WebSocket stream and the web page (``services/gateway``)."""

    metrics_port: int = 9109
    control: str = "tcp://127.0.0.1:5609"
    #: Where the HTTP server listens. A host that is not a loopback address needs a token.
    host: str = "127.0.0.1"
    #: 0: any free port, reported in <data_dir>/run/gateway.http.port.
    port: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 8080
    #: A file holding the bearer token every request must carry (``Authorization: Bearer ...``);
    #: ``KXFEED_GATEWAY_TOKEN`` wins when set. The token itself is never read from a config file.
    token_file: str = ""
    #: Origins allowed by CORS (e.g. "https://dash.example"; "*" = any). Empty: CORS off.
    cors_origins: list[str] = []
    #: Largest request accepted (headers aside), bytes: a bigger one is answered 413.
    max_request_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 64 * 1024
    #: Per-client (remote address) token bucket: requests per second and burst; 0 = no limit.
    rate_per_s: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 50.0
    rate_burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    #: Clients whose buckets are remembered at once (the least recently seen are forgotten).
    rate_clients: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 10_000
    #: Rows per page of a list when ``limit`` is not given, and the most a client may ask for.
    page_limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
    max_page_limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    #: A control-socket question (book, scans, status) gives up after this long (answered 504).
    control_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    #: A database query gives up after this long (answered 504).
    db_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # ---- the live stream (/api/v1/stream; services/gateway/stream*.py) ----
    #: A client that does not keep up: "drop_oldest" drops its oldest queued messages and sends
    #: it a ``lost`` notice with the counts; "disconnect" closes it (code 1008).
    stream_policy: Literal["drop_oldest", "disconnect"] = "drop_oldest"
    #: Bound of one client's outgoing queue, in bytes of JSON and in messages (both hold).
    #: Worst-case memory of the stream = stream_max_clients x stream_queue_bytes.
    stream_queue_bytes: Annotated[int, msgspec.Meta(ge=4096, le=1 << 30)] = 4 * 1024 * 1024
    stream_queue_messages: Annotated[int, msgspec.Meta(ge=16, le=10_000_000)] = 20_000
    stream_max_clients: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    #: Per client: subscriptions at once, and tickers named by one subscription.
    stream_max_subscriptions: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 32
    stream_max_tickers: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    #: Largest message a client may send (bytes): a bigger one is answered with a ``too_large``
    #: error; one over 8 times this is not read at all and closes the connection (1009).
    stream_max_frame_bytes: Annotated[int, msgspec.Meta(ge=256, le=16 * 1024 * 1024)] = 64 * 1024
    #: Client messages per second (token bucket with this burst); over it: ``rate_limited`` errors.
    stream_ops_per_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 20.0
    stream_ops_burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    #: A ``heartbeat`` message to every client this often; a WebSocket ping too, and a client
    #: that does not answer it within the period is closed.
    stream_heartbeat_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    #: Markets whose latest state is kept for snapshots and the REST ``latest`` (settled or
    #: closed ones leave first; past the cap the least recently updated leave, counted).
    live_max_markets: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 50_000


class WriterConfig(WorkerBase, frozen=True, kw_only=True):
    metrics_port: int = 9105
    control: str = "tcp://127.0.0.1:5605"
    #: A batch (one transaction) closes at this many messages or this age, whichever first.
    batch_rows: int = 5000
    batch_ms: int = 200
    #: After a read that empties the bus, wait this long before the next (0: wake for every
    #: message). The writer then wakes ~100 times a second instead of once per message, which
    #: leaves the cores to the latency-critical path (connector -> orderbook). Adds at most
    #: this to commit latency; a busy bus (full reads) is never waited on.
    idle_poll_ms: int = 10
    #: Batches handed to the database but not yet committed (pipelining depth).
    max_inflight_batches: int = 2
    #: While the database fails, buffer at most this many messages; past it, drop what
    #: the journals can replay and catch up from them once the database is back.
    max_buffer_rows: int = 200_000
    #: Retry backoff after a failed write: doubles from initial up to max.
    retry_initial_s: float = 0.1
    retry_max_s: float = 5.0
    #: A write (one batch) that takes longer is abandoned and retried.
    write_timeout_s: float = 30.0
    #: How often the journal cursor advances (it lets journal retention prune).
    cursor_interval_s: float = 2.0
    #: How often the disk use of the data and journal directories is measured (gauges).
    disk_interval_s: float = 15.0
    #: A journaled message this old that the live path never delivered triggers a replay.
    tail_grace_s: float = 3.0
    #: Where the messages come from: ``bus`` (the local bus and journals) or ``jetstream`` (a
    #: durable pull consumer on each ``[jetstream] streams`` stream, acked after commit).
    source: Literal["bus", "jetstream"] = "bus"
    #: source = jetstream: the durable consumer's name, each writer its own (a writer re-creates
    #: its consumer at every start: two writers sharing one would keep resetting each other).
    jetstream_durable: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "kxfeed-writer"
    #: ... a message not acked this long after delivery is delivered again (deduplicated).
    jetstream_ack_wait_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 30.0
    #: ... at most this many messages (bus frames) delivered and not yet acked.
    jetstream_max_inflight: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20_000
    #: ... what comes after a hole in a stream waits this long for it (a delivery lost on a
    #: reconnect comes again after ack_wait; a record the bridge re-sends lands after newer ones),
    #: then the consumer is reset once, then the hole is counted lost.
    jetstream_hole_grace_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


RestTier = Literal["basic", "advanced", "expert", "premier", "paragon", "prime", "prestige"]


class PollerConfig(WorkerBase, frozen=True, kw_only=True):
    """The REST poller (``services/poller``): discovery, metadata, snapshots, WS fallback."""

    metrics_port: int = 9106
    control: str = "tcp://127.0.0.1:5606"
    # Market universe. All empty = every open market; otherwise the union of the filters.
    series: list[str] = []
    categories: list[str] = []
    tickers: list[str] = []
    #: Add the sports game-winner series (KXNFLGAME, KXNBAGAME, KXMLBGAME, ...) to ``series``.
    game_winners: bool = False
    #: Keep only sports markets (series category "Sports").
    sports_only: bool = False
    #: Full re-discovery (series, events with their markets, fee overrides) this often.
    discovery_interval_s: float = 300.0
    #: Market snapshots (PollSnapshot, source poll) of the universe this often; 0 = none.
    poll_interval_s: float = 10.0
    #: Exchange status and schedule (maintenance windows) this often.
    status_interval_s: float = 60.0
    #: Poll top of book for the connector's markets while the WebSocket feed is down.
    fallback: bool = True
    #: Seconds a market's feed must have been down before the fallback polls it.
    fallback_after: float = 15.0
    #: A connector whose heartbeat is older than this is down; 0 = 3 x its heartbeat interval.
    feed_timeout_s: float = 0.0
    #: Kalshi rate-limit tier of the key (basic = 20 reads/s) and this worker's share of its
    #: read budget (the gap filler and the connector's lookups use the same key).
    rest_tier: RestTier = "basic"
    rest_budget_share: float = 0.6
    rest_timeout_s: float = 10.0
    rest_max_retries: int = 8


class GapfillConfig(WorkerBase, frozen=True, kw_only=True):
    """The gap filler (``services/gapfill``): REST repair of broken books, stored-sequence audit."""

    metrics_port: int = 9107
    control: str = "tcp://127.0.0.1:5607"
    #: A gap whose books the connector has not brought back within this many seconds is
    #: repaired from REST orderbooks (published as resync snapshots, source rest).
    rest_after: float = 3.0
    #: A market fetched over REST is not fetched again for a snapshot request within this.
    refetch_after_s: float = 1.0
    #: Audit stored sequences (holes per subscription in the database) this often; 0 = never.
    audit_interval_s: float = 60.0
    #: The audit covers subscriptions with a snapshot stored within this many seconds.
    audit_window_s: float = 3600.0
    rest_tier: RestTier = "basic"
    rest_budget_share: float = 0.3
    rest_timeout_s: float = 10.0
    rest_max_retries: int = 5
    #: Trades missed in a trade gap, a disconnect or a connector restart are backfilled from
    #: ``/markets/trades``, at most this many seconds back from the window's end: a long outage
    #: is not paged through without bound (what lies before is counted and logged as capped).
    trade_backfill_max_s: Annotated[float, msgspec.Meta(ge=1.0, le=86_400.0)] = 900.0


class ArbConfig(WorkerBase, frozen=True, kw_only=True):
    """The sports arbitrage detector (``services/arb``)."""

    metrics_port: int = 9108
    control: str = "tcp://127.0.0.1:5608"
    #: Game-winner series watched: the sports filter at discovery, subscription and on every message.
    series: list[str] = msgspec.field(
        default_factory=lambda: [
            "KXNFLGAME",
            "KXNBAGAME",
            "KXMLBGAME",
            "KXNHLGAME",
            "KXNCAAFGAME",
            "KXNCAAMBGAME",
            "KXWNBAGAME",
            "KXEPLGAME",
            "KXMLSGAME",
        ]
    )
    #: Per-league team tables (``*.toml``: code -> sportsbook name); empty = the project's config/teams.
    teams_dir: str = ""
    #: Sportsbook odds: http (The Odds API v4; the simulator serves it in the embedded default),
    #: file (a JSON file or directory of Odds API responses, for replays), bus (``Odds`` messages
    #: on ``odds.<sport_key>``), none (complement arbitrage only).
    odds_source: Literal["http", "file", "bus", "none"] = "http"
    #: The Odds API base URL; empty = the simulator's /v4 when [kalshi] env is sim, else the public API.
    #: The key comes only from ``ODDS_API_KEY`` (the simulator accepts any).
    odds_url: str = ""
    #: odds_source = file: a JSON file (re-read when it changes) or a directory (one file per poll,
    #: in name order).
    odds_path: str = ""
    #: Seconds between polls; a poll asks once per sport that has Kalshi games being watched
    #: (mind The Odds API's monthly quota).
    odds_poll_s: float = 30.0
    odds_regions: str = "us"
    #: Bookmaker keys to ask for (empty = every bookmaker of the regions).
    odds_bookmakers: list[str] = []
    #: Stop polling while The Odds API says fewer requests than this are left this month.
    odds_min_remaining: int = 20
    odds_timeout_s: float = 10.0
    #: How each book's vig is removed, and how books are combined.
    devig: Literal["multiplicative", "additive", "power", "shin"] = "multiplicative"
    consensus: Literal["median", "mean"] = "median"
    #: Fewest fresh books a fair value needs.
    min_books: int = 2
    #: A book whose odds are older than this is ignored.
    max_odds_age_s: float = 180.0
    #: A Kalshi book not heard of (tob, depth, bookstate) for this long is not fresh.
    max_book_age_s: float = 600.0
    #: Least confidence of a Kalshi game <-> sportsbook event match (below: listed, never guessed).
    min_confidence: float = 0.9
    #: Least edge per contract after fees ($0.0001 units) for a sportsbook signal, and per bundle
    #: for an in-event complement arbitrage.
    min_edge: int = 100
    min_complement_edge: int = 1
    #: Smallest signal (hundredths of a contract).
    min_size: int = 100
    #: Size cap: this fraction (ppm) of the Kelly stake on ``bankroll_usd``.
    kelly_fraction_ppm: int = 250_000
    bankroll_usd: int = 10_000
    #: Paper-trading ledger limits (dollars of cost + fees) and the circuit breaker.
    max_market_exposure_usd: int = 1_000
    max_sport_exposure_usd: int = 5_000
    max_daily_exposure_usd: int = 20_000
    max_signals_per_minute: int = 60
    breaker_cooldown_s: float = 60.0
    #: Balance precision fees are rounded to: cent (non-direct members) or centicent (direct members).
    fee_precision: Literal["cent", "centicent"] = "cent"
    #: Learn the sports markets over REST at start and this often (metadata also arrives as ``meta.``).
    discover: bool = True
    rediscover_s: float = 300.0
    #: Ask the orderbook worker for the books it holds at start and after a bus drop.
    seed_books: bool = True


class SupervisorChild(_Section, frozen=True, kw_only=True):
    """One supervised child (a ``[[supervisor.children]]`` table). 0 / empty = the supervisor-wide value."""

    name: str
    #: Empty = ``kxfeed worker NAME`` with the supervisor's config file and log options.
    command: list[str] = []
    #: permanent: always restarted; transient: only after an abnormal exit; temporary: never.
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    #: When the next child may start: this one's heartbeat says ready, its control socket
    #: answers ``ping``, or as soon as it is spawned. Empty = control for bus, else heartbeat.
    ready: Literal["", "heartbeat", "control", "spawn"] = ""
    #: The child publishes ``hb.<name>``, so the watchdog applies to it.
    heartbeat: bool = True
    heartbeat_timeout_s: float = 0.0
    shutdown_timeout_s: float = 0.0
    ready_timeout_s: float = 0.0


class SupervisorConfig(WorkerBase, frozen=True, kw_only=True):
    metrics_port: int = 9100
    control: str = "tcp://127.0.0.1:5600"
    #: Bounds the whole ordered shutdown of the children (each has its own shutdown timeout).
    drain_deadline_s: float = 120.0
    #: Which children restart with a failed one: itself, it and those started after it, or all.
    strategy: Literal["one_for_one", "rest_for_one", "one_for_all"] = "one_for_one"
    #: The restart intensity, counted per worker: more than ``max_restarts`` restarts of one
    #: worker within ``max_restarts_period_s`` is what ``on_intensity`` decides about.
    max_restarts: int = 5
    max_restarts_period_s: float = 60.0
    #: "park": that worker is parked - restarted after the park backoff below while every
    #: other worker keeps running, shown as parked, counted (kxfeed_supervisor_parked_total)
    #: and alerted; it is unparked after running ``max_restarts_period_s`` without failing.
    #: "exit": the supervisor stops every child in reverse order and exits 1.
    on_intensity: Literal["park", "exit"] = "park"
    #: A parked worker's restart delay: initial * 2^n, capped, minus up to ``backoff_jitter``.
    park_backoff_initial_s: float = 30.0
    park_backoff_max_s: float = 600.0
    #: Per-child restart delay: initial * multiplier^n, capped, minus up to ``backoff_jitter`` of
    #: itself at random; n resets when the child had run ``backoff_reset_s`` before failing.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.2
    backoff_reset_s: float = 60.0
    #: A running child whose last heartbeat is older than this is stopped and restarted.
    heartbeat_timeout_s: float = 10.0
    #: SIGTERM, then SIGKILL to the child's process group after this long.
    shutdown_timeout_s: float = 10.0
    #: A started child that has not reported ready after this long is restarted.
    ready_timeout_s: float = 30.0
    #: Workers to run, in start order (empty = every worker this install has).
    workers: list[str] = []
    #: Explicit child specs; when given they are the whole list, in start order.
    children: list[SupervisorChild] = []
    #: Where the children's output goes while ``kxfeed up`` shows its live status
    #: (empty = ``<data_dir>/logs``).
    log_dir: str = ""
