"""Subscriptions on one connection: shards of markets, their sids, commands and replies.

Pure: no socket. Commands are queued as text frames in ``cmds`` for the shell to
send; replies are fed back with the ``on_*`` methods.

A *shard* is a group of at most ``max_markets`` markets; each shard has one
subscription (sid) per market channel (orderbook_delta, ticker, trade). The
lifecycle channel (market_lifecycle_v2, which also carries event_lifecycle and
event_fee_update) is one global subscription, and so is each enabled private channel
(fill, market_positions, user_orders, order_group_updates: this account's activity in every
market). Kalshi's subscribe is idempotent
(a second subscribe to a channel may be merged into the first sid): a reply that
names a sid we already hold is accepted as a merge, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.kalshi.ws import (
    SubscribeParams,
    UnsubscribeParams,
    UpdateAction,
    UpdateParams,
    WsCommand,
    encode_command,
)
from shared.log import get_logger

from .counts import Counts

# Re-exported: the table's users import these names from here.
from .shards import (
    BOOK,
    LIFECYCLE,
    MARKET_CHANNELS,
    PRIVATE_CHANNELS,
    Pending,
    Shard,
    Sub,
    _is_global,
)

_log = get_logger("connector.subscriptions")


class SubscriptionTable:
    def __init__(
        self,
        *,
        max_markets: int,
        use_yes_price: bool = False,
        lifecycle: bool = True,
        private: tuple[str, ...] = (),
        counts: Counts | None = None,
    ) -> None:
        if max_markets < 1:
            raise ValueError("max_markets_per_subscription must be >= 1")
        self.max_markets = max_markets
        self.use_yes_price = use_yes_price
        self.want_lifecycle = lifecycle
        self.cmds: list[str] = []
        self.pending: dict[int, Pending] = {}
        self.shards: dict[int, Shard] = {}
        self.market_shard: dict[str, Shard] = {}
        self.by_sid: dict[int, Sub] = {}
        #: sids we unsubscribed from: their late frames are expected and dropped.
        self.retired: set[int] = set()
        self.lifecycle: Sub | None = None
        self.want_private = tuple(c for c in PRIVATE_CHANNELS if c in private)
        #: channel -> the global subscription of that private channel.
        self.private: dict[str, Sub] = {}
        self._next_id = 1
        self._next_shard = 0
        self._split_logged: set[str] = set()
        #: ``commands`` by command, ``resubscribes`` by reason, ``splits`` by outcome (exported
        #: by the shell).
        self.counts = counts if counts is not None else Counts()

    # ---- commands --------------------------------------------------------------------------
    def _send(self, cmd: WsCommand) -> None:
        self.cmds.append(encode_command(cmd))
        name = cmd.cmd if cmd.cmd != "update_subscription" else f"update:{cmd.params.action}"  # type: ignore[union-attr]
        self.counts.add("commands", name)

    def _id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def take_commands(self) -> list[str]:
        out, self.cmds = self.cmds, []
        return out

    def _subscribe(self, channels: list[str], subs: tuple[Sub, ...], markets: list[str], now: float) -> None:
        cid = self._id()
        params = SubscribeParams(
            channels=channels,
            market_tickers=markets or None,
            use_yes_price=self.use_yes_price and BOOK in channels,
        )
        self._send(WsCommand(cid, "subscribe", params))
        self.pending[cid] = Pending("subscribe", subs, tuple(markets), now)

    def _update(self, sub: Sub, action: UpdateAction, markets: list[str], kind: str, now: float) -> int:
        cid = self._id()
        self._send(
            WsCommand(
                cid,
                "update_subscription",
                UpdateParams(sids=[sub.sid], action=action, market_tickers=markets),
            )
        )
        self.pending[cid] = Pending(kind, (sub,), tuple(markets), now)
        return cid

    def _unsubscribe(self, sids: list[int], now: float) -> None:
        cid = self._id()
        self._send(WsCommand(cid, "unsubscribe", UnsubscribeParams(sids=sids)))
        self.pending[cid] = Pending("unsubscribe", (), (), now)

    # ---- building the subscription set -----------------------------------------------------
    def _new_shard(self, markets: list[str], now: float) -> Shard:
        shard = Shard(self._next_shard, markets)
        self._next_shard += 1
        self.shards[shard.index] = shard
        for t in markets:
            self.market_shard[t] = shard
        subs = []
        for ch in MARKET_CHANNELS:
            sub = Sub(ch, shard.index, markets)
            shard.subs[ch] = sub
            subs.append(sub)
        self._subscribe(list(MARKET_CHANNELS), tuple(subs), sorted(markets), now)
        return shard

    def start(self, markets: Iterable[str], now: float) -> None:
        """Subscribe everything: the markets in shards, and the global lifecycle channel."""
        ordered = sorted(set(markets))
        for i in range(0, len(ordered), self.max_markets):
            self._new_shard(ordered[i : i + self.max_markets], now)
        if self.want_lifecycle:
            self.lifecycle = Sub(LIFECYCLE, -1)
            self._subscribe([LIFECYCLE], (self.lifecycle,), [], now)
        for ch in self.want_private:
            sub = self.private[ch] = Sub(ch, -1)
            self._subscribe([ch], (sub,), [], now)

    def add(self, tickers: Iterable[str], now: float) -> list[str]:
        """Add markets: into live shards with room (add_markets), else a new shard. Returns the added."""
        new = sorted({t for t in tickers if t not in self.market_shard})
        while new:
            shard = next(
                (
                    s
                    for s in self.shards.values()
                    if s.live() and not s.full and len(s.markets) < self.max_markets
                ),
                None,
            )
            if shard is None:
                take, new = new[: self.max_markets], new[self.max_markets :]
                self._new_shard(take, now)
                continue
            room = self.max_markets - len(shard.markets)
            take, new = new[:room], new[room:]
            shard.markets.update(take)
            for t in take:
                self.market_shard[t] = shard
            for sub in shard.subs.values():
                sub.markets.update(take)
                self._update(sub, "add_markets", take, "add", now)
        return sorted(set(tickers) & set(self.market_shard))

    def remove(self, tickers: Iterable[str], now: float) -> list[str]:
        """Remove markets (delete_markets; a shard left empty is unsubscribed). Returns the removed."""
        by_shard: dict[int, list[str]] = {}
        for t in tickers:
            shard = self.market_shard.pop(t, None)
            if shard is not None:
                shard.markets.discard(t)
                by_shard.setdefault(shard.index, []).append(t)
        removed: list[str] = []
        for index, gone in by_shard.items():
            shard = self.shards[index]
            removed.extend(gone)
            if not shard.markets:
                self.drop_shard(shard, now)
                continue
            for sub in shard.subs.values():
                sub.markets.difference_update(gone)
                sub.awaiting.difference_update(gone)
                if sub.sid:
                    self._update(sub, "delete_markets", sorted(gone), "delete", now)
        return sorted(removed)

    def drop_shard(self, shard: Shard, now: float) -> None:
        del self.shards[shard.index]
        sids = [s.sid for s in shard.subs.values() if s.sid]
        for sid in sids:
            self._retire(sid)
        if sids:
            self._unsubscribe(sids, now)

    def _retire(self, sid: int) -> None:
        self.by_sid.pop(sid, None)
        self.retired.add(sid)

    def resubscribe(self, sub: Sub, reason: str, now: float, *, dead: bool = False) -> Sub:
        """Replace ``sub`` with a fresh subscription of the same channel and markets (new sid).

        ``dead``: Kalshi already ended it (a terminal error), so no unsubscribe is sent."""
        self.counts.add("resubscribes", reason)
        if sub.sid:
            self._retire(sub.sid)
            if not dead:
                self._unsubscribe([sub.sid], now)
        fresh = Sub(sub.channel, sub.shard, sub.markets)
        if not _is_global(sub.channel) and not any(
            s.subs.get(sub.channel) is sub for s in self.shards.values()
        ):
            return fresh  # its shards went away meanwhile: nothing to subscribe
        self._replace(sub, fresh)
        self._subscribe([sub.channel], (fresh,), sorted(fresh.markets), now)
        return fresh

    def snapshot(self, tickers: Iterable[str], now: float) -> dict[int, tuple[Sub, list[str]]]:
        """get_snapshot for these markets, one command per book sid. Returns what was requested,
        by command id (the id its snapshots carry)."""
        groups: dict[Sub, list[str]] = {}
        for t in tickers:
            shard = self.market_shard.get(t)
            if shard is None:
                continue
            sub = shard.subs.get(BOOK)
            if sub is not None and sub.sid:
                groups.setdefault(sub, []).append(t)
        sent: dict[int, tuple[Sub, list[str]]] = {}
        for sub, markets in groups.items():
            markets.sort()
            sent[self._update(sub, "get_snapshot", markets, "snapshot", now)] = (sub, markets)
        return sent

    # ---- replies ---------------------------------------------------------------------------
    def on_subscribed(self, cid: int, channel: str, sid: int) -> tuple[Sub, set[str]] | None:
        """A ``subscribed`` reply: the pending Sub of that channel gets its sid, or is merged into
        the sid Kalshi already had for the channel. Returns the live Sub and the markets this
        reply brought to it (whose initial snapshots are due)."""
        p = self.pending.get(cid)
        if p is None:
            _log.warning(
                "subscribed reply to no pending command", extra={"ctx": {"id": cid, "channel": channel}}
            )
            return None
        sub = next((s for s in p.subs if s.channel == channel and not s.sid), None)
        if sub is None:
            return None
        fresh = set(sub.markets)
        known = self.by_sid.get(sid)
        if known is not None and known is not sub:
            # Kalshi merged this subscribe into an existing sid: the markets live there now.
            fresh -= known.markets
            known.markets |= sub.markets
            self._replace(sub, known)
            sub.sid = sid
        else:
            sub.sid = sid
            self.by_sid[sid] = sub
        if all(s.sid for s in p.subs):
            del self.pending[cid]
        return self.by_sid[sid], fresh

    def _replace(self, old: Sub, new: Sub) -> None:
        """Every reference to ``old`` (shards may share one merged Sub) now points at ``new``."""
        if old.channel == LIFECYCLE:
            if self.lifecycle is old:
                self.lifecycle = new
            return
        if old.channel in PRIVATE_CHANNELS:
            if self.private.get(old.channel) is old:
                self.private[old.channel] = new
            return
        for shard in self.shards.values():
            if shard.subs.get(old.channel) is old:
                shard.subs[old.channel] = new

    def pop(self, cid: int) -> Pending | None:
        return self.pending.pop(cid, None)

    def overdue(self, now: float, timeout_s: float) -> list[Pending]:
        return [p for p in self.pending.values() if now - p.sent > timeout_s]

    def forget_overdue(self, now: float, timeout_s: float) -> int:
        """Drop overdue commands whose reply is optional (everything but subscribe)."""
        stale = [cid for cid, p in self.pending.items() if p.kind != "subscribe" and now - p.sent > timeout_s]
        for cid in stale:
            del self.pending[cid]
        return len(stale)

    # ---- failed commands -------------------------------------------------------------------
    def _current(self, sub: Sub) -> bool:
        if sub.channel == LIFECYCLE:
            return self.lifecycle is sub
        if sub.channel in PRIVATE_CHANNELS:
            return self.private.get(sub.channel) is sub
        shard = self.shards.get(sub.shard)
        return shard is not None and shard.subs.get(sub.channel) is sub

    def retry(self, p: Pending, now: float) -> None:
        """Send a refused subscribe again for what is left of it (after dropping a bad market)."""
        subs = tuple(s for s in p.subs if not s.sid and self._current(s))
        if not subs:
            return
        markets = sorted(subs[0].markets)
        if not markets and not _is_global(subs[0].channel):
            return
        self._subscribe([s.channel for s in subs], subs, markets, now)

    def split(self, p: Pending, now: float) -> list[str]:
        """Error 26 (more markets than one subscription may hold). A refused subscribe: its
        shard is unsubscribed and replaced by two shards of half its markets each (a half
        refused again splits again); a refused add_markets: the shard is full, and the
        markets go to other shards. Bounded: every split halves, and a single market refused
        on its own is given up on this connection, never split further. New shards are never
        larger than the halves Kalshi refused. Returns the markets given up."""
        if p.kind == "add":
            shard = self.shards.get(p.subs[0].shard)
            markets = [t for t in p.markets if shard is not None and self.market_shard.get(t) is shard]
            if shard is None or not markets:
                return []  # already handled for another channel of the same add
            shard.full = True
            self.remove(markets, now)
            self.add(markets, now)
            return []
        shard = self.shards.get(p.subs[0].shard)
        if shard is None or not any(shard.subs.get(s.channel) is s for s in p.subs):
            return []  # the shard went away, or another channel's refusal split it already
        markets = sorted(shard.markets)
        self.drop_shard(shard, now)
        for t in markets:
            self.market_shard.pop(t, None)
        if len(markets) <= 1:
            self.counts.add("splits", "gave_up", len(markets))
            self._split_log("gave_up", "Kalshi refused a subscription of one market: given up", markets)
            return markets
        half = (len(markets) + 1) // 2
        self.max_markets = min(self.max_markets, half)
        self.counts.add("splits", "split")
        self._split_log("split", "Kalshi refused a subscription's market count: split in two", markets)
        self._new_shard(markets[:half], now)
        self._new_shard(markets[half:], now)
        return []

    def _split_log(self, what: str, msg: str, markets: list[str]) -> None:
        """Once per connection and outcome (the splits counter has the rest)."""
        if what not in self._split_logged:
            self._split_logged.add(what)
            _log.warning(msg, extra={"ctx": {"markets": len(markets), "first": markets[:3]}})

    # ---- reading ---------------------------------------------------------------------------
    def book_sub(self, ticker: str) -> Sub | None:
        shard = self.market_shard.get(ticker)
        return shard.subs.get(BOOK) if shard is not None else None

    def live_subs(self) -> list[Sub]:
        return list(self.by_sid.values())

    def markets(self) -> set[str]:
        return set(self.market_shard)

    def describe(self) -> list[dict[str, object]]:
        """For the ``subscriptions`` control command."""
        out: list[dict[str, object]] = []
        for sub in sorted(self.by_sid.values(), key=lambda s: s.sid):
            out.append(
                {
                    "sid": sub.sid,
                    "channel": sub.channel,
                    "shard": sub.shard,
                    "markets": sorted(sub.markets),
                    "last_seq": sub.last_seq,
                    "awaiting_snapshot": sorted(sub.awaiting),
                }
            )
        return out
