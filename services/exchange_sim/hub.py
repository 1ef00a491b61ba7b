"""The dispatcher: applies emissions to the public state and fans frames out to connections.

Everything runs on one event loop, so a subscribe's snapshot and the deltas
after it are queued in exactly the order the state changed: per-sid seq is
contiguous and a client's book equals the truth once its queue has drained.
The activity loop paces the engine (``rate`` steps/s) or, in blast mode,
pre-generates batches and hands them over as fast as the slowest reader takes
them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from services.exchange_sim import frames, metrics
from services.exchange_sim.connection import Conn
from services.exchange_sim.emission import CH_LIFE, K_DELTA, Emission
from services.exchange_sim.faults import WS_KINDS, FaultError, FaultPlan, malformed_frames
from services.exchange_sim.session import SimSession
from services.exchange_sim.source import ActivitySource
from services.exchange_sim.state import ExchangeState
from services.exchange_sim.subscription import SEQ_CHANNELS, SimSubscription
from services.exchange_sim.truth import Truth
from shared.config import SimConfig
from shared.log import BurstLog

BLAST_BATCH = 256  # steps generated at a time (~5 ms: the loop must keep feeding sockets)
BLAST_SLICE = 512  # emissions dispatched between yields to the event loop
BLAST_LOW_WATER = 20_000  # frames queued per connection before blast waits
_PACING_TICK_S = 0.001  # paced mode's shortest sleep


class Hub:
    def __init__(
        self,
        cfg: SimConfig,
        engine: ActivitySource,
        public: ExchangeState,
        truth: Truth,
        plan: FaultPlan,
        log: logging.Logger,
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.public = public
        self.truth = truth
        self.plan = plan
        self.log = log
        self.burst = BurstLog(log)
        self.conns: dict[int, Conn] = {}
        self._list: list[Conn] = []
        self._next_id = 1
        self.room = asyncio.Event()
        self.running = asyncio.Event()
        self.running.set()
        # Generated but not yet sent (blast mode); ``_sent_upto`` indexes into it.
        self._pending: list[Emission] = []
        self._sent_upto = 0
        # Set by prepare_blast: once that buffer is sent, blast pauses instead of generating on.
        self._prepared = False
        self.steps = 0

    # ---- connections ------------------------------------------------------------------------
    def connect(self, transport: Any, protocol: Any, peer: str, limits: Any) -> Conn:
        conn_id = self._next_id
        self._next_id += 1
        session = SimSession(conn_id, self.public, limits)
        session.mark = lambda sid, seq: self.truth.mark(conn_id, sid, seq)
        conn = Conn(
            conn_id,
            transport,
            protocol,
            peer,
            session,
            cfg=self.cfg,
            truth=self.truth,
            room=self.room,
            log=self.log,
            disconnect=self.disconnect,
        )
        self.conns[conn_id] = conn
        self._list = list(self.conns.values())
        conn.start()
        metrics.CONNECTS.inc()
        metrics.CONNECTIONS.set(len(self.conns))
        self.log.info("client connected", extra={"ctx": {"conn": conn_id, "peer": peer}})
        return conn

    def disconnect(self, conn: Conn, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        conn.out.clear()
        self.conns.pop(conn.id, None)
        self._list = list(self.conns.values())
        conn.cancel_tasks()
        if not conn.transport.is_closing():
            conn.transport.close()
        self.room.set()
        metrics.DISCONNECTS.labels(reason).inc()
        metrics.CONNECTIONS.set(len(self.conns))
        self.log.info("client disconnected", extra={"ctx": {"conn": conn.id, "reason": reason}})

    def command(self, conn: Conn, raw: str | bytes) -> None:
        conn.push(conn.session.handle(raw, int(time.time() * 1000)))

    # ---- fan-out ----------------------------------------------------------------------------
    def dispatch(self, ems: list[Emission]) -> None:
        # The hot path of blast mode: one bytes format per frame, nothing else per frame that
        # can be done per emission or per subscription instead.
        tail = b',"sending_ts_ms":%d}' % int(time.time() * 1000)
        apply = self.public.apply
        truth = self.truth
        log_delta = truth.delta
        cap = truth.max_frames
        marking = cap > 0
        conns = self._list
        slow = bool(self.plan.frame_probs)
        touched: set[Conn] = set()
        at = 0
        for em in ems:
            apply(em)
            if em.kind == K_DELTA:
                log_delta(em.ticker, *em.data)
            body = em.body
            if body is None or not conns:
                continue
            ch = em.channel
            seq = em.seq
            if seq and marking:
                at = truth.position()
            for c in conns:
                s = c.session
                alls = s.alls[ch]
                subs = None if ch == CH_LIFE else s.routes[ch].get(em.ticker)
                if subs:
                    if alls:
                        subs = subs + alls
                elif alls:
                    subs = alls
                else:
                    continue
                fast = not (c.armed or slow)
                out = c.out
                for sub in subs:
                    head = sub.heads.get(em.type_prefix)
                    if head is None:
                        head = sub.head(em.type_prefix, seq)
                    b = em.body_yp if (sub.yes_price and em.body_yp is not None) else body
                    if seq:
                        sub.seq += 1
                        frame = b'%s%d,"msg":%s%s' % (head, sub.seq, b, tail)
                        if marking:
                            marks = sub.marks
                            if marks is None:
                                marks = sub.marks = truth.marks_for(c.id, sub.sid)
                            if len(marks) < cap:
                                marks.append(at)
                    else:
                        frame = b'%s,"msg":%s%s' % (head, b, tail)
                    if fast:
                        out.append(frame)
                    else:
                        self._faulty(c, sub, frame, seq)
                touched.add(c)
        limit = self.cfg.out_buffer_frames
        for c in touched:
            if c.closed:
                continue
            if len(c.out) > limit:
                self.overflow(c)
            c.wake.set()

    def _faulty(self, c: Conn, sub: SimSubscription, frame: bytes, seq: bool) -> None:
        """The slow path: pending per-connection faults and per-frame probabilities."""
        sid = sub.sid
        if seq:
            probs = self.plan.frame_probs
            rng = self.plan.rng
            for kind, p in probs.items():
                if rng.random() < p:
                    self._random_fault(c, kind, sid)
            if c.closed or sid not in c.session.subs:
                return
            if c.gaps.get(sid):
                c.gaps[sid] -= 1
                self.truth.withheld(c.id, sid, sub.seq)
                metrics.GAP_FRAMES.inc()
                self._rearm(c)
                return
            if c.dups.get(sid):
                c.dups[sid] -= 1
                c.out.append(frame)
                self._rearm(c)
        c.out.append(frame)

    def _random_fault(self, c: Conn, kind: str, sid: int) -> None:
        self.burst.event(f"random-{kind}", "random fault", kind=kind, conn=c.id)
        params: dict[str, Any] = {"conn": c.id}
        if kind in ("gap", "duplicate", "error25"):
            params["sid"] = sid
        if kind == "stall":
            params["seconds"] = 2.0
        if kind == "no_ping":
            params["seconds"] = 3 * self.cfg.ping_interval_s * (self.cfg.missed_pongs + 1)
        self.inject_ws(kind, params)

    def _rearm(self, c: Conn) -> None:
        c.armed = any(c.gaps.values()) or any(c.dups.values())

    def overflow(self, c: Conn) -> None:
        """Kalshi's slow-consumer rule: the buffer overflowed, every subscription ends with error 25."""
        metrics.OVERFLOWS.inc()
        self.log.warning(
            "client buffer overflow: ending its subscriptions with error 25",
            extra={"ctx": {"conn": c.id, "queued": len(c.out), "limit": self.cfg.out_buffer_frames}},
        )
        c.out.clear()
        for sid in list(c.session.subs):
            sub = c.session.drop(sid)
            c.out.append(frames.error(None, 25, sid=sid, seq=sub.error_seq()))
            metrics.COMMAND_ERRORS.labels("25").inc()

    # ---- WS faults --------------------------------------------------------------------------
    def inject_ws(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        if kind not in WS_KINDS:
            raise FaultError(f"{kind!r} is not a WebSocket fault")
        conn_id = params.get("conn")
        if conn_id is not None:
            if int(conn_id) not in self.conns:
                raise FaultError(f"no open connection {conn_id}; open: {sorted(self.conns)}")
            targets = [self.conns[int(conn_id)]]
        else:
            targets = list(self._list)
        done = []
        for c in targets:
            if self._inject_one(c, kind, params):
                done.append(c.id)
        metrics.FAULTS.labels(kind).inc(len(done))
        self.log.info("fault injected", extra={"ctx": {"kind": kind, "connections": done}})
        return {"kind": kind, "connections": done}

    def _inject_one(self, c: Conn, kind: str, params: dict[str, Any]) -> bool:
        now = time.monotonic()
        count = int(params.get("count", 1))
        if kind == "disconnect":
            code = params.get("code")
            c.close(int(code) if code is not None else None, reason="fault")
            return True
        if kind == "stall":
            c.stall_until = max(c.stall_until, now + float(params.get("seconds", 5.0)))
            return True
        if kind == "no_ping":
            c.no_ping_until = now + float(params.get("seconds", math.inf) or math.inf)
            return True
        if kind == "malformed":
            sid = next(iter(c.session.subs), 1)
            for _ in range(count):
                c.push(malformed_frames(params.get("variant"), sid))
            return True
        sub = self._target_sub(c, params.get("sid"), params.get("channel"), seq_only=kind != "error25")
        if sub is None:
            return False
        if kind == "gap":
            c.gaps[sub.sid] = c.gaps.get(sub.sid, 0) + count
        elif kind == "duplicate":
            c.dups[sub.sid] = c.dups.get(sub.sid, 0) + count
        else:  # error25: a terminal channel error, then the subscription is gone
            code = int(params.get("code", 25))
            if code not in (10, 25):  # Kalshi's terminal codes; 17 is retired
                raise FaultError(f"terminal error code must be 10 or 25, not {code}")
            c.session.drop(sub.sid)
            c.push([frames.error(None, code, sid=sub.sid, seq=sub.error_seq())])
            metrics.COMMAND_ERRORS.labels(str(code)).inc()
        self._rearm(c)
        return True

    @staticmethod
    def _target_sub(c: Conn, sid: Any, channel: Any, *, seq_only: bool) -> SimSubscription | None:
        subs = c.session.subs
        if sid is not None:
            sub = subs.get(int(sid))
            if sub is None:
                raise FaultError(f"connection {c.id} has no sid {sid}; sids: {sorted(subs)}")
            return sub
        if channel is not None:
            if seq_only and channel not in SEQ_CHANNELS:
                raise FaultError(f"channel {channel!r} carries no seq; sequenced: {sorted(SEQ_CHANNELS)}")
            # None: this connection has not subscribed it (yet): nothing to hit, like no book.
            return c.session.by_channel.get(str(channel))
        book = c.session.by_channel.get("orderbook_delta")
        if book is not None:
            return book
        for sub in subs.values():
            if not seq_only or sub.channel in SEQ_CHANNELS:
                return sub
        return None

    # ---- activity ---------------------------------------------------------------------------
    async def run_activity(self) -> None:
        if self.cfg.rate > 0:
            await self._paced(self.cfg.rate)
        else:
            await self._blast()

    async def _paced(self, rate: float) -> None:
        interval = 1.0 / rate
        next_at = time.monotonic()
        while True:
            if not self.running.is_set():
                await self.running.wait()
                next_at = time.monotonic()
            now = time.monotonic()
            if now >= next_at:
                # At most one second's worth at once: a long stall is not made up in one burst.
                due = min(int((now - next_at) / interval) + 1, max(1, int(rate)))
                self.step(due)
                next_at = max(next_at + due * interval, now - 1.0)
            # Sleep at least a pacing tick: a timer per step (every 0.17 ms at 10,000 msgs/s)
            # costs the loop more than the steps, and the steps due meanwhile go out together.
            await asyncio.sleep(min(max(next_at - time.monotonic(), _PACING_TICK_S), 0.05))

    def step(self, n: int = 1) -> None:
        """Run ``n`` activity steps now and send what they produce."""
        now_ms = int(time.time() * 1000)
        out: list[Emission] = []
        for _ in range(n):
            out.extend(self.engine.step(now_ms))
        self.steps += n
        metrics.STEPS.inc(n)
        self.dispatch(out)

    def pregenerate(self, steps: int) -> None:
        """Generate ``steps`` ahead (blast mode sends from this buffer first)."""
        self._pending.extend(self.engine.run(steps, int(time.time() * 1000)))
        self.steps += steps
        metrics.STEPS.inc(steps)

    async def prepare_blast(self, steps: int) -> int:
        """Generate ``steps`` into the blast buffer while paused; returns emissions waiting.

        ``resume`` then sends exactly them as fast as the clients read and pauses again, so a
        benchmark measures the pipeline and not the engine generating on the same cores.
        Chunks yield to the loop: pings and REST keep being served while it runs.
        """
        if self.cfg.rate > 0:
            raise ValueError(f"pregenerate is for blast mode ([sim] rate = 0), not rate {self.cfg.rate}")
        if self.running.is_set():
            raise ValueError("pause the simulator first: blast would send the buffer as it grows")
        if steps < 1:
            raise ValueError(f"pregenerate needs steps >= 1, got {steps}")
        done = 0
        while done < steps:
            n = min(BLAST_BATCH, steps - done)
            self.pregenerate(n)
            done += n
            await asyncio.sleep(0)
        self._prepared = True
        return self.pending

    @property
    def pending(self) -> int:
        """Emissions generated ahead and not yet sent (blast mode)."""
        return len(self._pending) - self._sent_upto

    async def _blast(self) -> None:
        while True:
            if not self.running.is_set():
                await self.running.wait()
            if not any(c.session.subs for c in self._list):
                await asyncio.sleep(0.01)  # nobody to blast at: don't burn the CPU
                continue
            if self._sent_upto >= len(self._pending):
                self._pending.clear()
                self._sent_upto = 0
                if self._prepared:
                    # The prepared run is out: pausing tells the one who prepared it (``info``).
                    self._prepared = False
                    self.running.clear()
                    continue
                self.pregenerate(BLAST_BATCH)
            # Small slices: the loop must come back often to feed the socket.
            start = self._sent_upto
            # Capped at the end: pregenerate may append to this buffer while blast is paused.
            self._sent_upto = min(start + BLAST_SLICE, len(self._pending))
            self.dispatch(self._pending[start : self._sent_upto])
            await asyncio.sleep(0)
            while self._congested():
                self.room.clear()
                await self.room.wait()

    def flush_pending(self) -> None:
        """Send everything generated ahead (blast mode) now."""
        rest = self._pending[self._sent_upto :]
        self._pending = []
        self._sent_upto = 0
        self._prepared = False
        if rest:
            self.dispatch(rest)

    def _congested(self) -> bool:
        now = time.monotonic()
        return any(len(c.out) > BLAST_LOW_WATER and not c.stalled(now) for c in self._list)
