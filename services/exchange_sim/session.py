"""One WS connection's protocol state: commands, subscriptions, sids and per-sid seq.

Pure: :meth:`SimSession.handle` takes a client text frame and returns the frames
to send back (replies, then any snapshots), reading books from the public
state. The dispatcher routes live emissions through :attr:`SimSession.routes`
(per channel: ticker -> subscriptions) and :attr:`SimSession.alls` (per channel:
subscriptions to every market).

Behaviour follows the protocol reference; where Kalshi's is unconfirmed the
choice is noted: a repeated subscribe for a channel merges its markets into the
existing subscription and answers ``subscribed`` with the existing sid (under a
per-subscription market cap, ``[sim] max_markets_per_sub``, a subscribe naming more
markets than the cap is error 26, and one that fits the cap but would take the existing
subscription past it gets a subscription of its own: so a client splitting a refused
subscription can place every market);
``unsubscribed`` reports the sid's last seq (at least 1); the ``ok`` to
update_subscription repeats it, or takes the next one when
``SessionLimits.ok_consumes_seq`` is set; ``get_snapshot`` answers ``ok`` then
sends snapshots on the next seqs, each carrying the command's ``id``. An unknown
market is error 11 naming it in ``market_tickers`` (16, "Market not found", is
retired); a simulator bug is error 1 (17 is retired). An error about a live
subscription carries its ``sid``, and on a sequenced channel its last ``seq``
(errors never take a number).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from services.exchange_sim import frames, metrics
from services.exchange_sim.emission import P_SNAPSHOT, P_TICKER
from services.exchange_sim.state import ExchangeState
from services.exchange_sim.subscription import (
    ADD_DELETE,
    CHANNELS,
    MARKET_FILTERED,
    NO_ACCESS,
    SEQ_CHANNELS,
    TICKER_RE,
    ProtoError,
    SessionLimits,
    SimSubscription,
    command_bucket,
)

_DECODER = msgspec.json.Decoder()
_log = logging.getLogger("kxfeed.sim.session")


class SimSession:
    def __init__(self, conn_id: int, state: ExchangeState, limits: SessionLimits | None = None) -> None:
        self.conn_id = conn_id
        self.state = state
        self.limits = limits or SessionLimits()
        self.subs: dict[int, SimSubscription] = {}
        self.by_channel: dict[str, SimSubscription] = {}
        self.next_sid = 1
        self.routes: tuple[dict[str, list[SimSubscription]], ...] = ({}, {}, {}, {})
        self.alls: tuple[list[SimSubscription], ...] = ([], [], [], [])
        self._bucket = command_bucket(self.limits.session_cmd_rate)
        #: Called with (sid, seq) for every seq-numbered frame this session produces (ground truth).
        self.mark: Callable[[int, int], None] = _no_mark

    # ---- entry point ------------------------------------------------------------------------
    def handle(self, raw: str | bytes, now_ms: int) -> list[bytes]:
        try:
            cmd = _DECODER.decode(raw)
        except msgspec.DecodeError:
            cmd = None
        cmd_id = cmd.get("id") if isinstance(cmd, dict) else None
        if not isinstance(cmd, dict) or (
            cmd_id is not None and (not isinstance(cmd_id, int) or isinstance(cmd_id, bool) or cmd_id < 0)
        ):
            metrics.COMMAND_ERRORS.labels("1").inc()
            return [frames.error(None, 1)]
        name = cmd.get("cmd")
        out: list[bytes] = []
        try:
            if not self._bucket.take(now_ms / 1000.0, 1.0):
                raise ProtoError(27)
            if not isinstance(name, str):
                raise ProtoError(1 if name is not None else 5)
            if name == "list_subscriptions":
                out.append(
                    frames.reply(
                        cmd_id, "ok", [{"channel": s.channel, "sid": s.sid} for s in self.subs.values()]
                    )
                )
                return out
            handler = {"subscribe": self._subscribe, "unsubscribe": self._unsubscribe}.get(name)
            if name == "update_subscription":
                handler = self._update
            if handler is None:
                raise ProtoError(5)
            params = cmd.get("params")
            if params is None:
                raise ProtoError(2)
            if not isinstance(params, dict):
                raise ProtoError(1)
            handler(cmd_id, params, now_ms, out)
        except ProtoError as exc:
            metrics.COMMAND_ERRORS.labels(str(exc.code)).inc()
            sub = exc.sub
            top = {"sid": sub.sid, "seq": sub.error_seq()} if sub is not None else {}
            out.append(frames.error(cmd_id, exc.code, **top, **exc.extra))
        except Exception as exc:  # a simulator bug: the general processing error (17 is retired)
            _log.exception(
                "command failed", extra={"ctx": {"conn": self.conn_id, "cmd": name, "error": repr(exc)}}
            )
            metrics.COMMAND_ERRORS.labels("1").inc()
            out.append(frames.error(cmd_id, 1))
        return out

    # ---- subscribe --------------------------------------------------------------------------
    def _subscribe(self, cmd_id: int | None, params: dict[str, Any], now_ms: int, out: list[bytes]) -> None:
        channels = params.get("channels")
        if channels is None or channels == []:
            raise ProtoError(3)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ProtoError(1)
        for ch in channels:
            if ch in NO_ACCESS:
                raise ProtoError(9)
            if ch not in CHANNELS:
                raise ProtoError(8)
        tickers = self._markets(params, allow_ids="ticker" in channels and len(channels) == 1)
        for flag in ("send_initial_snapshot", "skip_ticker_ack", "use_yes_price"):
            if flag in params and not isinstance(params[flag], bool):
                raise ProtoError(1)
        if "orderbook_delta" in channels and not tickers:
            raise ProtoError(14)
        cap = self.limits.max_markets
        if cap and len(tickers) > cap and any(ch in MARKET_FILTERED for ch in channels):
            raise ProtoError(26)
        for ch in dict.fromkeys(channels):
            sub = self.by_channel.get(ch)
            if (
                sub is not None
                and cap
                and ch in MARKET_FILTERED
                and not sub.all
                and _overflows(sub, tickers, cap)
            ):
                sub = None  # merged it would pass the cap: a subscription of its own
            if sub is None:
                sub = SimSubscription(
                    self.next_sid,
                    ch,
                    yes_price=bool(params.get("use_yes_price", False)),
                    skip_ack=bool(params.get("skip_ticker_ack", False)),
                    rate=self.limits.sub_cmd_rate,
                )
                self.next_sid += 1
                self.subs[sub.sid] = sub
                self.by_channel[ch] = sub
            out.append(frames.reply(cmd_id, "subscribed", {"channel": ch, "sid": sub.sid}))
            if ch not in MARKET_FILTERED or not tickers:
                self._set_all(sub)
                if ch == "ticker" and params.get("send_initial_snapshot"):
                    self._tickers(sub, list(self.state.markets), now_ms, out)
                continue
            if sub.all:
                continue  # already takes every market
            added = self._add(sub, tickers)
            self._initial(sub, added, bool(params.get("send_initial_snapshot")), now_ms, out)

    def _initial(
        self, sub: SimSubscription, added: list[str], ticker_snap: bool, now_ms: int, out: list[bytes]
    ) -> None:
        if sub.channel == "orderbook_delta":
            self.snapshots(sub, added, now_ms, out)
        elif sub.channel == "ticker" and ticker_snap:
            self._tickers(sub, added, now_ms, out)

    def snapshots(
        self,
        sub: SimSubscription,
        tickers: list[str],
        now_ms: int,
        out: list[bytes],
        cmd_id: int | None = None,
    ) -> None:
        """``cmd_id``: the get_snapshot these answer; each snapshot carries it (id 0 = none)."""
        prefix = frames.with_id(P_SNAPSHOT, cmd_id) if cmd_id else P_SNAPSHOT
        for t in tickers:
            sub.seq += 1
            self.mark(sub.sid, sub.seq)
            body = frames.snapshot_body(self.state.markets[t], sub.yes_price)
            out.append(frames.data_frame(prefix, sub.sid, sub.seq, body, now_ms))

    def _tickers(self, sub: SimSubscription, tickers: list[str], now_ms: int, out: list[bytes]) -> None:
        for t in tickers:
            body = frames.ticker_body(self.state.markets[t], now_ms)
            out.append(frames.data_frame(P_TICKER, sub.sid, None, body, now_ms))

    # ---- unsubscribe ------------------------------------------------------------------------
    def _unsubscribe(self, cmd_id: int | None, params: dict[str, Any], now_ms: int, out: list[bytes]) -> None:
        sids = params.get("sids")
        if sids is None or sids == []:
            raise ProtoError(4)
        if not isinstance(sids, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in sids
        ):
            raise ProtoError(1)
        for sid in sids:
            if sid not in self.subs:
                raise ProtoError(7)
        for sid in dict.fromkeys(sids):
            sub = self.drop(sid)
            out.append(frames.reply(cmd_id, "unsubscribed", sid=sid, seq=max(1, sub.seq)))

    def drop(self, sid: int) -> SimSubscription:
        """Remove a subscription (unsubscribe, or a terminal error)."""
        sub = self.subs.pop(sid)
        if self.by_channel.get(sub.channel) is sub:
            del self.by_channel[sub.channel]
            # Under a market cap a channel may have had several: the newest left takes merges.
            for other in reversed(self.subs.values()):
                if other.channel == sub.channel:
                    self.by_channel[sub.channel] = other
                    break
        if sub.route is not None:
            if sub.all:
                self.alls[sub.route].remove(sub)
            for t in sub.markets:
                self._unroute(sub, t)
        return sub

    # ---- update_subscription ----------------------------------------------------------------
    def _update(self, cmd_id: int | None, params: dict[str, Any], now_ms: int, out: list[bytes]) -> None:
        sub, action = self._update_target(params)
        try:
            self._update_sub(sub, action, cmd_id, params, now_ms, out)
        except ProtoError as exc:
            exc.sub = exc.sub or sub  # every refusal from here on concerns this subscription
            raise

    def _update_target(self, params: dict[str, Any]) -> tuple[SimSubscription, str]:
        action = params.get("action")
        if action is None:
            raise ProtoError(15)
        if not isinstance(action, str):
            raise ProtoError(1)
        sid = params.get("sid")
        sids = params.get("sids")
        if (sid is None) == (sids is None):
            raise ProtoError(12)
        if sids is not None:
            if not isinstance(sids, list) or len(sids) != 1:
                raise ProtoError(12)
            sid = sids[0]
        if not isinstance(sid, int) or isinstance(sid, bool):
            raise ProtoError(1)
        sub = self.subs.get(sid)
        if sub is None:
            raise ProtoError(7)
        return sub, action

    def _update_sub(
        self,
        sub: SimSubscription,
        action: str,
        cmd_id: int | None,
        params: dict[str, Any],
        now_ms: int,
        out: list[bytes],
    ) -> None:
        if not sub.bucket.take(now_ms / 1000.0, 1.0):
            raise ProtoError(27)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise ProtoError(13)
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta":
                raise ProtoError(13)
            tickers = params.get("market_tickers")
            if not tickers:
                raise ProtoError(14)
            tickers = self._markets({"market_tickers": tickers}, allow_ids=False)
            for t in tickers:
                if t not in sub.markets:
                    raise ProtoError(11, market_ticker=t, market_tickers=[t])
            self._ok(cmd_id, sub, out)
            self.snapshots(sub, tickers, now_ms, out, cmd_id)
            return
        if sub.channel not in ADD_DELETE:
            raise ProtoError(13)
        tickers = self._markets(params, allow_ids=sub.channel == "ticker")
        if not tickers:
            raise ProtoError(14)
        if action == "add_markets":
            if sub.all:
                self._ok(cmd_id, sub, out)
                return
            cap = self.limits.max_markets
            if cap and _overflows(sub, tickers, cap):
                raise ProtoError(26)
            added = self._add(sub, tickers)
            self._ok(cmd_id, sub, out)
            self._initial(sub, added, bool(params.get("send_initial_snapshot")), now_ms, out)
        else:
            if sub.all:
                raise ProtoError(11)  # an all-markets subscription has no list to remove from
            for t in tickers:
                if t in sub.markets:
                    del sub.markets[t]
                    self._unroute(sub, t)
            self._ok(cmd_id, sub, out)

    def _ok(self, cmd_id: int | None, sub: SimSubscription, out: list[bytes]) -> None:
        msg: dict[str, Any] | None = None
        if not sub.skip_ack:
            msg = {"market_tickers": list(sub.markets)}
            if sub.channel == "ticker":
                msg["market_ids"] = [self.state.markets[t].d.market_id for t in sub.markets]
        if self.limits.ok_consumes_seq and sub.channel in SEQ_CHANNELS:
            sub.seq += 1  # the ok takes a number: the next snapshot or delta is seq + 1
            self.mark(sub.sid, sub.seq)
            seq = sub.seq
        else:
            seq = max(1, sub.seq)
        out.append(frames.reply(cmd_id, "ok", msg, sid=sub.sid, seq=seq))

    # ---- helpers ----------------------------------------------------------------------------
    def _markets(self, params: dict[str, Any], *, allow_ids: bool) -> list[str]:
        """The market filter of a command as tickers (validated), [] when absent."""
        one, many = params.get("market_ticker"), params.get("market_tickers")
        id_one, id_many = params.get("market_id"), params.get("market_ids")
        given = [x for x in (one, many, id_one, id_many) if x is not None]
        if len(given) > 1:
            raise ProtoError(11)
        if not given:
            return []
        if id_one is not None or id_many is not None:
            if not allow_ids:
                raise ProtoError(11)
            ids = [id_one] if id_one is not None else id_many
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise ProtoError(1)
            out = []
            for i in ids:
                try:
                    uuid.UUID(i)
                except ValueError:
                    raise ProtoError(11) from None  # msg.market_id left the spec; it names no ticker
                t = self.state.by_id.get(i)
                if t is None:
                    raise ProtoError(11)
                out.append(t)
            return list(dict.fromkeys(out))
        tickers = [one] if one is not None else many
        if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
            raise ProtoError(1)
        for t in tickers:
            if not TICKER_RE.match(t) or t not in self.state.markets:
                raise ProtoError(11, market_ticker=t, market_tickers=[t])
        return list(dict.fromkeys(tickers))

    def _add(self, sub: SimSubscription, tickers: list[str]) -> list[str]:
        added = []
        for t in tickers:
            if t not in sub.markets:
                sub.markets[t] = None
                if sub.route is not None:
                    self.routes[sub.route].setdefault(t, []).append(sub)
                added.append(t)
        return added

    def _set_all(self, sub: SimSubscription) -> None:
        if sub.all:
            return
        for t in list(sub.markets):
            self._unroute(sub, t)
        sub.markets.clear()
        sub.all = True
        if sub.route is not None:
            self.alls[sub.route].append(sub)

    def _unroute(self, sub: SimSubscription, ticker: str) -> None:
        if sub.route is None:
            return
        subs = self.routes[sub.route].get(ticker)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self.routes[sub.route][ticker]


def _overflows(sub: SimSubscription, tickers: list[str], cap: int) -> bool:
    """Whether adding ``tickers`` takes ``sub`` past ``cap`` markets."""
    return len(sub.markets) + sum(1 for t in tickers if t not in sub.markets) > cap


def _no_mark(sid: int, seq: int) -> None:
    pass
