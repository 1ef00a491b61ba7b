"""Frame bodies of recorded messages, byte for byte as :mod:`services.exchange_sim.frames`
encodes the simulator's own, with the per-value text cached: replay at max speed encodes one
body per recorded message, and prices and counts repeat far more than they differ."""

from __future__ import annotations

from services.exchange_sim import frames
from services.exchange_sim.state import MarketState
from shared.messages import Ticker
from shared.units import ONE_DOLLAR, format_count, format_price

#: Distinct counts kept as text before the cache starts over (prices are bounded by $1).
_COUNT_CACHE = 65_536


class BodyCache:
    def __init__(self) -> None:
        self._prices: dict[int, bytes] = {}
        self._counts: dict[int, bytes] = {}
        self._heads: dict[str, bytes] = {}

    def price(self, p: int) -> bytes:
        out = self._prices.get(p)
        if out is None:
            out = self._prices[p] = format_price(p).encode()
        return out

    def count(self, c: int) -> bytes:
        out = self._counts.get(c)
        if out is None:
            if len(self._counts) >= _COUNT_CACHE:
                self._counts.clear()
            out = self._counts[c] = format_count(c).encode()
        return out

    def head(self, m: MarketState) -> bytes:
        out = self._heads.get(m.d.ticker)
        if out is None:
            out = self._heads[m.d.ticker] = b'{"market_ticker":"%s","market_id":"%s",' % (
                m.d.ticker.encode(),
                m.d.market_id.encode(),
            )
        return out

    def delta(
        self, m: MarketState, yes: bool, price: int, delta: int, ts_ms: int
    ) -> tuple[bytes, bytes | None]:
        """As :func:`frames.delta_bodies`: the body, and for a NO-side delta its YES-scale twin."""
        head = self.head(m)
        tail = b'"delta_fp":"%s","side":"%s","ts":"%s","ts_ms":%d}' % (
            self.count(delta),
            b"yes" if yes else b"no",
            frames.rfc3339(ts_ms).encode(),
            ts_ms,
        )
        body = b'%s"price_dollars":"%s",%s' % (head, self.price(price), tail)
        if yes:
            return body, None
        return body, b'%s"price_dollars":"%s",%s' % (head, self.price(ONE_DOLLAR - price), tail)

    def ticker(self, m: MarketState, t: Ticker) -> bytes:
        """A recorded ticker as the simulator's ticker body (its own values, not the state's)."""
        ts_ms = t.ts_exch if t.ts_exch is not None else t.ts_recv // 1_000_000
        return self.head(m) + (
            b'"price_dollars":"%s","yes_bid_dollars":"%s","yes_ask_dollars":"%s","volume_fp":"%s",'
            b'"open_interest_fp":"%s","dollar_volume":%d,"dollar_open_interest":%d,"yes_bid_size_fp":"%s",'
            b'"yes_ask_size_fp":"%s","last_trade_size_fp":"%s","ts":%d,"ts_ms":%d,"time":"%s"}'
            % (
                b"" if t.price is None else self.price(t.price),
                self.price(t.yes_bid),
                self.price(t.yes_ask),
                self.count(t.volume),
                self.count(t.open_interest),
                t.dollar_volume,
                t.dollar_open_interest,
                self.count(t.yes_bid_size),
                self.count(t.yes_ask_size),
                self.count(t.last_trade_size),
                ts_ms // 1000,
                ts_ms,
                frames.rfc3339(ts_ms).encode(),
            )
        )
