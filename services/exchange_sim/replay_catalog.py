"""The recorded markets as the simulator's catalog: events, markets and series rebuilt from the
``MarketMeta`` the connector journaled, so REST lists exactly what was recorded and a
discovering client (kxfeed's connector) finds and subscribes to it."""

from __future__ import annotations

import uuid

from services.exchange_sim.catalog import PRICE_STRUCTURES, EventDef, MarketDef, SeriesDef
from services.exchange_sim.replay_record import Recording, ReplayError
from shared.messages import MarketMeta


def structure_of(meta: MarketMeta) -> str:
    """The simulator's name for a market's recorded price ladder."""
    bands = tuple((r.start, r.end, r.step) for r in meta.price_ranges)
    for name, known in PRICE_STRUCTURES.items():
        if known == bands:
            return name
    if not bands:
        return "linear_cent"  # Kalshi's default ladder, what a market without ranges trades on
    raise ReplayError(
        f"{meta.ticker}: recorded price ladder {list(bands)} is none the simulator serves "
        f"({', '.join(PRICE_STRUCTURES)})"
    )


def catalog(rec: Recording, known_series: set[str]) -> tuple[list[EventDef], list[SeriesDef]]:
    """The recorded markets as the simulator's events (grouped by event ticker), and a series
    for every one of their series the simulator does not list itself."""
    start_ms = rec.window.since // 1_000_000 if rec.window.since else rec.first_ns // 1_000_000
    by_event: dict[str, list[MarketDef]] = {}
    metas: dict[str, MarketMeta] = {}
    series: dict[str, SeriesDef] = {}
    for ticker in rec.markets:
        meta = rec.metas[ticker]
        open_ms = meta.open_ms or start_ms
        close_ms = meta.close_ms or open_ms
        mid = rec.market_ids.get(ticker) or str(uuid.uuid5(uuid.NAMESPACE_URL, f"kxfeed-replay:{ticker}"))
        by_event.setdefault(meta.event_ticker, []).append(
            MarketDef(
                ticker=ticker,
                event_ticker=meta.event_ticker,
                market_id=mid,
                title=meta.title,
                yes_sub_title=meta.yes_sub_title,
                no_sub_title=meta.no_sub_title,
                rules_primary="",
                rules_secondary="",
                created_ms=min(open_ms, start_ms),
                open_ms=open_ms,
                close_ms=close_ms,
                expected_expiration_ms=meta.expiration_ms or close_ms,
                settlement_timer_s=0,
                can_close_early=False,
                price_level_structure=structure_of(meta),
                strike_type=meta.strike_type or "",
            )
        )
        metas.setdefault(meta.event_ticker, meta)
        if meta.series_ticker not in known_series and meta.series_ticker not in series:
            series[meta.series_ticker] = SeriesDef(
                ticker=meta.series_ticker,
                title=meta.series_ticker,
                category=meta.category,
                tags=(),
                frequency="custom",
                fee_type=meta.fee_type,
                fee_multiplier=meta.fee_multiplier_ppm / 1_000_000,
                source_name="",
                source_url="",
            )
    events = [
        EventDef(
            event_ticker=ev,
            series_ticker=metas[ev].series_ticker,
            title=metas[ev].title,
            sub_title="",
            mutually_exclusive=False,
            collateral_return_type="",
            category=metas[ev].category,
            markets=tuple(markets),
            fair=tuple(5_000 for _ in markets),
            created_ms=min(m.created_ms for m in markets),
        )
        for ev, markets in by_event.items()
    ]
    return events, list(series.values())
