"""Property tests: random Kalshi wire streams in both price modes build exactly the book a
naive reference model builds, level by level; random corruptions are always detected.

The truth is a list of book operations on NO-axis prices. It is written out as Kalshi
``orderbook_snapshot``/``orderbook_delta`` frames (decimal strings, sometimes "0.43",
sometimes "0.4300") either in the default mode or with ``use_yes_price`` (NO prices
re-expressed as $1 - q), then turned into bus messages by the small normaliser below,
which does what the connector does. The reference model applies the truth directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.orderbook.emit import Emitter
from shared.book.book import NO, YES, level_hash
from shared.book.builder import Builder
from shared.messages import BookDelta, BookSnapshot, MarketMeta, PriceRange, TopOfBook
from shared.units import ONE_DOLLAR, format_count, format_price, parse_count, parse_price
from tests.support.messages import book_meta

LADDERS = {
    "linear_cent": [PriceRange(0, 10_000, 100)],
    "tapered_deci_cent": [PriceRange(0, 1000, 10), PriceRange(1000, 9000, 100), PriceRange(9000, 10_000, 10)],
    "deci_cent": [PriceRange(0, 10_000, 10)],
}


def yes_prices(name: str) -> list[int]:
    out: set[int] = set()
    for r in LADDERS[name]:
        out.update(range(r.start, r.end + 1, r.step))
    return sorted(p for p in out if 0 < p < ONE_DOLLAR)


# ---- the wire, both modes, and a normaliser like the connector's -------------------------


def wire_price(p: int, trim: bool) -> str:
    text = format_price(p)
    return text.rstrip("0").rstrip(".") if trim and "." in text and not text.endswith(".0000") else text


def to_wire(
    kind: str, ticker: str, sid: int, seq: int, body: dict[str, Any], yes_mode: bool, trim: bool
) -> dict[str, Any]:
    """One Kalshi frame. NO prices go out as $1 - q when ``yes_mode`` (use_yes_price)."""

    def px(side: str, p: int) -> str:
        return wire_price(ONE_DOLLAR - p if (yes_mode and side == "no") else p, trim)

    msg: dict[str, Any] = {"market_ticker": ticker, "market_id": f"id-{ticker}"}
    if kind == "snapshot":
        for side in ("yes", "no"):
            levels = body[side]
            if levels:  # Kalshi omits an empty side's key
                msg[f"{side}_dollars_fp"] = [[px(side, p), format_count(n)] for p, n in levels]
        return {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg}
    msg.update(
        price_dollars=px(body["side"], body["price"]), delta_fp=format_count(body["delta"]), side=body["side"]
    )
    return {"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": msg}


def normalise(frame: dict[str, Any], yes_mode: bool, conn: int = 1) -> BookSnapshot | BookDelta:
    m = frame["msg"]

    def px(side: str, text: str) -> int:
        p = parse_price(text)
        return ONE_DOLLAR - p if (yes_mode and side == "no") else p

    common = {
        "ticker": m["market_ticker"],
        "market_id": m["market_id"],
        "conn": conn,
        "sid": frame["sid"],
        "xseq": frame["seq"],
    }
    if frame["type"] == "orderbook_snapshot":
        sides = {
            s: [(px(s, p), parse_count(n)) for p, n in m.get(f"{s}_dollars_fp", [])] for s in ("yes", "no")
        }
        return BookSnapshot(**common, yes=sides["yes"], no=sides["no"])
    side = m["side"]
    return BookDelta(
        **common, side=side, price=px(side, m["price_dollars"]), delta=parse_count(m["delta_fp"], signed=True)
    )


# ---- the truth and the reference model ------------------------------------------------------


@dataclass
class Ref:
    """The naive model: a dict per (market, side), no cleverness."""

    levels: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)

    def snapshot(self, t: str, yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> None:
        self.levels[(t, "yes")] = {p: n for p, n in yes if n}
        self.levels[(t, "no")] = {p: n for p, n in no if n}

    def delta(self, t: str, side: str, p: int, d: int) -> None:
        lv = self.levels[(t, side)]
        lv[p] = lv.get(p, 0) + d
        if lv[p] == 0:
            del lv[p]

    def best(self, t: str, side: str) -> int:
        return max(self.levels[(t, side)], default=0)

    def crossed_if(self, t: str, side: str, p: int) -> bool:
        other = "no" if side == "yes" else "yes"
        return p + self.best(t, other) >= ONE_DOLLAR

    def hash(self, t: str) -> int:
        h = 0
        for side, code in (("yes", YES), ("no", NO)):
            for p, n in self.levels[(t, side)].items():
                h ^= level_hash(code, p, n)
        return h


Op = tuple[str, str, dict[str, Any]]  # (kind, ticker, body)


@st.composite
def truths(draw: st.DrawFn, max_ops: int = 60) -> tuple[list[Op], dict[str, str], Ref]:
    """A valid stream: snapshots first, then deltas and fresh snapshots, never negative or crossed."""
    n_markets = draw(st.integers(1, 3))
    tickers = [f"KXPROP-M{i}" for i in range(n_markets)]
    ladders = {t: draw(st.sampled_from(sorted(LADDERS))) for t in tickers}
    ref = Ref()
    ops: list[Op] = []

    def snapshot(t: str) -> None:
        prices = yes_prices(ladders[t])
        raw_yes = draw(st.lists(st.tuples(st.sampled_from(prices), st.integers(0, 50_000)), max_size=8))
        raw_no = draw(st.lists(st.tuples(st.sampled_from(prices), st.integers(0, 50_000)), max_size=8))
        yes = dict(raw_yes)
        no = {ONE_DOLLAR - p: n for p, n in raw_no}  # NO bids on the NO axis
        # Uncross: drop NO levels at or above $1 - best YES bid.
        best_yes = max((p for p, n in yes.items() if n), default=0)
        no = {p: n for p, n in no.items() if p + best_yes < ONE_DOLLAR}
        ops.append(("snapshot", t, {"yes": sorted(yes.items()), "no": sorted(no.items())}))
        ref.snapshot(t, list(yes.items()), list(no.items()))

    for t in tickers:
        snapshot(t)
    for _ in range(draw(st.integers(0, max_ops))):
        t = draw(st.sampled_from(tickers))
        if draw(st.integers(0, 15)) == 0:
            snapshot(t)
            continue
        side = draw(st.sampled_from(["yes", "no"]))
        resting = sorted(ref.levels[(t, side)])
        work_resting: bool = draw(st.booleans())
        if resting and work_resting:  # work an existing level, often the best one
            at_best: bool = draw(st.booleans())
            p = resting[-1] if at_best else draw(st.sampled_from(resting))
        else:
            p = draw(st.sampled_from(yes_prices(ladders[t])))
            if side == "no":
                p = ONE_DOLLAR - p
        have = ref.levels[(t, side)].get(p, 0)
        if have and draw(st.booleans()):
            d = -have if draw(st.booleans()) else -draw(st.integers(1, have))
        else:
            d = draw(st.integers(1, 30_000))
            if ref.crossed_if(t, side, p):
                continue
        ops.append(("delta", t, {"side": side, "price": p, "delta": d}))
        ref.delta(t, side, p, d)
    return ops, ladders, ref


def wire_stream(ops: list[Op], yes_mode: bool, trim: bool) -> list[dict[str, Any]]:
    return [to_wire(kind, t, 1, seq, body, yes_mode, trim) for seq, (kind, t, body) in enumerate(ops, 1)]


def metas(ladders: dict[str, str]) -> list[MarketMeta]:
    return [book_meta(t, LADDERS[name]) for t, name in ladders.items()]


# ---- properties ----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(truths(), st.booleans())
def test_both_wire_price_modes_build_exactly_the_reference_book(
    case: tuple[list[Op], dict[str, str], Ref], trim: bool
) -> None:
    ops, ladders, _ = case
    builders = {mode: Builder() for mode in (False, True)}
    refs = {mode: Ref() for mode in (False, True)}
    for mode, b in builders.items():
        b.apply_many(metas(ladders), 0.0)
        for (kind, t, body), frame in zip(ops, wire_stream(ops, mode, trim), strict=True):
            b.apply(normalise(frame, mode), 1.0)
            ref = refs[mode]
            if kind == "snapshot":
                ref.snapshot(t, body["yes"], body["no"])
            else:
                ref.delta(t, body["side"], body["price"], body["delta"])
            book = b.books[t]
            assert book.valid, (book.reason, kind, body)
            assert book.yes == ref.levels[(t, "yes")]
            assert book.no == ref.levels[(t, "no")]
            assert (book.best_yes, book.best_no) == (ref.best(t, "yes"), ref.best(t, "no"))
            assert book.hash == ref.hash(t) == book.full_hash()
        assert not b.invalid and b.unchecked == 0
    # The two modes are the same book, message by message and in the end.
    for t in ladders:
        assert builders[False].books[t].hash == builders[True].books[t].hash
        assert builders[False].books[t].levels(YES) == builders[True].books[t].levels(YES)
        assert builders[False].books[t].levels(NO) == builders[True].books[t].levels(NO)


CORRUPTIONS = ["negative_level", "crossed", "off_tick", "no_snapshot", "other_subscription"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(truths(max_ops=30), st.sampled_from(CORRUPTIONS), st.booleans(), st.data())
def test_random_corruptions_are_always_detected_and_nothing_false_is_published(
    case: tuple[list[Op], dict[str, str], Ref], corruption: str, yes_mode: bool, data: st.DataObject
) -> None:
    ops, ladders, ref = case
    b = Builder()
    em = Emitter(b)
    b.apply_many(metas(ladders), 0.0)
    for frame in wire_stream(ops, yes_mode, trim=False):
        b.apply(normalise(frame, yes_mode), 1.0)
    em.flush(1.0)
    assert not b.invalid
    t = data.draw(st.sampled_from(sorted(ladders)))
    prices = yes_prices(ladders[t])
    seq = len(ops) + 1
    sid = 1
    expected = corruption
    if corruption == "negative_level":
        side = data.draw(st.sampled_from(["yes", "no"]))
        p = data.draw(st.sampled_from(prices))
        p = p if side == "yes" else ONE_DOLLAR - p
        body = {
            "side": side,
            "price": p,
            "delta": -(ref.levels[(t, side)].get(p, 0) + data.draw(st.integers(1, 500))),
        }
    elif corruption == "crossed":
        best = {"yes": ref.best(t, "yes"), "no": ref.best(t, "no")}
        if not best["yes"] and not best["no"]:  # an empty book needs one level before it can cross
            first = {"side": "yes", "price": prices[0], "delta": 100}
            b.apply(normalise(to_wire("delta", t, sid, seq, first, yes_mode, False), yes_mode), 2.0)
            assert b.books[t].valid
            best["yes"] = prices[0]
            seq += 1
        side = data.draw(st.sampled_from(["yes", "no"]))
        if not best["no" if side == "yes" else "yes"]:
            side = "no" if side == "yes" else "yes"
        if side == "yes":  # a YES bid at or above the YES ask ($1 - best NO bid)
            p = data.draw(st.sampled_from([q for q in prices if q >= ONE_DOLLAR - best["no"]]))
        else:  # a NO bid at or above the NO ask ($1 - best YES bid)
            p = ONE_DOLLAR - data.draw(st.sampled_from([y for y in prices if y <= best["yes"]]))
        body = {"side": side, "price": p, "delta": data.draw(st.integers(1, 500))}
    elif corruption == "off_tick":
        side = data.draw(st.sampled_from(["yes", "no"]))
        p = data.draw(st.sampled_from(prices)) + data.draw(st.sampled_from([1, 3, 7]))
        p = p if side == "yes" else ONE_DOLLAR - p
        body = {"side": side, "price": p, "delta": 100}
    elif corruption == "no_snapshot":
        t = "KXPROP-NEVER-SNAPSHOTTED"
        body = {"side": "yes", "price": 5000, "delta": 100}
    else:  # a delta from a subscription that never sent this market a snapshot
        sid = 2
        body = {"side": "yes", "price": prices[0], "delta": 100}
        expected = "no_snapshot"
    before = dict(b.books)
    b.apply(normalise(to_wire("delta", t, sid, seq, body, yes_mode, False), yes_mode), 3.0)
    book = b.books[t]
    assert not book.valid and book.reason == expected
    out = em.flush(3.0)
    tobs = [m for m in out if isinstance(m, TopOfBook) and m.ticker == t]
    assert tobs and all(not m.valid and m.yes_bid is None and m.yes_ask is None for m in tobs)
    assert t in b.due_requests(3.0)[0]
    # Later deltas are not applied and nothing about t is published as valid until a snapshot.
    for i in range(3):
        later = {"side": "yes", "price": prices[0], "delta": 100}
        b.apply(normalise(to_wire("delta", t, 1, seq + 1 + i, later, yes_mode, False), yes_mode), 4.0)
    assert not b.books[t].valid
    assert not [m for m in em.flush(4.0) if getattr(m, "ticker", "") == t and getattr(m, "valid", False)]
    # Every other market is untouched and still matches the reference.
    for other, ob in before.items():
        if other != t:
            assert ob.valid and ob.yes == ref.levels[(other, "yes")] and ob.no == ref.levels[(other, "no")]
