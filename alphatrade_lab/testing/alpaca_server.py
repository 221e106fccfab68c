"""A local server that answers like Alpaca's trading and market-data APIs (REST v2).

For tests, benchmarks and notebooks: a :class:`http.server.ThreadingHTTPServer` on
127.0.0.1 (a free port) in a daemon thread, with one in-memory account: cash, positions
(shorts allowed) and market orders, and bars served by ``GET /v2/stocks/bars``. The shapes
follow Alpaca's documentation: decimals as strings, RFC-3339 times, error bodies
``{"code": ..., "message": ...}``.

* **Prices.** A market order fills at once at the symbol's current price: the one given
  to :meth:`LocalAlpaca.set_price` (it wins), else the close of the latest loaded bar that
  has closed by the server's clock (:meth:`~LocalAlpaca.load_bars`,
  :meth:`~LocalAlpaca.advance`). The data endpoint serves only bars closed by the clock
  (no clock set: every bar). An order for a known symbol with no price yet waits
  (``accepted``) and fills when a price appears.
* **Checks.** Keys (401 without them, 403 for wrong ones), unknown symbols (422), a bad
  quantity (422), a client order id already used (422 ``client_order_id must be
  unique``), buying power (403 ``insufficient buying power``): an order may not take
  gross exposure above ``multiplier × equity`` (with ``multiplier=1``, a long-only account
  buys with its cash).
* **Partial fills.** With ``partial_fill=0.5`` an order first fills half; the rest fills
  on the next status request (any ``GET /v2/orders...``) or :meth:`~LocalAlpaca.advance`.
* **Faults.** :meth:`~LocalAlpaca.fail_next` answers the next requests under a path
  prefix (``"/v2/orders"`` covers ``/v2/orders:by_client_order_id`` too; pass ``method=``
  to narrow it) with a status (429 with ``Retry-After``, 5xx, a malformed body) without
  touching the state; :meth:`~LocalAlpaca.delay_next` handles them and answers late (a
  client timeout after the order was taken), or with ``process=False`` drops them
  unanswered.

The state lives in this object, not in a client: an engine killed and started again
finds its orders and positions.

>>> import httpx
>>> with LocalAlpaca(cash=1_000.0) as srv:
...     srv.set_price("AAA", 10.0)
...     h = {"APCA-API-KEY-ID": srv.key_id, "APCA-API-SECRET-KEY": srv.secret_key}
...     o = httpx.post(srv.url + "/v2/orders", headers=h, json={
...         "symbol": "AAA", "qty": "5", "side": "buy", "type": "market",
...         "time_in_force": "day", "client_order_id": "c1"}).json()
...     a = httpx.get(srv.url + "/v2/account", headers=h).json()
>>> o["status"], o["filled_avg_price"], a["cash"], a["equity"]
('filled', '10', '950', '1000')
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from alphatrade_lab.data.schema import validate
from alphatrade_lab.testing._server import LocalHTTPServer, QuietHandler, QuietServer
from alphatrade_lab.testing.receiver import Received

__all__ = ["LocalAlpaca"]

_OPEN = ("new", "accepted", "pending_new", "partially_filled")
_TIF = ("day", "gtc", "opg", "cls", "ioc", "fok")
_UNITS = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600, "Day": 86400, "D": 86400,
          "Week": 7 * 86400, "W": 7 * 86400}


def _dec(x: float) -> str:
    """A decimal string that reads back as exactly ``x`` (Alpaca's decimal fields)."""
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    r = repr(x)
    return format(x, "f") if "e" in r else r


def _iso(ns: int) -> str:
    """RFC-3339 UTC with nanoseconds when there are any."""
    t = pd.Timestamp(int(ns), tz="UTC")
    frac = int(ns) % 1_000_000_000
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}" if frac else "") + "Z"


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


@dataclass
class _Fault:
    prefix: str
    method: str | None
    times: int
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    process: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and path.startswith(self.prefix) and (
            self.method is None or self.method == method)


