"""Support for the connector tests (no tests here): frame builders and a scripted exchange."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from services.connector.session import Session
from services.connector.validity import Recovery
from shared.messages import Message, to_jsonable

TS = 1_790_000_000_000_000_000  # ns
TS_MS = TS // 1_000_000
FIX = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"
#: The markets and clock of the recorded ``ws_session_*.jsonl`` sequences.
GOLDEN_MARKETS = ["KXNBAGAME-26NOV03LALBOS-LAL", "KXNBAGAME-26NOV03LALBOS-BOS"]
GOLDEN_TS = 1_793_749_269_000_000_000


Jsonl = list[dict[str, Any]]


def replay(name: str, private: tuple[str, ...] = ()) -> tuple[Jsonl, Jsonl, Session]:
    """Feed ``<name>.jsonl``, a recorded session, one frame at a time.

    Returns its bus output, the commands it sent and the session itself."""
    s = Session(42, recovery=Recovery(), max_markets=500, private=private)
    s.start(GOLDEN_MARKETS, 0.0)
    cmds = [json.loads(c) for c in s.table.take_commands()]
    out: Jsonl = []
    for i, line in enumerate((FIX / f"{name}.jsonl").read_bytes().splitlines()):
        s.frames([line], GOLDEN_TS + i, 1.0 + i / 100)
        cmds.extend(json.loads(c) for c in s.table.take_commands())
        out.extend(to_jsonable(m) for m in s.take())
    return out, cmds, s


def assert_golden(name: str, out: Jsonl, cmds: Jsonl) -> None:
    """Compare with ``<name>.golden.json`` (rewritten instead when ``KXFEED_REGEN_GOLDEN`` is set)."""
    golden_path = FIX / f"{name}.golden.json"
    got = json.loads(json.dumps({"bus": out, "commands": cmds}))  # tuples -> lists, as stored
    if os.environ.get("KXFEED_REGEN_GOLDEN"):
        golden_path.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(golden_path.read_text())


def counted(s: Session, name: str, label: str = "") -> int:
    """What the session's core counted (its gaps are counted by its Recovery): the worker
    exports these counts as ``kxfeed_ws_<name>_total``."""
    return s.counts.of(name, label) + s.recovery.counts.of(name, label)


def snap(sid: int, seq: int, ticker: str, yes: Any = (), no: Any = ()) -> dict[str, Any]:
    msg: dict[str, Any] = {"market_ticker": ticker, "market_id": f"id-{ticker}"}
    if yes:
        msg["yes_dollars_fp"] = [[p, c] for p, c in yes]
    if no:
        msg["no_dollars_fp"] = [[p, c] for p, c in no]
    return {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg}


def delta(sid: int, seq: int, ticker: str, price: str, d: str, side: str = "yes") -> dict[str, Any]:
    return {
        "type": "orderbook_delta",
        "sid": sid,
        "seq": seq,
        "msg": {
            "market_ticker": ticker,
            "market_id": f"id-{ticker}",
            "price_dollars": price,
            "delta_fp": d,
            "side": side,
            "ts_ms": TS_MS - 5,
        },
    }


class Script:
    """Drives a Session like an exchange would: answers its subscribes with sids."""

    def __init__(
        self, markets: list[str], *, max_markets: int = 100, recovery: Recovery | None = None, **kw: Any
    ):
        self.recovery = recovery or Recovery()
        self.s = Session(7, recovery=self.recovery, max_markets=max_markets, **kw)
        self.next_sid = 1
        #: (channel, frozenset(markets)) -> sid for every subscription the script confirmed
        self.sids: dict[str, list[int]] = {}
        self.s.start(markets, 0.0)

    def commands(self) -> list[dict[str, Any]]:
        return [json.loads(c) for c in self.s.table.take_commands()]

    def feed(self, *frames: dict[str, Any] | bytes, now: float = 0.0) -> list[Message]:
        raws = [f if isinstance(f, bytes) else json.dumps(f).encode() for f in frames]
        self.s.frames(raws, TS, now)
        return self.s.take()

    def confirm(self, cmds: list[dict[str, Any]], now: float = 0.0) -> list[Message]:
        """Answer every subscribe in ``cmds`` with fresh sids (one per channel)."""
        replies: list[dict[str, Any]] = []
        for c in cmds:
            if c["cmd"] == "subscribe":
                for ch in c["params"]["channels"]:
                    sid = self.next_sid
                    self.next_sid += 1
                    self.sids.setdefault(ch, []).append(sid)
                    replies.append({"id": c["id"], "type": "subscribed", "msg": {"channel": ch, "sid": sid}})
            elif c["cmd"] == "unsubscribe":
                for sid in c["params"]["sids"]:
                    replies.append({"id": c["id"], "sid": sid, "seq": 1, "type": "unsubscribed"})
            elif c["cmd"] == "update_subscription":
                replies.append({"id": c["id"], "sid": c["params"]["sids"][0], "type": "ok", "msg": {}})
        return self.feed(*replies, now=now)

    def boot(self) -> list[Message]:
        return self.confirm(self.commands())

    def book_sid(self, ticker: str) -> int:
        sub = self.s.table.book_sub(ticker)
        assert sub is not None and sub.sid
        return sub.sid


def kinds(msgs: list[Message]) -> list[str]:
    return [m.kind for m in msgs]


#: Two markets on one book subscription (the range, error and seq tests start from their books).
A, B = "KXA-26JAN01-X", "KXB-26JAN01-Y"


def booted() -> tuple[Script, int]:
    """A session subscribed to A and B, each with an accepted snapshot (seqs 1 and 2)."""
    sc = Script([A, B])
    sc.boot()
    sid = sc.book_sid(A)
    out = sc.feed(snap(sid, 1, A, yes=[("0.40", "10.00")]), snap(sid, 2, B, yes=[("0.40", "10.00")]))
    assert kinds(out) == ["snap", "snap"]
    return sc, sid
