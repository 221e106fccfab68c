/* alphatrade_lab dashboard: reads the service's REST API and its WebSocket, charts with the
   plotly.js the app serves itself. No build step, no external URL.

   Token: a page opened as /?token=T sends T to REST as "Authorization: Bearer T" and to the
   WebSocket as ?token=T. Live updates: /ws, a snapshot then events with increasing `seq`; on
   a dropped connection the page reconnects with ?since=<last seq> (exponential back-off). */
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const TOKEN = params.get("token") || "";
  const LIVE = "__live__";
  const MAX_ROWS = 200;      // rows kept in the trades table and the alert feed
  const MAX_POINTS = 5000;   // points kept per live price series, signals kept
  const MAX_FILLS = 20000;   // fills kept (P&L of a fill whose opening fill was dropped: off)
  const TOPIC = { bars: "bar", signals: "signal", orders: "order", fills: "fill",
    positions: "position", alerts: "alert", equities: "equity" };

  const state = {
    run: null,            // selected run id, or LIVE
    liveRun: null,        // the store's run id of the live engine (from status / runs)
    lastSeq: 0,
    equity: new Map(),    // timestamp -> {portfolio: equity}
    prices: new Map(),    // symbol -> Map(timestamp -> close)
    fills: new Map(),     // key -> fill row (key: client_order_id or a made-up one)
    trades: [],           // round trips of a stored backtest
    positions: new Map(), // symbol -> {qty, price, timestamp}
    alerts: [],
    drift: [],
    signals: [],
    ws: null, wsDelay: 500, wsTimer: null,
    renderTimer: null, tableTimer: null, equityTimer: null, newKeys: new Set(),
    barHistoryLoaded: false,
  };

  // ---------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);

  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    if (typeof value === "number") {
      return new Date(value > 1e14 ? value / 1e6 : value > 1e11 ? value : value * 1000);
    }
    const d = new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  // plotly date axes read "YYYY-MM-DD HH:MM:SS" (shown as UTC)
  function ts(value) {
    const d = toDate(value);
    return d ? d.toISOString().replace("T", " ").slice(0, 19) : null;
  }

  function num(value, digits) {
    if (value === null || value === undefined || value === "") return "";
    const x = Number(value);
    if (!isFinite(x)) return "";
    const d = digits === undefined ? (Math.abs(x) >= 1000 ? 2 : Math.abs(x) >= 1 ? 4 : 6) : digits;
    return x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }

  // a list out of whatever envelope an endpoint uses ([...], {items: [...]}, {rows: ...})
  function rowsOf(body) {
    if (Array.isArray(body)) return body;
    if (!body || typeof body !== "object") return [];
    for (const key of ["rows", "items", "series", "data", "results", "runs", "points", "events"]) {
      if (Array.isArray(body[key])) return body[key];
    }
    // columnar {col: [...], ...}
    const cols = Object.keys(body).filter((k) => Array.isArray(body[k]));
    if (cols.length) {
      const n = body[cols[0]].length;
      const out = [];
      for (let i = 0; i < n; i++) {
        const row = {};
        for (const c of cols) row[c] = body[c][i];
        out.push(row);
      }
      return out;
    }
    return [];
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  async function tryApi(path) {
    try {
      return await api(path);
    } catch (err) {
      console.warn("dashboard:", err.message);
      return null;
    }
  }

  // the last `n` rows of a paginated endpoint (pages come oldest first, with their total)
  async function latest(path, n) {
    const sep = path.includes("?") ? "&" : "?";
    const first = await tryApi(path + sep + "limit=" + n);
    if (!first || typeof first.total !== "number" || first.total <= n) return first;
    return tryApi(path + sep + "limit=" + n + "&offset=" + (first.total - n));
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function baseLayout(extra) {
    const fg = cssVar("--fg"), grid = cssVar("--grid");
    return Object.assign({
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: fg, size: 11 }, margin: { l: 50, r: 12, t: 8, b: 30 },
      showlegend: true, legend: { orientation: "h", y: 1.12, x: 0 },
      xaxis: { type: "date", gridcolor: grid, zerolinecolor: grid },
      yaxis: { gridcolor: grid, zerolinecolor: grid },
    }, extra || {});
  }

  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"] };

  function plot(id, traces, layout) {
    if (!window.Plotly) return;
    const empty = traces.every((t) => !(t.x && t.x.length) && !(t.z && t.z.length));
    layout.annotations = empty ? [{ text: "no data for this run yet", showarrow: false,
      xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: cssVar("--muted") } }] : [];
    window.Plotly.react($(id), traces, layout, PLOT_CONFIG);
  }

  // ---------------------------------------------------------------- state updates
  function addEquity(timestamp, portfolio, value) {
    const t = ts(timestamp);
    if (t === null || value === null || value === undefined) return;
    let row = state.equity.get(t);
    if (!row) { row = {}; state.equity.set(t, row); }
    row[portfolio || "total"] = Number(value);
  }

  function addPrice(symbol, timestamp, close) {
    const t = ts(timestamp);
    if (!symbol || t === null || close === null || close === undefined) return;
    let series = state.prices.get(symbol);
    if (!series) { series = new Map(); state.prices.set(symbol, series); }
    series.set(t, Number(close));
    if (series.size > MAX_POINTS) series.delete(series.keys().next().value);
  }

  function fillKey(f) {
    return f.client_order_id || [f.symbol, f.side, f.timestamp, f.qty, f.price].join("|");
  }

  function addFill(f) {
    if (!f || !f.symbol) return false;
    const key = fillKey(f);
    const isNew = !state.fills.has(key);
    state.fills.set(key, f);
    if (state.fills.size > MAX_FILLS) state.fills.delete(state.fills.keys().next().value);
    return isNew;
  }

  function setPosition(p) {
    if (!p || !p.symbol) return;
    const prev = state.positions.get(p.symbol);
    let price = p.price;
    if (price === null || price === undefined) {
      const series = state.prices.get(p.symbol);
      price = series && series.size ? Array.from(series.values()).pop() : (prev ? prev.price : null);
    }
    state.positions.set(p.symbol, { qty: Number(p.qty), price, timestamp: p.timestamp });
  }

  function addAlert(a) {
    if (!a) return;
    state.alerts.unshift(a);
    if (state.alerts.length > MAX_ROWS) state.alerts.length = MAX_ROWS;
  }

  function resetRunState() {
    state.equity = new Map(); state.prices = new Map(); state.fills = new Map();
    state.trades = []; state.positions = new Map(); state.drift = []; state.signals = [];
    state.barHistoryLoaded = false;
  }

  // ---------------------------------------------------------------- rendering
  function sortedEntries(map) {
    return Array.from(map.entries()).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  function renderEquity() {
    const rows = sortedEntries(state.equity);
    const x = [], total = [], dd = [];
    const names = new Set();
    const last = {};  // a portfolio's last value carries forward to the total
    let peak = -Infinity;
    for (const [t, row] of rows) {
      Object.assign(last, row);
      for (const k of Object.keys(row)) names.add(k);
      const v = Object.values(last).reduce((s, y) => s + y, 0);
      peak = Math.max(peak, v);
      x.push(t); total.push(v); dd.push(peak > 0 ? (v / peak - 1) * 100 : 0);
    }
    const traces = [{ x, y: total, name: names.size > 1 ? "total equity" : "equity",
      type: "scatter", mode: "lines", line: { color: cssVar("--accent"), width: 2 } },
    { x, y: dd, name: "drawdown %", type: "scatter", mode: "lines", fill: "tozeroy",
      line: { color: cssVar("--down"), width: 1 }, xaxis: "x", yaxis: "y2" }];
    const grid = cssVar("--grid");
    plot("chart-equity", traces, baseLayout({
      yaxis: { domain: [0.35, 1], gridcolor: grid, title: { text: "equity" } },
      yaxis2: { domain: [0, 0.28], gridcolor: grid, title: { text: "dd %" } },
    }));
  }

  function symbols() {
    const out = new Set(state.prices.keys());
    for (const f of state.fills.values()) out.add(f.symbol);
    for (const t of state.trades) if (t.symbol) out.add(t.symbol);
    return Array.from(out).sort();
  }

  function renderSymbolPicker() {
    const picker = $("symbol-picker");
    const list = symbols();
    const current = picker.value;
    if (picker.options.length === list.length &&
        Array.from(picker.options).every((o, i) => o.value === list[i])) return;
    picker.replaceChildren(...list.map((s) => new Option(s, s)));
    picker.value = list.includes(current) ? current : (list[0] || "");
  }

  function renderPrice() {
    renderSymbolPicker();
    const sym = $("symbol-picker").value;
    const traces = [];
    const series = state.prices.get(sym);
    const buys = { x: [], y: [] }, sells = { x: [], y: [] };
    for (const f of state.fills.values()) {
      if (f.symbol !== sym) continue;
      const target = String(f.side).toLowerCase() === "sell" ? sells : buys;
      target.x.push(ts(f.bar_time || f.timestamp)); target.y.push(Number(f.price));
    }
    for (const t of state.trades) {
      if (t.symbol !== sym) continue;
      const short = String(t.side || "").toLowerCase().startsWith("short");
      if (t.entry_time) { (short ? sells : buys).x.push(ts(t.entry_time)); (short ? sells : buys).y.push(Number(t.entry_price)); }
      if (t.exit_time) { (short ? buys : sells).x.push(ts(t.exit_time)); (short ? buys : sells).y.push(Number(t.exit_price)); }
    }
    if (series && series.size) {
      const rows = sortedEntries(series);
      traces.push({ x: rows.map((r) => r[0]), y: rows.map((r) => r[1]), name: sym + " close",
        type: "scatter", mode: "lines", line: { color: cssVar("--fg"), width: 1 } });
    } else {  // a stored run without bars: the line through its fill prices
      const pts = buys.x.map((x, i) => [x, buys.y[i]]).concat(sells.x.map((x, i) => [x, sells.y[i]]))
        .sort((a, b) => (a[0] < b[0] ? -1 : 1));
      traces.push({ x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), name: (sym || "") + " fill prices",
        type: "scatter", mode: "lines", line: { color: cssVar("--muted"), width: 1, dash: "dot" } });
    }
    traces.push({ x: buys.x, y: buys.y, name: "entry / buy", type: "scatter", mode: "markers",
      marker: { symbol: "triangle-up", size: 9, color: cssVar("--up") } });
    traces.push({ x: sells.x, y: sells.y, name: "exit / sell", type: "scatter", mode: "markers",
      marker: { symbol: "triangle-down", size: 9, color: cssVar("--down") } });
    plot("chart-price", traces, baseLayout());
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement("tr");
    const td = cell(text, "empty");
    td.colSpan = cols;
    tr.appendChild(td);
    tbody.replaceChildren(tr);
  }

  // each fill that reduces a position gets the realised P&L of what it closes (average cost,
  // fees of both sides included); recomputed from all fills in time order
  function fillPnl() {
    const out = new Map();
    const book = new Map();  // symbol -> {qty, cost} (cost: signed, fees included)
    const fills = Array.from(state.fills.entries()).sort((a, b) =>
      (ts(a[1].bar_time || a[1].timestamp) || "").localeCompare(ts(b[1].bar_time || b[1].timestamp) || ""));
    for (const [key, f] of fills) {
      const q = Number(f.qty) * (String(f.side).toLowerCase() === "sell" ? -1 : 1);
      const price = Number(f.price), fees = Number(f.fees) || 0;
      if (!isFinite(q) || !isFinite(price) || q === 0) continue;
      const b = book.get(f.symbol) || { qty: 0, cost: 0 };
      if (b.qty !== 0 && Math.sign(q) !== Math.sign(b.qty)) {
        const closed = Math.min(Math.abs(q), Math.abs(b.qty)) * Math.sign(b.qty);
        const avg = b.cost / b.qty;
        const share = Math.abs(closed / q);
        out.set(key, closed * (price - avg) - fees * share);
        b.cost -= avg * closed; b.qty -= closed;
        const rest = q + closed;  // a flip opens the other side with what is left
        if (Math.abs(rest) > 1e-12) { b.qty += rest; b.cost += rest * price + fees * (1 - share); }
        if (Math.abs(b.qty) < 1e-12) { b.qty = 0; b.cost = 0; }
      } else {
        b.qty += q; b.cost += q * price + fees * Math.sign(q);
      }
      book.set(f.symbol, b);
    }
    return out;
  }

  function tradeRows() {
    const pnl = fillPnl();
    const rows = [];
    for (const f of state.fills.values()) {
      rows.push({ time: f.bar_time || f.timestamp, symbol: f.symbol, side: String(f.side || ""),
        qty: f.qty, price: f.price, fees: f.fees, key: f.client_order_id || "",
        pnl: f.pnl !== undefined && f.pnl !== null ? f.pnl : pnl.get(fillKey(f)) });
    }
    for (const t of state.trades) {
      rows.push({ time: t.exit_time || t.entry_time, symbol: t.symbol, side: String(t.side || ""),
        qty: t.quantity ?? t.size, price: t.exit_price ?? t.entry_price,
        fees: t.fees, pnl: t.pnl, key: "" });
    }
    rows.sort((a, b) => (ts(b.time) || "").localeCompare(ts(a.time) || ""));
    return rows.slice(0, MAX_ROWS);
  }

  function renderTrades(newKeys) {
    const tbody = $("trades").tBodies[0];
    const rows = tradeRows();
    $("trades-count").textContent = state.fills.size + state.trades.length
      ? "(" + (state.fills.size + state.trades.length) + ")" : "";
    if (!rows.length) { emptyRow(tbody, 7, "no trades yet"); return; }
    tbody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      if (r.key) tr.dataset.order = r.key;
      if (newKeys && r.key && newKeys.has(r.key)) tr.className = "new";
      const pnl = Number(r.pnl);
      tr.append(cell(ts(r.time) || ""), cell(r.symbol), cell(r.side, r.side.toLowerCase()),
        cell(num(r.qty)), cell(num(r.price)), cell(num(r.fees)),
        cell(r.pnl === undefined || r.pnl === null ? "" : num(r.pnl, 4), pnl > 0 ? "pos" : pnl < 0 ? "neg" : ""));
      return tr;
    }));
  }

  function renderPositions() {
    const tbody = $("positions").tBodies[0];
    const open = Array.from(state.positions.entries()).filter(([, p]) => Math.abs(p.qty) > 1e-12)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (!open.length) { emptyRow(tbody, 4, "flat"); return; }
    tbody.replaceChildren(...open.map(([sym, p]) => {
      const tr = document.createElement("tr");
      tr.append(cell(sym), cell(num(p.qty), p.qty > 0 ? "long" : "short"), cell(num(p.price)),
        cell(ts(p.timestamp) || ""));
      return tr;
    }));
  }

  function renderAlerts() {
    const ul = $("alerts");
    if (!state.alerts.length) {
      const li = document.createElement("li");
      li.className = "empty"; li.textContent = "no alerts";
      ul.replaceChildren(li);
      return;
    }
    ul.replaceChildren(...state.alerts.map((a) => {
      const li = document.createElement("li");
      const level = document.createElement("span");
      const lv = String(a.level || "info").toLowerCase();
      level.className = "level " + lv; level.textContent = lv;
      const when = document.createElement("span");
      when.className = "muted"; when.textContent = " " + (ts(a.ts || a.timestamp || a.time) || "");
      li.append(level, document.createTextNode(String(a.title || "") +
        (a.message ? ": " + a.message : "")), when);
      return li;
    }));
  }

  function renderDrift() {
    const features = [], times = [];
    const z = new Map();
    for (const d of state.drift) {
      const f = d.feature, t = ts(d.window_end || d.window_start || d.timestamp);
      if (!f || t === null) continue;
      if (!z.has(f)) { z.set(f, new Map()); features.push(f); }
      if (!times.includes(t)) times.push(t);
      z.get(f).set(t, Number(d.statistic));
    }
    times.sort();
    features.sort();
    const matrix = features.map((f) => times.map((t) => (z.get(f).has(t) ? z.get(f).get(t) : null)));
    plot("chart-drift", [{ type: "heatmap", x: times, y: features, z: matrix,
      colorscale: "YlOrRd", hoverongaps: false, colorbar: { thickness: 10 } }],
    baseLayout({ margin: { l: 110, r: 12, t: 8, b: 30 }, showlegend: false,
      yaxis: { type: "category", automargin: true } }));
  }

  function rolling(values, window) {
    const out = [];
    let sum = 0;
    for (let i = 0; i < values.length; i++) {
      sum += values[i];
      if (i >= window) sum -= values[i - window];
      out.push(i + 1 >= Math.min(window, values.length) ? sum / Math.min(i + 1, window) : null);
    }
    return out;
  }

  function renderModel() {
    // win rate of the last 20 closed trades (stored round trips, or sells with a pnl) and the
    // mean confidence of the last 50 signals
    const closed = state.trades.filter((t) => t.exit_time && t.pnl !== null && t.pnl !== undefined)
      .map((t) => [ts(t.exit_time), Number(t.pnl) > 0 ? 1 : 0]);
    const pnl = fillPnl();
    for (const f of state.fills.values()) {
      const v = f.pnl !== undefined && f.pnl !== null ? f.pnl : pnl.get(fillKey(f));
      if (v !== undefined) closed.push([ts(f.bar_time || f.timestamp), Number(v) > 0 ? 1 : 0]);
    }
    closed.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const sig = state.signals.filter((s) => s.confidence !== null && s.confidence !== undefined)
      .map((s) => [ts(s.timestamp), Number(s.confidence)]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    plot("chart-model", [
      { x: closed.map((c) => c[0]), y: rolling(closed.map((c) => c[1]), 20), name: "win rate (20 trades)",
        type: "scatter", mode: "lines", line: { color: cssVar("--up") } },
      { x: sig.map((s) => s[0]), y: rolling(sig.map((s) => s[1]), 50), name: "mean confidence (50 signals)",
        type: "scatter", mode: "lines", line: { color: cssVar("--accent") } },
    ], baseLayout({ yaxis: { range: [0, 1], gridcolor: cssVar("--grid") } }));
  }

  function renderCharts() {
    state.renderTimer = null;
    renderEquity(); renderPrice(); renderDrift(); renderModel();
  }

  function scheduleCharts() {  // charts at most every 250 ms; tables at once
    if (state.renderTimer === null) state.renderTimer = setTimeout(renderCharts, 250);
  }

  function renderAll() {
    renderTrades(); renderPositions(); renderAlerts(); renderCharts();
  }

  // ---------------------------------------------------------------- REST loading
  function applyEquityRows(rows) {
    for (const r of rows) {
      if (Array.isArray(r.timestamp) && Array.isArray(r.equity)) {  // /equity's series
        for (let i = 0; i < r.timestamp.length; i++) addEquity(r.timestamp[i], r.portfolio, r.equity[i]);
        continue;
      }
      if (r.groups && typeof r.groups === "object") {
        for (const [k, v] of Object.entries(r.groups)) addEquity(r.timestamp, k, v);
      } else {
        addEquity(r.timestamp || r.time, r.portfolio, r.equity !== undefined ? r.equity : r.value);
      }
    }
  }

  async function loadRun(runId) {
    resetRunState();
    if (!runId) { renderAll(); return; }
    const id = encodeURIComponent(runId);
    const q = "?run_id=" + id;
    const base = "/api/runs/" + id;
    const [equity, trades, fills, signals, positions, drift] = await Promise.all([
      tryApi(base + "/equity"), latest(base + "/trades", 1000), latest(base + "/fills", 1000),
      latest(base + "/signals", 2000), tryApi("/api/positions" + q), latest("/api/drift" + q, 5000)]);
    if (runId !== (state.run === LIVE ? state.liveRun : state.run)) return;  // picked another meanwhile
    applyEquityRows(rowsOf(equity));
    if (!state.equity.size) {  // a backtest records daily equity, not every bar's
      for (const d of rowsOf(await latest(base + "/daily", 10000))) {
        addEquity(d.date, d.portfolio, d.ending_equity);
      }
    }
    state.trades = rowsOf(trades);
    for (const f of rowsOf(fills)) addFill(f);
    state.signals = rowsOf(signals);
    for (const p of rowsOf(positions)) if (!p.run_id || p.run_id === runId) setPosition(p);
    state.drift = rowsOf(drift).filter((d) => !d.run_id || d.run_id === runId);
    renderAll();
  }

  async function loadAlerts() {
    const body = await tryApi("/api/alerts?limit=" + MAX_ROWS);
    const rows = rowsOf(body);
    const live = state.alerts.filter((a) => a._live);
    state.alerts = live.concat(rows).slice(0, MAX_ROWS);
    renderAlerts();
  }

  async function loadRuns() {
    const [health, runs] = await Promise.all([tryApi("/api/health"), latest("/api/runs", 500)]);
    const list = rowsOf(runs).slice().sort((a, b) => String(b.created_at || "").localeCompare(String(a.created_at || "")));
    const picker = $("run-picker");
    const options = [];
    const hasBus = !health || health.bus === true || health.bus === "yes";
    if (hasBus) options.push(new Option("● live (event bus)", LIVE));
    for (const r of list) {
      const label = r.run_id + " · " + (r.kind || "run") + (r.created_at ? " · " + (ts(r.created_at) || "") : "");
      options.push(new Option(label, r.run_id));
    }
    picker.replaceChildren(...options);
    const live = list.find((r) => r.kind === "live" || r.kind === "paper");  // newest first
    if (live && !state.liveRun) state.liveRun = live.run_id;
    const wanted = params.get("run");
    picker.value = wanted && list.some((r) => r.run_id === wanted) ? wanted : (options[0] ? options[0].value : "");
    if (health) {
      $("footer").textContent = "service " + (health.version || "") + (health.store ? " · store " + health.store : "");
    }
    return picker.value;
  }

  async function selectRun(value) {
    state.run = value;
    $("run-info").textContent = value === LIVE ? (state.liveRun ? "run " + state.liveRun : "") : "";
    await loadRun(value === LIVE ? state.liveRun : value);
    if (value === LIVE && state.lastSeq > 0) loadBarHistory(state.lastSeq);  // back to live
  }

  // ---------------------------------------------------------------- WebSocket
  function setStatus(s, text) {
    const el = $("ws-status");
    el.dataset.state = s; el.textContent = text;
  }

  // equity ticks a slow page missed (conflated by the server) are read back from the store
  // once the engine's batch is written: debounced, merged by timestamp
  function refreshEquitySoon() {
    clearTimeout(state.equityTimer);
    state.equityTimer = setTimeout(async () => {
      const runId = state.liveRun;
      if (state.run !== LIVE || !runId) return;
      const body = await tryApi("/api/runs/" + encodeURIComponent(runId) + "/equity");
      if (state.run === LIVE && runId === state.liveRun) { applyEquityRows(rowsOf(body)); scheduleCharts(); }
    }, 1500);
  }

  function applyEvent(ev, newKeys) {
    if (!ev || typeof ev !== "object") return;
    if (ev.conflated || ev.topic === "status") refreshEquitySoon();
    const seq = Number(ev.seq);
    if (isFinite(seq) && seq > state.lastSeq) state.lastSeq = seq;
    const topic = TOPIC[ev.topic] || ev.topic;
    const d = ev.data || {};
    if (topic === "alert") { d._live = true; addAlert(d); renderAlerts(); return; }
    if (topic === "status" && d.run_id && !state.liveRun) {
      state.liveRun = d.run_id;
      if (state.run === LIVE) $("run-info").textContent = "run " + d.run_id;
    }
    if (state.run !== LIVE) return;  // a stored run is shown: only alerts are global
    if (topic === "fill") {
      if (addFill(d) && newKeys && d.client_order_id) newKeys.add(d.client_order_id);
    } else if (topic === "position") {
      setPosition(d);
    } else if (topic === "equity") {
      if (d.groups && typeof d.groups === "object" && Object.keys(d.groups).length) {
        for (const [k, v] of Object.entries(d.groups)) addEquity(d.timestamp, k, v);
      } else addEquity(d.timestamp, "total", d.equity);
    } else if (topic === "bar") {
      const bars = d.bars || (d.symbol ? { [d.symbol]: d } : {});
      for (const [sym, b] of Object.entries(bars)) addPrice(sym, d.timestamp || b.timestamp, b.close);
    } else if (topic === "signal") {
      state.signals.push(d);
      if (state.signals.length > MAX_POINTS) state.signals.shift();
    } else if (topic === "drift") {
      for (const row of Array.isArray(d.rows) ? d.rows : [d]) state.drift.push(row);
    }
  }

  // the live run's recent bars: the bus keeps its last events, so a short-lived second
  // socket asks for the "bar" topic since a few thousand events back and closes when done
  function loadBarHistory(seq) {
    if (!(seq > 0) || state.barHistoryLoaded) return;
    state.barHistoryLoaded = true;
    const q = new URLSearchParams({ topics: "bar", since: String(Math.max(0, seq - 9000)) });
    if (TOKEN) q.set("token", TOKEN);
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + window.location.host + "/ws?" + q);
    let expected = null, got = 0;
    const done = () => { try { ws.close(1000); } catch (err) { /* closed */ } scheduleCharts(); };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      for (const m of Array.isArray(msg) ? msg : [msg]) {
        if (!m || typeof m !== "object") continue;
        if (m.type === "resume") expected = Number(m.count);
        else if (m.type === "snapshot") { if (m.bar) applyEvent({ topic: "bar", data: m.bar }); done(); return; }
        else if (m.type === "event" && m.topic === "bar") {
          if (state.run === LIVE) applyEvent({ topic: "bar", data: m.data });  // seq: the main socket's
          got += 1;
          if (Number(m.seq) >= seq) { done(); return; }
        }
      }
      if (expected !== null && got >= expected) done();
    };
    ws.onerror = () => { /* onclose */ };
    setTimeout(done, 10000);
  }

  function applySnapshot(s) {
    const newKeys = new Set();
    for (const key of ["fills", "trades"]) {
      for (const f of rowsOf(s[key])) if (f.client_order_id || f.price !== undefined) addFill(f);
    }
    const pos = s.positions;
    if (pos && !Array.isArray(pos) && typeof pos === "object" && !pos.items) {
      for (const [sym, p] of Object.entries(pos)) setPosition(typeof p === "object" ? Object.assign({ symbol: sym }, p) : { symbol: sym, qty: p });
    } else for (const p of rowsOf(pos)) setPosition(p);
    if (s.equity && !Array.isArray(s.equity) && s.equity.timestamp) applyEvent({ topic: "equity", data: s.equity });
    else applyEquityRows(rowsOf(s.equity));
    for (const a of rowsOf(s.alerts)) { a._live = true; addAlert(a); }
    for (const ev of rowsOf(s.events)) applyEvent(ev, newKeys);
    if (s.bar && typeof s.bar === "object") applyEvent({ topic: "bar", data: s.bar });
    const runId = s.run_id || (s.status && s.status.run_id);
    if (runId && !state.liveRun) state.liveRun = runId;
  }

  function handleMessage(msg) {
    const newKeys = new Set();
    const list = Array.isArray(msg) ? msg : [msg];
    for (const m of list) {
      if (!m || typeof m !== "object") continue;
      const type = m.type || (m.topic ? "event" : "");
      if (type === "snapshot") {
        if (state.run === LIVE) applySnapshot(m.data && typeof m.data === "object" ? Object.assign({}, m, m.data) : m);
        const seq = Number(m.seq);
        if (isFinite(seq) && seq > state.lastSeq) state.lastSeq = seq;
        if (state.run === LIVE) loadBarHistory(seq);
      } else if (type === "error") {
        console.warn("dashboard: server says", m.detail || m);
      } else if (Array.isArray(m.events)) {
        for (const ev of m.events) applyEvent(ev, newKeys);
      } else if (m.topic) {
        applyEvent(m, newKeys);
      }
    }
    if (state.run === LIVE) { scheduleTables(newKeys); scheduleCharts(); }
  }

  // tables at most every 100 ms (a busy bus sends many messages), charts every 250 ms
  function scheduleTables(newKeys) {
    for (const k of newKeys) state.newKeys.add(k);
    if (state.tableTimer !== null) return;
    state.tableTimer = setTimeout(() => {
      state.tableTimer = null;
      renderTrades(state.newKeys); renderPositions();
      state.newKeys = new Set();
    }, 100);
  }

  function connect() {
    clearTimeout(state.wsTimer);
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    if (state.lastSeq > 0) q.set("since", String(state.lastSeq));
    if (TOKEN) q.set("token", TOKEN);
    const url = proto + "//" + window.location.host + "/ws" + (q.toString() ? "?" + q : "");
    setStatus("connecting", "connecting");
    let ws;
    try { ws = new WebSocket(url); } catch (err) { scheduleReconnect(); return; }
    state.ws = ws;
    ws.onopen = () => { state.wsDelay = 500; setStatus("live", "live"); };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { console.warn("dashboard: not JSON", String(e.data).slice(0, 80)); return; }
      handleMessage(msg);
    };
    ws.onclose = (e) => {
      state.ws = null;
      setStatus("off", "offline" + (e.code && e.code !== 1000 ? " (" + e.code + ")" : ""));
      if (e.code !== 1008) scheduleReconnect();  // 1008: wrong token, retrying will not help
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  function scheduleReconnect() {
    clearTimeout(state.wsTimer);
    state.wsTimer = setTimeout(connect, state.wsDelay);
    state.wsDelay = Math.min(state.wsDelay * 2, 10000);
  }

  // ---------------------------------------------------------------- theme
  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    renderCharts();
  }

  function currentTheme() {
    return document.documentElement.dataset.theme ||
      (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  }

  function initTheme() {
    let saved = null;
    try { saved = window.localStorage.getItem("atl-theme"); } catch (err) { saved = null; }
    if (saved === "dark" || saved === "light") document.documentElement.dataset.theme = saved;
    $("theme-toggle").addEventListener("click", () => {
      const next = currentTheme() === "dark" ? "light" : "dark";
      try { window.localStorage.setItem("atl-theme", next); } catch (err) { /* private mode */ }
      applyTheme(next);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => renderCharts());
  }

  // ---------------------------------------------------------------- start
  async function start() {
    initTheme();
    renderAll();
    $("run-picker").addEventListener("change", (e) => selectRun(e.target.value));
    $("symbol-picker").addEventListener("change", () => renderPrice());
    const first = await loadRuns();
    await Promise.all([selectRun(first), loadAlerts()]);
    connect();
    document.documentElement.dataset.ready = "1";  // for tests and screenshots
  }

  window.atlDashboard = { state, handleMessage, reload: () => selectRun(state.run) };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