@dataclass
class _Bars:
    """One symbol's loaded bars as arrays, in time order."""

    ts: np.ndarray          # open time, int64 ns
    close_ts: np.ndarray    # close time, int64 ns
    values: np.ndarray      # (n, 5): open, high, low, close, volume
    bar_ns: int


class _Handler(QuietHandler):
    server: QuietServer

    def _handle(self) -> None:
        srv: LocalAlpaca = self.server.alpaca  # type: ignore[attr-defined]
        length = self.body_length(srv.max_body)
        if length is None:
            declared = self.headers.get("Content-Length") or ""
            self._reply(413 if declared.strip().isdigit() else 400,
                        _error(40010000, "request body too large or its length unreadable"), {})
            return
        body = self.rfile.read(length) if length else b""
        req = Received(time.monotonic(), self.command, self.path, dict(self.headers), body)
        fault = srv._record(req)
        if fault is not None and not fault.process:
            if fault.delay and srv._stopping.wait(fault.delay):
                return
            if not fault.status:          # dropped: no answer at all
                self.close_connection = True
                return
            self._reply(fault.status, fault.body, fault.headers)
            return
        status, payload, headers = srv._dispatch(req)
        if fault is not None and fault.delay and srv._stopping.wait(fault.delay):
            return
        self._reply(status, payload, headers)

    def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if data and status not in (204, 304):
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _handle


