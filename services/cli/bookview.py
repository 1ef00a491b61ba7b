"""Human-readable tables for the orderbook's query answers (used by ``kxfeed book``/``scan``).

Answers carry exact integers (prices in $0.0001, sizes in hundredths, mids doubled);
this module only formats them, with the exact helpers of :mod:`shared.units`.
"""

from __future__ import annotations

from typing import Any

from shared.units import ONE_DOLLAR, format_count, format_fixed, format_price


def price(p: int | None) -> str:
    return "-" if p is None else format_price(p)


def size(n: int | None) -> str:
    return "-" if n is None else format_count(n)


def mid(mid_x2: int | None) -> str:
    """Twice the mid in $0.0001 -> dollars, one more decimal when the mid falls between ticks."""
    if mid_x2 is None:
        return "-"
    if mid_x2 % 2 == 0:
        return format_price(mid_x2 // 2)
    return format_fixed(mid_x2 * 5, 5)


def signed_mid(change_x2: int | None) -> str:
    if change_x2 is None:
        return "-"
    sign = "+" if change_x2 > 0 else "-" if change_x2 < 0 else ""
    return sign + mid(abs(change_x2))


def implied(mid_x2: int | None) -> str:
    """The mid as an implied YES probability, in percent (exact)."""
    return "-" if mid_x2 is None else format_fixed(mid_x2 * 5, 3) + "%"


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right if right is not None else set(range(1, len(headers)))
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def book(ans: dict[str, Any]) -> str:
    state = "VALID" if ans["valid"] else f"INVALID ({ans['reason']})"
    age = "-" if ans["age_s"] is None else f"{ans['age_s']:.1f}s"
    head = [
        f"{ans['ticker']}  {state}",
        f"conn {ans['conn']}  sid {ans['sid']}  xseq {ans['xseq']}  hash {ans['hash']}  last change {age} ago"
        f"  levels yes {ans['levels']['yes']} / no {ans['levels']['no']}"
        + ("" if ans["tick_checked"] else "  (tick structure unknown: not checked)"),
    ]
    top = ans.get("top")
    if top:
        head.append(
            f"YES bid {price(top['yes_bid'])} x {size(top['yes_bid_size'])}   "
            f"YES ask {price(top['yes_ask'])} x {size(top['yes_ask_size'])}   "
            f"mid {mid(top['mid_x2'])}   spread {price(top['spread'])}   implied {implied(top['mid_x2'])}"
        )
    elif not ans["valid"]:
        head.append("not shown as a market: the book is INVALID until a fresh snapshot arrives")
    yes, no = ans["yes"], ans["no"]
    rows = []
    for i in range(max(len(yes), len(no))):
        y = yes[i] if i < len(yes) else None
        n = no[i] if i < len(no) else None
        rows.append(
            [
                price(y[0]) if y else "",
                size(y[1]) if y else "",
                price(n[0]) if n else "",
                size(n[1]) if n else "",
                price(ONE_DOLLAR - n[0]) if n else "",
            ]
        )
    body = table(["YES bid", "size", "NO bid", "size", "= YES ask"], rows, right={0, 1, 2, 3, 4})
    return "\n".join([*head, "", body])


def movers(rows: list[dict[str, Any]], by: str) -> str:
    out = [
        [
            r["ticker"],
            mid(r["mid_x2"]),
            mid(r["ref_mid_x2"]),
            signed_mid(r["change_x2"]),
            size(r["volume"]),
            f"{r['since_s']:.0f}s",
            "" if r["valid"] else "INVALID",
        ]
        for r in rows
    ]
    title = "largest mid moves" if by == "mid" else "most traded"
    return title + "\n" + table(["market", "mid", "was", "change", "volume", "over", ""], out)


def spreads(rows: list[dict[str, Any]], order: str) -> str:
    out = [
        [
            r["ticker"],
            price(r["spread"]),
            price(r["yes_bid"]),
            price(r["yes_ask"]),
            size(r["yes_bid_size"]),
            size(r["yes_ask_size"]),
            mid(r["mid_x2"]),
        ]
        for r in rows
    ]
    return f"{order} spreads\n" + table(
        ["market", "spread", "YES bid", "YES ask", "bid size", "ask size", "mid"], out
    )


def stale(rows: list[dict[str, Any]]) -> str:
    out = [
        [
            r["ticker"],
            "VALID" if r["valid"] else f"INVALID ({r['reason']})",
            f"{r['age_s']:.1f}s",
            "-" if r["invalid_for_s"] is None else f"{r['invalid_for_s']:.1f}s",
            str(r["snapshot_requests"]),
        ]
        for r in rows
    ]
    return table(["market", "state", "last change", "invalid for", "snapshot requests"], out, right={2, 3, 4})
