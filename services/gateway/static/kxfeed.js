// kxfeed's page: a live board, one market's ladder, signals, gaps and worker health, from the
// public API only (REST under api/v1/ and the api/v1/stream WebSocket).
//
// Values are shown exactly as the API writes them (decimal strings); the only arithmetic (a
// move, a yes price from a no bid) is done on integers of the smallest unit, never on floats.
// Data reaches the DOM through textContent only. Stream messages only mark markets dirty; the
// DOM is touched once per frame, and only in the cells whose text changed.
"use strict";
(() => {
  const API = new URL("api/v1/", document.baseURI);
  const PRICE_PLACES = 4;
  const LADDER_DEPTH = 15; // levels per side shown
  const FEED_ROWS = 100; // signals and gaps kept on screen
  const BOARD_INTERVAL_MS = 250; // the board's coalescing: at most 4 updates a second a market
  const SUB = { board: 1, events: 2, ladder: 3 };

  // ---- small helpers -------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function setText(node, text) {
    const t = text === undefined || text === null ? "" : String(text);
    if (node.textContent === t) return false;
    node.textContent = t;
    return true;
  }

  // "0.4300" -> 4300 (an integer count of the smallest unit), or null for anything else.
  function units(text, places) {
    if (typeof text !== "string") return null;
    const m = /^(-?)(\d{1,12})(?:\.(\d+))?$/.exec(text);
    if (!m) return null;
    const frac = (m[3] || "").padEnd(places, "0");
    if (frac.length > places) return null;
    const n = Number(m[2]) * 10 ** places + Number(frac || "0");
    return m[1] ? -n : n;
  }

  // 4300 -> "0.4300"; signed: "+0.0100" / "-0.0100".
  function fmtUnits(n, places, signed) {
    const neg = n < 0;
    const a = Math.abs(n);
    const s = String(a).padStart(places + 1, "0");
    const body = places ? `${s.slice(0, -places)}.${s.slice(-places)}` : s;
    return (neg ? "-" : signed && a > 0 ? "+" : "") + body;
  }

  // "2026-12-03T14:40:26.123456Z" -> "14:40:26.123" (string slicing, no clock arithmetic)
  function hms(iso) {
    if (typeof iso !== "string" || iso.length < 23) return "";
    return iso.slice(11, 23);
  }

  // ---- the token: #token=... once (then removed from the address bar), or a prompt on 401 --
  let token = "";
  function takeToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      token = decodeURIComponent(m[1]);
      sessionStorage.setItem("kxfeed.token", token);
      history.replaceState(null, "", location.pathname + location.search);
    } else {
      token = sessionStorage.getItem("kxfeed.token") || "";
    }
  }
  let asking = null;
  function askToken() {
    // One prompt however many requests were refused at once.
    if (!asking) {
      asking = Promise.resolve().then(() => {
        const t = window.prompt("This gateway needs its bearer token:");
        if (t) {
          token = t.trim();
          sessionStorage.setItem("kxfeed.token", token);
        }
        asking = null;
        return Boolean(t);
      });
    }
    return asking;
  }

  function b64url(text) {
    const bytes = new TextEncoder().encode(text);
    let bin = "";
    for (const x of bytes) bin += String.fromCharCode(x);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  class HttpError extends Error {
    constructor(status, body) {
      super(`${status} ${(body && (body.detail || body.error)) || ""}`.trim());
      this.status = status;
    }
  }

  async function api(path) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const resp = await fetch(new URL(path, API), { headers, cache: "no-store" });
      if (resp.status === 401 && (await askToken())) continue;
      let body = null;
      try {
        body = await resp.json();
      } catch (_) {
        body = null;
      }
      if (!resp.ok) throw new HttpError(resp.status, body);
      return body;
    }
    throw new HttpError(401, { detail: "no token" });
  }

  function showError(text) {
    const e = $("error");
    e.hidden = !text;
    setText(e, text);
  }

  // ---- the board ------------------------------------------------------------------------------
  const markets = new Map(); // ticker -> market
  const order = []; // tickers in board order (sorted)
  const dirty = new Set();
  const born = []; // markets whose rows are not on the board yet
  let selected = "";
  let filterText = "";
  let flushing = false;
  // Only rows on screen (and a margin) are written: with thousands of markets the others just
  // remember that they are behind and catch up when they scroll into view.
  const visible = new Set();
  const watcher = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        const t = e.target.dataset.ticker;
        if (!e.isIntersecting) {
          visible.delete(t);
          continue;
        }
        visible.add(t);
        const m = markets.get(t);
        if (m && m.behind) render(m, false);
      }
    },
    { root: document.querySelector("#board-pane .scroll"), rootMargin: "300px 0px" },
  );

  function market(ticker) {
    let m = markets.get(ticker);
    if (m) return m;
    const row = el("div", "brow");
    row.setAttribute("role", "row");
    row.dataset.ticker = ticker;
    const cells = {};
    for (const [name, cls] of [
      ["ticker", "l"], ["bid", ""], ["ask", ""], ["spread", ""], ["book", "c"],
      ["last", ""], ["move", ""], ["updated", "r"],
    ]) {
      cells[name] = row.appendChild(el("span", cls));
    }
    cells.ticker.textContent = ticker;
    m = {
      ticker, row, cells, title: "", tob: null, valid: null, reason: "",
      last: null, first: null, updated: "", behind: true,
    };
    markets.set(ticker, m);
    watcher.observe(row);
    born.push(m);
    row.hidden = !matches(m);
    markDirty(ticker);
    return m;
  }

  function matches(m) {
    if (!filterText) return true;
    return m.ticker.toLowerCase().includes(filterText) || m.title.toLowerCase().includes(filterText);
  }

  function markDirty(ticker) {
    dirty.add(ticker);
    if (flushing) return;
    flushing = true;
    // A frame when the tab is visible; a timer too, so a hidden tab still catches up.
    let done = false;
    const go = () => {
      if (done) return;
      done = true;
      flushing = false;
      flush();
    };
    requestAnimationFrame(go);
    setTimeout(go, 250);
  }

  function flashCell(cell, dir) {
    cell.classList.remove("up", "down");
    if (dir) cell.classList.add(dir);
    if (cell.animate) cell.animate([{ background: "#2a3546" }, { background: "transparent" }], 350);
  }

  function placeBorn() {
    if (!born.length) return;
    const body = $("board-body");
    if (born.length > 64) {
      // Many at once (the first snapshot): sort everything and append in order.
      for (const m of born) order.push(m.ticker);
      order.sort();
      const frag = document.createDocumentFragment();
      for (const t of order) frag.appendChild(markets.get(t).row);
      body.appendChild(frag);
    } else {
      for (const m of born) {
        let lo = 0;
        let hi = order.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (order[mid] < m.ticker) lo = mid + 1;
          else hi = mid;
        }
        const next = lo < order.length ? markets.get(order[lo]).row : null;
        order.splice(lo, 0, m.ticker);
        body.insertBefore(m.row, next);
      }
    }
    born.length = 0;
    countShown();
  }

  function render(m, live) {
    m.behind = false;
    const c = m.cells;
    // Catching up off screen: no flash, and no stale up/down colour.
    const flash = live ? flashCell : (cell) => cell.classList.remove("up", "down");
    const t = m.tob;
    if (t) {
      const bidWas = units(c.bid.textContent, PRICE_PLACES);
      const askWas = units(c.ask.textContent, PRICE_PLACES);
      if (setText(c.bid, t.yes_bid || "—")) {
        const now = units(t.yes_bid, PRICE_PLACES);
        flash(c.bid, bidWas === null || now === null ? "" : now > bidWas ? "up" : now < bidWas ? "down" : "");
      }
      if (setText(c.ask, t.yes_ask || "—")) {
        const now = units(t.yes_ask, PRICE_PLACES);
        flash(c.ask, askWas === null || now === null ? "" : now > askWas ? "up" : now < askWas ? "down" : "");
      }
      setText(c.spread, t.spread || "—");
      c.bid.title = t.yes_bid_size_fp ? `size ${t.yes_bid_size_fp}` : "";
      c.ask.title = t.yes_ask_size_fp ? `size ${t.yes_ask_size_fp}` : "";
    }
    if (m.valid !== null) {
      setText(c.book, m.valid ? "valid" : "INVALID");
      c.book.className = `c ${m.valid ? "valid" : "invalid"}`;
      c.book.title = m.reason || "";
    }
    if (m.last !== null) {
      if (setText(c.last, m.last)) flash(c.last, "");
      const a = units(m.last, PRICE_PLACES);
      const b = units(m.first, PRICE_PLACES);
      if (a !== null && b !== null) {
        const d = a - b;
        setText(c.move, fmtUnits(d, PRICE_PLACES, true));
        c.move.className = d > 0 ? "up" : d < 0 ? "down" : "";
      }
    }
    setText(c.updated, m.updated);
    if (m.title) c.ticker.title = m.title;
  }

  function flush() {
    placeBorn();
    for (const t of dirty) {
      const m = markets.get(t);
      if (m && visible.has(t)) render(m, true);
      else if (m) m.behind = true;
      if (t === selected) renderLadderTop();
    }
    dirty.clear();
    setText($("counts"), `${markets.size} markets`);
  }

  function countShown() {
    let n = 0;
    for (const m of markets.values()) if (!m.row.hidden) n++;
    setText($("shown"), filterText ? `${n} of ${markets.size} shown` : "");
  }

  // ---- what the stream says -------------------------------------------------------------------
  function onTob(d) {
    if (!d || typeof d.ticker !== "string") return;
    const m = market(d.ticker);
    m.tob = d;
    if (typeof d.valid === "boolean") m.valid = d.valid;
    m.updated = hms(d.ts_recv);
    markDirty(d.ticker);
  }

  function onTrade(d) {
    if (!d || typeof d.ticker !== "string" || typeof d.yes_price !== "string") return;
    const m = market(d.ticker);
    if (m.first === null) m.first = d.yes_price;
    m.last = d.yes_price;
    m.cells.last.title = `${d.count_fp || ""} taker ${d.taker_side || ""}`.trim();
    markDirty(d.ticker);
  }

  function onBookState(d) {
    if (!d || typeof d.ticker !== "string") return;
    const m = market(d.ticker);
    m.valid = Boolean(d.valid);
    m.reason = typeof d.reason === "string" ? d.reason : "";
    markDirty(d.ticker);
    if (d.ticker === selected) ladder.reason = m.reason;
  }

  // Newest first by the row's ISO time (sortable as text): a snapshot's older signal, or a REST
  // page that answers after the stream, lands where it belongs.
  function place(tbody, row, when) {
    row.dataset.when = when || "";
    let before = tbody.firstChild;
    while (before && before.dataset.when > row.dataset.when) before = before.nextSibling;
    tbody.insertBefore(row, before);
    while (tbody.rows.length > FEED_ROWS) tbody.deleteRow(-1);
  }

  const seenSignals = new Set(); // the REST page and the stream's snapshot can both carry one
  function onSignal(d) {
    if (!d || typeof d.ticker !== "string") return;
    const key = `${d.strategy}|${d.ticker}|${d.side}|${d.price}|${d.ts_recv || d.recv || d.ts}`;
    if (seenSignals.has(key)) return;
    seenSignals.add(key);
    if (seenSignals.size > FEED_ROWS * 4) seenSignals.delete(seenSignals.values().next().value);
    const row = el("tr");
    row.appendChild(el("td", "l", hms(d.ts_recv || d.recv || d.ts).slice(0, 8)));
    row.appendChild(el("td", "l", d.ticker));
    row.appendChild(el("td", "l", d.strategy));
    row.appendChild(el("td", "", d.side));
    row.appendChild(el("td", "", d.price));
    row.appendChild(el("td", "", d.size_fp));
    row.appendChild(el("td", "", d.edge));
    if (typeof d.detail === "string") row.title = d.detail;
    place($("signals").tBodies[0], row, d.ts_recv || d.recv || d.ts);
  }

  const gapRows = new Map(); // conn/sid/expected -> row: a recovery replaces its open gap
  function onGap(d) {
    if (!d || typeof d !== "object") return;
    const key = `${d.conn}/${d.sid}/${d.expected}`;
    const tickers = Array.isArray(d.tickers) ? d.tickers : [];
    const row = el("tr", d.status === "open" ? "open" : "");
    row.appendChild(el("td", "l", hms(d.detected).slice(0, 8)));
    const where = row.appendChild(el("td", "l", `sid ${d.sid}`));
    where.title = `connection ${d.conn}`;
    const seq = row.appendChild(el("td", "", `${d.expected}→${d.received}`));
    seq.title = `expected ${d.expected}, received ${d.received}`;
    row.appendChild(el("td", "l", d.reason));
    const recovered = d.status === "recovered";
    const status = row.appendChild(el("td", "l", recovered ? `recovered ${hms(d.recovered).slice(0, 8)}` : "open"));
    if (recovered && d.method) status.title = `by ${d.method}`;
    const shown = tickers.slice(0, 3).join(" ") + (tickers.length > 3 ? ` +${tickers.length - 3}` : "");
    row.appendChild(el("td", "l", shown));
    row.title = tickers.join(" ");
    const old = gapRows.get(key);
    if (old && old.parentNode) old.parentNode.removeChild(old);
    gapRows.set(key, row);
    if (gapRows.size > FEED_ROWS * 4) gapRows.delete(gapRows.keys().next().value);
    place($("gaps").tBodies[0], row, d.detected);
  }

  const handlers = { tob: onTob, trade: onTrade, bookstate: onBookState, signal: onSignal, gap: onGap, depth: onDepth };

  // ---- the ladder ------------------------------------------------------------------------------
  const ladder = { ticker: "", yes: [], no: [], xseq: null, valid: null, reason: "", gen: 0 };

  function levels(list) {
    // [["0.4300", "25.00"], ...] with anything malformed left out.
    if (!Array.isArray(list)) return [];
    const out = [];
    for (const lv of list) {
      if (Array.isArray(lv) && typeof lv[0] === "string" && typeof lv[1] === "string") out.push(lv);
    }
    return out;
  }

  function onDepth(d) {
    if (!d || d.ticker !== ladder.ticker) return;
    ladder.yes = levels(d.yes);
    ladder.no = levels(d.no);
    ladder.xseq = d.xseq;
    if (typeof d.valid === "boolean") ladder.valid = d.valid;
    renderLadder();
  }

  function renderLadderTop() {
    const m = markets.get(selected);
    if (!m) return;
    if (m.valid !== null) ladder.valid = m.valid;
    renderLadderState();
  }

  function renderLadderState() {
    const s = $("ladder-state");
    s.hidden = ladder.valid === null;
    setText(s, ladder.valid ? "valid" : "INVALID");
    s.className = `pill ${ladder.valid ? "ok" : "bad"}`;
    s.title = ladder.reason || "";
  }

  function renderLadder() {
    renderLadderState();
    const one = 10 ** PRICE_PLACES;
    // Best first on each side: yes bids high to low; asks are no bids turned into yes prices.
    const bids = ladder.yes
      .map(([p, s]) => [units(p, PRICE_PLACES), p, s])
      .filter((r) => r[0] !== null)
      .sort((a, b) => b[0] - a[0])
      .slice(0, LADDER_DEPTH);
    const asks = ladder.no
      .map(([p, s]) => {
        const n = units(p, PRICE_PLACES);
        return n === null ? null : [one - n, fmtUnits(one - n, PRICE_PLACES, false), s];
      })
      .filter((r) => r !== null)
      .sort((a, b) => a[0] - b[0])
      .slice(0, LADDER_DEPTH);
    const body = $("ladder").tBodies[0];
    const frag = document.createDocumentFragment();
    for (let i = asks.length - 1; i >= 0; i--) {
      const r = el("tr", "ask");
      r.appendChild(el("td", "", ""));
      r.appendChild(el("td", "c", asks[i][1]));
      r.appendChild(el("td", "", asks[i][2]));
      frag.appendChild(r);
    }
    const mid = el("tr", "mid");
    const cell = el("td", "", "");
    cell.colSpan = 3;
    if (bids.length && asks.length) {
      cell.textContent = `spread ${fmtUnits(asks[0][0] - bids[0][0], PRICE_PLACES, false)}`;
    } else {
      cell.textContent = bids.length || asks.length ? "one-sided book" : "empty book";
    }
    mid.appendChild(cell);
    frag.appendChild(mid);
    for (const [, p, s] of bids) {
      const r = el("tr", "bid");
      r.appendChild(el("td", "", s));
      r.appendChild(el("td", "c", p));
      r.appendChild(el("td", "", ""));
      frag.appendChild(r);
    }
    body.replaceChildren(frag);
    const seq = ladder.xseq === null || ladder.xseq === undefined ? "" : `seq ${ladder.xseq}`;
    const parts = [seq, `${bids.length} bids`, `${asks.length} asks`];
    if (!ladder.valid && ladder.reason) parts.push(ladder.reason);
    setText($("ladder-meta"), parts.filter(Boolean).join(" · "));
  }

  async function select(ticker) {
    if (!ticker || ticker === ladder.ticker) return;
    const prev = markets.get(selected);
    if (prev) prev.row.classList.remove("sel");
    selected = ticker;
    const m = markets.get(ticker);
    if (m) m.row.classList.add("sel");
    const gen = ++ladder.gen;
    Object.assign(ladder, { ticker, yes: [], no: [], xseq: null, valid: m ? m.valid : null, reason: m ? m.reason : "" });
    setText($("ladder-ticker"), ticker);
    setText($("ladder-meta"), "loading");
    $("ladder").tBodies[0].replaceChildren();
    stream.ladder(ticker);
    try {
      const book = await api(`markets/${encodeURIComponent(ticker)}/book?depth=${LADDER_DEPTH}`);
      if (gen !== ladder.gen || !book) return;
      // A depth message newer than this answer wins (the stream kept the ladder current).
      if (ladder.xseq !== null && typeof book.seq === "number" && book.seq < ladder.xseq) return;
      ladder.yes = levels(book.yes);
      ladder.no = levels(book.no);
      ladder.xseq = book.seq;
      if (typeof book.valid === "boolean") ladder.valid = book.valid;
      if (typeof book.reason === "string") ladder.reason = book.reason;
      renderLadder();
    } catch (err) {
      if (gen === ladder.gen) setText($("ladder-meta"), `book: ${err.message}`);
    }
  }

  // ---- the stream ------------------------------------------------------------------------------
  const stream = {
    ws: null,
    backoff: 500,
    open() {
      const url = new URL("stream", API);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      // Several messages per frame, one JSON document a line: far fewer events when busy.
      url.searchParams.set("format", "ndjson");
      // A browser cannot set Authorization on a WebSocket: the token rides in the protocol list,
      // base64url-encoded (a subprotocol is a header token: no "/", "=", ...).
      const ws = token ? new WebSocket(url, ["kxfeed", `kxfeed.bearer.${b64url(token)}`]) : new WebSocket(url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.backoff = 500;
        setConn("live", "ok");
        this.send({ op: "subscribe", id: SUB.board, topics: ["tob.", "trade.", "bookstate."], interval_ms: BOARD_INTERVAL_MS });
        this.send({ op: "subscribe", id: SUB.events, topics: ["signal.", "gap."] });
        this.laddered = false;
        if (ladder.ticker) this.ladder(ladder.ticker);
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") return;
        for (const line of ev.data.split("\n")) {
          let msg;
          try {
            msg = JSON.parse(line);
          } catch (_) {
            continue;
          }
          dispatch(msg);
        }
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        // A handshake refused (401, 429) closes before opening; 1008 is the slow-consumer cut.
        let why = "reconnecting";
        if (!opened) why = "stream refused, retrying";
        else if (ev.code === 1008) why = "too slow, reconnecting";
        setConn(why, "bad");
        setTimeout(() => this.open(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      };
    },
    // One depth subscription, for the selected market (a new connection starts with none).
    laddered: false,
    ladder(ticker) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (this.laddered) this.send({ op: "unsubscribe", id: SUB.ladder });
      this.send({ op: "subscribe", id: SUB.ladder, topics: ["depth."], tickers: [ticker] });
      this.laddered = true;
    },
    send(obj) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
    },
  };

  function setConn(text, cls) {
    const c = $("conn");
    setText(c, text);
    c.className = `pill ${cls}`;
  }

  let lostTotal = 0;
  function dispatch(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "snapshot") {
      const kind = typeof msg.kind === "string" ? msg.kind : String(msg.topic || "").split(".")[0];
      const fn = handlers[kind];
      if (fn) fn(msg.data);
      return;
    }
    if (msg.type === "lost") {
      lostTotal += Number.isSafeInteger(msg.dropped) ? msg.dropped : 0;
      const e = $("lost");
      e.hidden = false;
      setText(e, `${lostTotal} updates dropped (slow page)`);
      return;
    }
    if (msg.type === "error") {
      showError(`stream: ${msg.error || ""} ${msg.detail || ""}`.trim());
      return;
    }
    const fn = handlers[msg.type];
    if (fn) fn(msg.data);
  }

  // ---- REST: the market list, signals so far, worker health -------------------------------------
  async function loadMarkets() {
    let cursor = "";
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ limit: "1000" });
      if (cursor) q.set("cursor", cursor);
      const body = await api(`markets?${q}`);
      const rows = body && Array.isArray(body.markets) ? body.markets : [];
      for (const r of rows) {
        if (!r || typeof r.ticker !== "string") continue;
        const m = market(r.ticker);
        if (typeof r.title === "string") m.title = r.title;
        markDirty(r.ticker);
      }
      cursor = body && typeof body.next_cursor === "string" ? body.next_cursor : "";
      if (!cursor || !rows.length) return;
    }
  }

  // The signals of the last quarter hour (oldest first, as the API pages them), newest on top.
  async function loadSignals() {
    const q = new URLSearchParams({ limit: "500", since: new Date(Date.now() - 15 * 60 * 1000).toISOString() });
    let rows = [];
    for (let page = 0; page < 10; page++) {
      const body = await api(`signals?${q}`);
      if (!body || !Array.isArray(body.signals)) break;
      rows = rows.concat(body.signals).slice(-FEED_ROWS);
      if (typeof body.next_cursor !== "string") break;
      q.set("cursor", body.next_cursor);
    }
    for (const r of rows) onSignal(r);
  }

  async function loadHealth() {
    const body = await api("status");
    const workers = body && Array.isArray(body.workers) ? body.workers : [];
    const frag = document.createDocumentFragment();
    for (const w of workers) {
      if (!w || typeof w.worker !== "string") continue;
      const state = typeof w.state === "string" ? w.state : "?";
      const cls = state === "running" ? "ok" : state === "starting" || state === "backoff" ? "warn" : "bad";
      const restarts = Number.isSafeInteger(w.restarts) && w.restarts > 0 ? ` ↻${w.restarts}` : "";
      const chip = el("span", `pill ${cls}`, `${w.worker}${restarts}`);
      chip.title = `${w.worker}: ${state}${w.pid ? ` pid ${w.pid}` : ""}`;
      frag.appendChild(chip);
    }
    $("health").replaceChildren(frag);
  }

  async function every(fn, ms) {
    for (;;) {
      try {
        await fn();
        showError("");
      } catch (err) {
        showError(`${fn.name}: ${err.message}`);
      }
      await new Promise((r) => setTimeout(r, ms));
    }
  }

  // ---- start ---------------------------------------------------------------------------------------
  takeToken();
  $("board-body").addEventListener("click", (ev) => {
    const row = ev.target.closest(".brow");
    if (row && row.dataset.ticker) select(row.dataset.ticker);
  });
  $("filter").addEventListener("input", (ev) => {
    filterText = ev.target.value.trim().toLowerCase();
    for (const m of markets.values()) m.row.hidden = !matches(m);
    countShown();
  });
  stream.open();
  loadMarkets().catch((err) => showError(`markets: ${err.message}`));
  loadSignals().catch((err) => showError(`signals: ${err.message}`));
  every(loadHealth, 2000);
})();