class LocalAlpaca(LocalHTTPServer):
    """Start with ``with LocalAlpaca() as srv:`` (or :meth:`start`); ``srv.url`` is the base
    URL of both APIs, ``srv.key_id`` / ``srv.secret_key`` the keys it accepts.

    Parameters
    ----------
    cash
        Starting cash.
    multiplier
        Gross exposure allowed per unit of equity (Alpaca: 1 cash, 2 or 4 margin).
    partial_fill
        None (orders fill whole) or the fraction in (0, 1) an order first fills.
    key_id, secret_key
        The keys to accept (defaults are fixed test values).
    """

    server_class = QuietServer
    handler_class = _Handler
    owner_attr = "alpaca"
    thread_name = "local-alpaca"

    def __init__(self, *, cash: float = 100_000.0, multiplier: float = 1.0,
                 partial_fill: float | None = None, key_id: str = "PKLOCALTEST000000001",
                 secret_key: str = "local-alpaca-secret-0000000000000000000001",
                 host: str = "127.0.0.1", port: int = 0, max_body: int = 1 << 20):
        if not (math.isfinite(cash) and cash >= 0):
            raise ValueError(f"LocalAlpaca: cash must be finite and >= 0, got {cash!r}")
        if not (math.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"LocalAlpaca: multiplier must be > 0, got {multiplier!r}")
        if partial_fill is not None and not 0 < partial_fill < 1:
            raise ValueError(f"LocalAlpaca: partial_fill must be in (0, 1), got {partial_fill!r}")
        self.key_id, self.secret_key = key_id, secret_key
        self.multiplier, self.partial_fill, self.max_body = multiplier, partial_fill, max_body
        self._init_server(host, port)
        self._lock = threading.RLock()
        self._cash = float(cash)
        self._pos: dict[str, list[float]] = {}      # symbol -> [qty, avg entry price]
        self._orders: dict[str, dict[str, Any]] = {}
        self._working: dict[str, dict[str, Any]] = {}   # the orders not final yet
        self._submitted: dict[str, int] = {}            # order id -> submitted_at, ns
        self._by_cid: dict[str, str] = {}
        self._fill_steps: dict[str, int] = {}       # order id -> fills made
        self._prices: dict[str, float] = {}
        self._bars: dict[str, _Bars] = {}
        self._clock: int | None = None
        self._faults: list[_Fault] = []
        self._received: list[Received] = []
        self._last_ns = 0

    # ------------------------------------------------------------------ lifecycle
    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"LocalAlpaca({where}, orders={len(self._orders)})"

    # ------------------------------------------------------------------ market
    def set_price(self, symbol: str, price: float) -> None:
        """The price ``symbol`` trades at from now on (it wins over loaded bars)."""
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"LocalAlpaca.set_price: price must be > 0, got {price!r}")
        with self._lock:
            self._prices[symbol] = float(price)
            self._work_all()

    def load_bars(self, bars: pd.DataFrame, bar_length: Any = None) -> None:
        """Serve these long-form bars (replacing earlier bars of the same symbols).

        ``bar_length`` (a Timedelta or its text) is inferred per symbol from the smallest
        step between bars when not given; a bar closes at its open time plus that.
        """
        clean = validate(bars, source="LocalAlpaca.load_bars")
        given = None if bar_length is None else int(pd.Timedelta(bar_length).value)
        loaded: dict[str, _Bars] = {}
        for symbol, g in clean.groupby("symbol", sort=True):
            ts = g["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
            step = given
            if step is None:
                diffs = np.diff(ts)
                if not diffs.size:
                    raise ValueError(f"LocalAlpaca.load_bars: one bar of {symbol!r}; pass "
                                     "bar_length")
                step = int(diffs.min())
            values = g[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
            loaded[str(symbol)] = _Bars(ts, ts + step, values, step)
        with self._lock:
            self._bars.update(loaded)
            self._work_all()

    def advance(self, to: Any) -> None:
        """Move the clock to ``to`` (never back): bars closed by then become visible and
        open orders fill at the new prices."""
        t = pd.Timestamp(to)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        with self._lock:
            if self._clock is not None and t.value < self._clock:
                raise ValueError(f"LocalAlpaca.advance: the clock is at "
                                 f"{pd.Timestamp(self._clock, tz='UTC')}, not going back to {t}")
            self._clock = int(t.value)
            self._work_all()

    @property
    def clock(self) -> pd.Timestamp | None:
        return None if self._clock is None else pd.Timestamp(self._clock, tz="UTC")

    def price(self, symbol: str) -> float | None:
        """The price an order in ``symbol`` fills at now (None: none yet)."""
        with self._lock:
            if symbol in self._prices:
                return self._prices[symbol]
            b = self._bars.get(symbol)
            if b is None:
                return None
            clock = np.iinfo(np.int64).max if self._clock is None else self._clock
            i = int(np.searchsorted(b.close_ts, clock, side="right")) - 1
            return float(b.values[i, 3]) if i >= 0 else None

    def _known(self, symbol: str) -> bool:
        return symbol in self._prices or symbol in self._bars

    # ------------------------------------------------------------------ faults, log
    def fail_next(self, path_prefix: str, status: int = 503, *, body: Any = None,
                  headers: dict[str, str] | None = None, times: int = 1,
                  method: str | None = None) -> None:
        """Answer the next ``times`` requests whose path starts with ``path_prefix`` (and
        whose method is ``method``, when given) with ``status`` and ``body`` (default:
        Alpaca's error shape), leaving the state alone."""
        if body is None and status == 429:
            body = _error(42910000, "rate limit exceeded")
        elif body is None and status >= 400:
            phrase = HTTPStatus(status).phrase.lower() if status in HTTPStatus._value2member_map_ \
                else "error"
            body = _error(status * 100_000, phrase)
        with self._lock:
            self._faults.append(_Fault(path_prefix, method, times, status, body,
                                       dict(headers or {})))

    def delay_next(self, path_prefix: str, seconds: float, *, times: int = 1,
                   method: str | None = None, process: bool = True) -> None:
        """Answer the next ``times`` matching requests ``seconds`` late. ``process=True``:
        handled first (an order is taken, the client may time out before it hears);
        ``False``: never handled nor answered (lost on the way)."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, method, times, delay=float(seconds),
                                       process=process))

    def _record(self, req: Received) -> _Fault | None:
        path = urlsplit(req.path).path
        with self._lock:
            self._received.append(req)
            for f in self._faults:
                if f.matches(req.method, path):
                    f.times -= 1
                    return f
        return None

    def requests(self, prefix: str = "", method: str | None = None) -> list[Received]:
        """Requests received so far (faults included) whose path starts with ``prefix``."""
        with self._lock:
            return [r for r in self._received if urlsplit(r.path).path.startswith(prefix)
                    and (method is None or r.method == method)]

    # ------------------------------------------------------------------ inspection
    def orders(self) -> list[dict[str, Any]]:
        """Every order the server holds, as Alpaca's JSON, oldest first."""
        with self._lock:
            return [dict(o) for o in self._orders.values()]

    @property
    def cash(self) -> float:
        return self._cash

    def positions(self) -> dict[str, float]:
        """Signed quantity by symbol (flat symbols left out)."""
        with self._lock:
            return {s: q for s, (q, _) in self._pos.items() if q != 0}

    # ------------------------------------------------------------------ bookkeeping
    def _now_ns(self) -> int:
        ns = max(time.time_ns(), self._last_ns + 1)   # unique, increasing
        self._last_ns = ns
        return ns

    def _mark(self, symbol: str) -> float:
        p = self.price(symbol)
        return p if p is not None else self._pos.get(symbol, [0.0, 0.0])[1]

    def _equity_gross(self) -> tuple[float, float]:
        equity, gross = self._cash, 0.0
        for s, (q, _) in self._pos.items():
            p = self._mark(s)
            equity += q * p
            gross += abs(q) * p
        return equity, gross

    def _buying_power(self) -> float:
        equity, gross = self._equity_gross()
        return max(0.0, self.multiplier * equity - gross)

    def _affordable(self, symbol: str, signed_qty: float, price: float) -> bool:
        q = self._pos.get(symbol, [0.0, 0.0])[0]
        if abs(q + signed_qty) <= abs(q):
            return True          # it reduces exposure
        equity, gross = self._equity_gross()
        after = gross - abs(q) * self._mark(symbol) + abs(q + signed_qty) * price
        return self.multiplier * equity - after >= -1e-9 * max(1.0, abs(equity))

    def _fill(self, order: dict[str, Any], qty: float, price: float) -> None:
        symbol = order["symbol"]
        signed = qty if order["side"] == "buy" else -qty
        pos = self._pos.setdefault(symbol, [0.0, 0.0])
        q, avg = pos
        new = q + signed
        if q == 0:
            pos[1] = price
        elif (q > 0) == (signed > 0):                   # adds
            pos[1] = (abs(q) * avg + qty * price) / abs(new)
        elif abs(signed) > abs(q):                      # reverses
            pos[1] = price
        pos[0] = 0.0 if abs(new) < 1e-12 else new
        if pos[0] == 0:
            pos[1] = 0.0
        self._cash -= signed * price
        done = float(order["filled_qty"])
        prev = 0.0 if order["filled_avg_price"] is None else float(order["filled_avg_price"])
        total = done + qty
        now = _iso(self._now_ns())
        order["filled_qty"] = _dec(total)
        order["filled_avg_price"] = _dec(price if done == 0 else
                                         (done * prev + qty * price) / total)
        order["updated_at"] = now
        if total >= float(order["qty"]) - 1e-12:
            order["status"], order["filled_at"] = "filled", now
        else:
            order["status"] = "partially_filled"
        self._fill_steps[order["id"]] = self._fill_steps.get(order["id"], 0) + 1

    def _work(self, order: dict[str, Any]) -> None:
        """Fill what an open order can fill now."""
        if order["status"] not in _OPEN:
            return
        price = self.price(order["symbol"])
        if price is None:
            return
        qty, done = float(order["qty"]), float(order["filled_qty"])
        if self._fill_steps.get(order["id"], 0) == 0:
            signed = qty if order["side"] == "buy" else -qty
            if not self._affordable(order["symbol"], signed, price):
                order["status"], order["failed_at"] = "rejected", _iso(self._now_ns())
                return
            part = qty * self.partial_fill if self.partial_fill else qty
            self._fill(order, part, price)
        elif qty - done > 0:
            self._fill(order, qty - done, price)

    def _work_all(self) -> None:
        for oid, o in list(self._working.items()):
            self._work(o)
            if o["status"] not in _OPEN:
                del self._working[oid]

    # ------------------------------------------------------------------ the API
    def _dispatch(self, req: Received) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(req.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        key, secret = req.headers.get("APCA-API-KEY-ID"), req.headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            return 401, {"message": "unauthorized"}, {}
        if key != self.key_id or secret != self.secret_key:
            return 403, {"message": "forbidden."}, {}
        m = req.method
        with self._lock:
            if path == "/v2/account" and m == "GET":
                return 200, self._account_json(), {}
            if path == "/v2/positions" and m == "GET":
                return 200, self._positions_json(), {}
            if path == "/v2/orders" and m == "POST":
                return self._submit(req.body)
            if path == "/v2/orders" and m == "GET":
                self._work_all()
                return self._list_orders(query)
            if path == "/v2/orders" and m == "DELETE":
                self._work_all()
                open_ids = list(self._working)
                return 207, [{"id": oid, "status": self._cancel(oid)[0] and 200,
                              "body": dict(self._orders[oid])} for oid in open_ids], {}
            if path == "/v2/orders:by_client_order_id" and m == "GET":
                self._work_all()
                oid = self._by_cid.get(query.get("client_order_id", ""))
                if oid is None:
                    return 404, _error(40410000, "order not found"), {}
                return 200, dict(self._orders[oid]), {}
            if path.startswith("/v2/orders/"):
                oid = path[len("/v2/orders/"):]
                if oid not in self._orders:
                    return 404, _error(40410000, f"order not found for {oid}"), {}
                if m == "GET":
                    self._work_all()
                    return 200, dict(self._orders[oid]), {}
                if m == "DELETE":
                    status, body = self._cancel(oid)
                    return status, body, {}
            if path == "/v2/stocks/bars" and m == "GET":
                return self._bars_page(query)
        return 404, _error(40410000, f"endpoint not found: {m} {path}"), {}

    def _account_json(self) -> dict[str, Any]:
        equity, _ = self._equity_gross()
        longs = sum(q * self._mark(s) for s, (q, _) in self._pos.items() if q > 0)
        shorts = sum(q * self._mark(s) for s, (q, _) in self._pos.items() if q < 0)
        bp = self._buying_power()
        return {"id": "00000000-0000-4000-8000-000000000001", "account_number": "PA0LOCAL0001",
                "status": "ACTIVE", "crypto_status": "INACTIVE", "currency": "USD",
                "cash": _dec(self._cash), "portfolio_value": _dec(equity),
                "equity": _dec(equity), "last_equity": _dec(equity),
                "long_market_value": _dec(longs), "short_market_value": _dec(shorts),
                "buying_power": _dec(bp), "regt_buying_power": _dec(bp),
                "daytrading_buying_power": "0", "non_marginable_buying_power": _dec(bp),
                "initial_margin": "0", "maintenance_margin": "0", "sma": "0",
                "multiplier": _dec(self.multiplier), "shorting_enabled": True,
                "pattern_day_trader": False, "trading_blocked": False,
                "transfers_blocked": False, "account_blocked": False, "daytrade_count": 0,
                "created_at": "2024-01-01T00:00:00Z"}

    def _positions_json(self) -> list[dict[str, Any]]:
        out = []
        for s, (q, avg) in sorted(self._pos.items()):
            if q == 0:
                continue
            p = self._mark(s)
            out.append({
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, s)), "symbol": s,
                "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True,
                "qty": _dec(q), "qty_available": _dec(q), "avg_entry_price": _dec(avg),
                "side": "long" if q > 0 else "short", "market_value": _dec(q * p),
                "cost_basis": _dec(q * avg), "unrealized_pl": _dec(q * (p - avg)),
                "unrealized_plpc": _dec((p - avg) / avg * (1 if q > 0 else -1)),
                "current_price": _dec(p), "lastday_price": _dec(p), "change_today": "0"})
        return out

    def _submit(self, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return 400, _error(40010000, "request body format is invalid"), {}
        if not isinstance(body, dict):
            return 400, _error(40010000, "request body format is invalid"), {}
        symbol, side = body.get("symbol"), body.get("side")
        kind, tif = body.get("type", "market"), body.get("time_in_force")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(symbol, str) or not symbol:
            return 422, _error(40010001, "symbol is required"), {}
        if side not in ("buy", "sell"):
            return 422, _error(40010001, "side must be buy or sell"), {}
        if kind != "market":
            return 422, _error(40010001, "LocalAlpaca takes market orders only"), {}
        if tif not in _TIF:
            return 422, _error(40010001, "invalid time_in_force"), {}
        if body.get("notional") is not None:
            return 422, _error(40010001, "LocalAlpaca takes qty, not notional"), {}
        try:
            qty = float(body.get("qty"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 422, _error(40010001, "qty must be > 0"), {}
        if not (math.isfinite(qty) and qty > 0):
            return 422, _error(40010001, "qty must be > 0"), {}
        if not isinstance(cid, str) or len(cid) > 48:
            return 422, _error(40010001, "client_order_id must be no more than 48 characters"), {}
        if cid in self._by_cid:
            return 422, _error(40010001, "client_order_id must be unique"), {}
        if not self._known(symbol):
            # the message of Alpaca's 422 for an unknown asset (alpacahq/Alpaca-API#184)
            return 422, _error(40010001, f"could not find us_equity '{symbol}'"), {}
        price = self.price(symbol)
        signed = qty if side == "buy" else -qty
        if price is not None and not self._affordable(symbol, signed, price):
            return 403, {"buying_power": _dec(self._buying_power()), "code": 40310000,
                         "cost_basis": _dec(qty * price), "message": "insufficient buying power"
                         }, {}
        now = _iso(self._now_ns())
        oid = str(uuid.uuid4())
        order = {
            "id": oid, "client_order_id": cid, "created_at": now, "updated_at": now,
            "submitted_at": now, "filled_at": None, "expired_at": None, "canceled_at": None,
            "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)), "symbol": symbol,
            "asset_class": "us_equity", "notional": None, "qty": _dec(qty), "filled_qty": "0",
            "filled_avg_price": None, "order_class": "", "order_type": "market",
            "type": "market", "side": side, "time_in_force": tif, "limit_price": None,
            "stop_price": None, "status": "accepted", "extended_hours": False, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None}
        self._orders[oid] = order
        self._by_cid[cid] = oid
        self._submitted[oid] = pd.Timestamp(now).value
        self._work(order)
        if order["status"] in _OPEN:
            self._working[oid] = order
        return 200, dict(order), {}

    def _list_orders(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            return 422, _error(40010001, "invalid status"), {}
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            return 422, _error(40010001, "invalid limit"), {}
        if not 1 <= limit <= 500:
            return 422, _error(40010001, "limit must be between 1 and 500"), {}
        source = self._working if status == "open" else self._orders
        rows = [o for o in source.values()
                if status != "closed" or o["status"] not in _OPEN]
        try:
            after = pd.Timestamp(q["after"]).value if q.get("after") else None
            until = pd.Timestamp(q["until"]).value if q.get("until") else None
        except ValueError:
            return 422, _error(40010001, "invalid after or until"), {}
        if after is not None:
            rows = [o for o in rows if self._submitted[o["id"]] > after]
        if until is not None:
            rows = [o for o in rows if self._submitted[o["id"]] < until]
        if q.get("symbols"):
            wanted = set(q["symbols"].split(","))
            rows = [o for o in rows if o["symbol"] in wanted]
        if q.get("direction", "desc") == "desc":
            rows = rows[::-1]
        return 200, [dict(o) for o in rows[:limit]], {}

    def _cancel(self, oid: str) -> tuple[int, Any]:
        order = self._orders[oid]
        if order["status"] not in _OPEN:
            return 422, _error(42210000, f"order is not cancelable (status {order['status']})")
        now = _iso(self._now_ns())
        order["status"], order["canceled_at"], order["updated_at"] = "canceled", now, now
        self._working.pop(oid, None)
        return 204, None

    def _bars_page(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        symbols = sorted({s for s in q.get("symbols", "").split(",") if s})
        if not symbols:
            return 400, {"message": "missing symbols"}, {}
        tf = q.get("timeframe", "")
        unit = tf.lstrip("0123456789")
        if unit not in _UNITS or not tf[:len(tf) - len(unit)].isdigit():
            return 400, {"message": f"invalid timeframe: {tf!r}"}, {}
        tf_ns = int(tf[:len(tf) - len(unit)]) * _UNITS[unit] * 1_000_000_000
        try:
            limit = int(q.get("limit", "1000"))
            start = pd.Timestamp(q["start"]).value if q.get("start") else None
            end = pd.Timestamp(q["end"]).value if q.get("end") else None
        except ValueError:
            return 400, {"message": "invalid limit, start or end"}, {}
        if not 1 <= limit <= 10_000:
            return 400, {"message": "invalid limit: must be 1 to 10000"}, {}
        if q.get("sort", "asc") != "asc":
            return 400, {"message": "LocalAlpaca serves sort=asc only"}, {}
        after: tuple[str, int] | None = None
        if q.get("page_token"):
            try:
                sym, _, ns = base64.urlsafe_b64decode(q["page_token"]).decode().partition("\n")
                after = (sym, int(ns))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return 400, {"message": "invalid page_token"}, {}
        clock = np.iinfo(np.int64).max if self._clock is None else self._clock
        out: dict[str, list[dict[str, Any]]] = {}
        n, last = 0, None
        more = False
        for sym in symbols:
            b = self._bars.get(sym)
            if b is None:
                continue
            if b.bar_ns != tf_ns:
                return 422, {"message": f"LocalAlpaca serves {sym} as loaded "
                                        f"({b.bar_ns // 1_000_000_000} s bars), not {tf}"}, {}
            if after is not None and sym < after[0]:
                continue
            lo = 0 if start is None else int(np.searchsorted(b.ts, start, side="left"))
            if after is not None and sym == after[0]:
                lo = max(lo, int(np.searchsorted(b.ts, after[1], side="right")))
            hi = int(np.searchsorted(b.close_ts, clock, side="right"))
            if end is not None:
                hi = min(hi, int(np.searchsorted(b.ts, end, side="right")))
            if hi <= lo:
                continue
            take = min(hi - lo, limit - n)
            if take <= 0:
                more = True
                break
            ts = b.ts[lo:lo + take]
            whole = not (ts % 1_000_000_000).any()
            stamps = np.datetime_as_string(ts.astype("datetime64[ns]"),
                                           unit="s" if whole else "ns")
            out[sym] = [{"t": t + "Z", "o": o, "h": h, "l": low, "c": c, "v": v, "n": 0,
                         "vw": c}
                        for t, (o, h, low, c, v) in zip(stamps.tolist(),
                                                        b.values[lo:lo + take].tolist(),
                                                        strict=True)]
            n, last = n + take, (sym, int(ts[-1]))
            if take < hi - lo:
                more = True
                break
        token = None
        if more and last is not None:
            token = base64.urlsafe_b64encode(f"{last[0]}\n{last[1]}".encode()).decode()
        return 200, {"bars": out, "next_page_token": token}, {}
