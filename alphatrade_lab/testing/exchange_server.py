"""A local exchange that speaks the part of Binance's spot REST API that ccxt uses.

For tests, benchmarks and notebooks: a :class:`http.server.ThreadingHTTPServer` on
127.0.0.1 (a free port) in a daemon thread, with the exchange's state (markets, balances,
orders, bars, the clock) in the test process, so a client that is thrown away and made
again finds its orders. It follows Binance's documented request and response shapes:

* public: ``GET /api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` (with the
  ``PRICE_FILTER``, ``LOT_SIZE`` and ``NOTIONAL`` filters), ``/api/v3/klines`` (closed bars
  only: a bar is served once the clock reached its close) and ``/api/v3/ticker/price``;
* signed (``X-MBX-APIKEY`` header, ``timestamp`` within ``recvWindow``, HMAC-SHA256
  ``signature`` of the query string and body): ``POST/GET/DELETE /api/v3/order``,
  ``GET /api/v3/openOrders``, ``/api/v3/account`` and ``/api/v3/myTrades``.

Market orders fill at the symbol's price: the last :meth:`LocalExchange.set_price`, else
the close of the latest loaded bar closed by the clock (:meth:`LocalExchange.advance`).
A commission of ``fee_rate`` of the traded value is charged in the quote asset (or in
the asset received, ``commission="received"``). With
``partial_fill=f`` an order fills ``f`` of its quantity at once and the rest on
:meth:`LocalExchange.fill_open`. Errors come as Binance sends them (``{"code": -2010,
"msg": "Account has insufficient balance for requested action."}``, ``-1121 Invalid
symbol.``, ``-2010 Duplicate order sent.`` for a ``newClientOrderId`` of an order still
open, ``-2013 Order does not exist.``, ``-1022`` for a bad signature, ``-2015`` for a bad
key); :meth:`LocalExchange.fail_next` and :meth:`LocalExchange.delay_next` script faults
(a 429 with ``Retry-After``, 5xx, malformed bodies, answers slower than a client's
timeout).

>>> import json, urllib.request
>>> with LocalExchange({"USDT": 1000.0}) as ex:
...     ex.set_price("BTCUSDT", 50_000.0)
...     with urllib.request.urlopen(ex.url + "/api/v3/ticker/price?symbol=BTCUSDT") as r:
...         json.loads(r.read())
{'symbol': 'BTCUSDT', 'price': '50000.00000000'}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from alphatrade_lab.testing._server import LocalHTTPServer, QuietHandler, QuietServer

__all__ = ["LocalExchange", "ExchangeRequest"]

_INTERVALS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
              "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
              "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
              "3d": 259_200_000, "1w": 604_800_000}
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_SIGNED = {"/api/v3/order", "/api/v3/openOrders", "/api/v3/account", "/api/v3/myTrades"}
_SIGNATURE = re.compile(r"(?:^|&)signature=([^&]*)")
_EIGHT = Decimal("0.00000001")


def _fmt(x: Decimal | float) -> str:
    """Binance's decimal strings: eight places."""
    return f"{Decimal(str(x)).quantize(_EIGHT, rounding=ROUND_DOWN):f}"


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class ExchangeRequest:
    """A request as it arrived: monotonic time, method, path, parameters (query and
    form body merged) and headers."""

    t: float
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Fault:
    method: str | None
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    process: bool = True


@dataclass
class _Market:
    symbol: str
    base: str
    quote: str
    step: Decimal
    tick: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal

    def info(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "status": "TRADING", "baseAsset": self.base,
            "baseAssetPrecision": 8, "quoteAsset": self.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
            "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _fmt(self.tick),
                 "maxPrice": "1000000.00000000", "tickSize": _fmt(self.tick)},
                {"filterType": "LOT_SIZE", "minQty": _fmt(self.min_qty),
                 "maxQty": _fmt(self.max_qty), "stepSize": _fmt(self.step)},
                {"filterType": "NOTIONAL", "minNotional": _fmt(self.min_notional),
                 "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5}],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER",
                                                "EXPIRE_BOTH"]}


@dataclass
class _Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    qty: Decimal
    time_ms: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_ms: int = 0
    locked: Decimal = Decimal(0)        # quote (buy) or base (sell) held for the rest
    fills: list[dict[str, Any]] = field(default_factory=list)

    def info(self, full: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_id, "price": "0.00000000",
            "origQty": _fmt(self.qty), "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote), "status": self.status,
            "timeInForce": "GTC", "type": "MARKET", "side": self.side}
        if full:
            d.update({"transactTime": self.update_ms, "workingTime": self.time_ms,
                      "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE",
                      "fills": [{k: f[k] for k in ("price", "qty", "commission",
                                                   "commissionAsset", "tradeId")}
                                for f in self.fills]})
        else:
            d.update({"stopPrice": "0.00000000", "icebergQty": "0.00000000",
                      "time": self.time_ms, "updateTime": self.update_ms or self.time_ms,
                      "isWorking": True, "workingTime": self.time_ms,
                      "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE"})
        return d


class _Handler(QuietHandler):
    server: QuietServer

    def _handle(self) -> None:
        ex: LocalExchange = self.server.exchange  # type: ignore[attr-defined]
        length = self.body_length(ex.max_body)
        if length is None:
            headers: dict[str, str] = {}
            status, payload, delay = 413, {"code": -1000, "msg": (
                f"Request body over LocalExchange's limit of {ex.max_body} bytes.")}, 0.0
        else:
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            status, payload, headers, delay = ex._dispatch(self.command, self.path, body,
                                                           dict(self.headers))
        if delay and ex._stopping.wait(delay):
            return
        if isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        elif isinstance(payload, str):
            data, ctype = payload.encode(), "application/json;charset=UTF-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json;charset=UTF-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:   # the client gave up (a timeout): nothing to answer
            pass

    do_GET = do_POST = do_DELETE = do_PUT = _handle


def _dec(value: Any, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                    f"legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
                        ) from None
    if not d.is_finite():
        raise _ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return d


class LocalExchange(LocalHTTPServer):
    """A Binance-spot-shaped exchange on 127.0.0.1; ``with LocalExchange(...) as ex:``
    (or :meth:`start`), ``ex.url`` is its base URL, ``ex.api_key``/``ex.secret`` the
    credentials it accepts.

    Parameters
    ----------
    balances
        Free balances by asset (default ``{"USDT": 10_000.0}``).
    markets
        Symbols to list: names like ``"BTCUSDT"`` (the quote is read off a known suffix)
        with default filters, or ``{symbol: {"base":, "quote":, "step":, "tick":,
        "min_qty":, "max_qty":, "min_notional":}}``. Default ``BTCUSDT`` and ``ETHUSDT``.
    fee_rate
        Commission as a fraction of the traded value.
    commission
        ``"quote"``: charged in the quote asset; ``"received"``: in the asset an order
        receives (a buy pays in the base asset, as Binance does without BNB fee payment).
    partial_fill
        None: market orders fill at once. A fraction in (0, 1): that much of the
        quantity (rounded down to the step) fills at once, the rest on :meth:`fill_open`.
    recv_window
        Check signed requests' ``timestamp`` against the server's clock.
    max_body
        Larger request bodies are refused (413) unread.
    """

    server_class = QuietServer
    handler_class = _Handler
    owner_attr = "exchange"
    thread_name = "local-exchange"

    def __init__(self, balances: dict[str, float] | None = None, *,
                 markets: Any = ("BTCUSDT", "ETHUSDT"), fee_rate: float = 0.001,
                 commission: str = "quote",
                 partial_fill: float | None = None, api_key: str = "local-api-key-7f3a9c1e",
                 secret: str = "local-secret-4b8d2e6f0a", recv_window: bool = True,
                 max_body: int = 65_536, host: str = "127.0.0.1", port: int = 0):
        if partial_fill is not None and not 0 < partial_fill < 1:
            raise ValueError(f"LocalExchange: partial_fill must be in (0, 1), got "
                             f"{partial_fill!r}")
        if commission not in ("quote", "received"):
            raise ValueError(f"LocalExchange: commission must be 'quote' or 'received', got "
                             f"{commission!r}")
        self.commission = commission
        if not 0 <= fee_rate < 1:
            raise ValueError(f"LocalExchange: fee_rate must be in [0, 1), got {fee_rate!r}")
        self.api_key, self.secret = api_key, secret
        self.fee_rate = Decimal(str(fee_rate))
        self.partial_fill = None if partial_fill is None else Decimal(str(partial_fill))
        self.check_recv_window = recv_window
        self.max_body = int(max_body)
        #: milliseconds the server's clock runs ahead of this machine's (clock-skew tests)
        self.time_offset_ms = 0
        self._init_server(host, port)
        self._lock = threading.RLock()
        self._markets: dict[str, _Market] = {}
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        self._orders: dict[int, _Order] = {}
        self._by_client: dict[tuple[str, str], int] = {}
        self._next_id = 1
        self._next_trade = 1
        self._prices: dict[str, Decimal] = {}
        self._bars: dict[str, dict[str, np.ndarray]] = {}
        self._bar_interval: dict[str, str] = {}
        self._clock: int | None = None
        self._faults: dict[str, deque[_Fault]] = {}
        self._received: list[ExchangeRequest] = []
        for asset, amount in (balances if balances is not None else {"USDT": 10_000.0}).items():
            self.set_balance(asset, amount)
        items = markets.items() if isinstance(markets, dict) else ((m, {}) for m in markets)
        for symbol, spec in items:
            self.add_market(symbol, **spec)

    # ------------------------------------------------------------------ life
    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"LocalExchange({where}, markets={sorted(self._markets)})"

    # ------------------------------------------------------------------ set-up
    def add_market(self, symbol: str, *, base: str | None = None, quote: str | None = None,
                   step: str = "0.00001", tick: str = "0.01", min_qty: str | None = None,
                   max_qty: str = "9000", min_notional: str = "5") -> None:
        """List ``symbol`` (``"BTCUSDT"``) with its LOT_SIZE, PRICE_FILTER and NOTIONAL."""
        if quote is None:
            quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)),
                         None)
            if quote is None:
                raise ValueError(f"LocalExchange.add_market: cannot tell the quote asset of "
                                 f"{symbol!r}; pass quote=")
        base = symbol[:-len(quote)] if base is None else base
        with self._lock:
            self._markets[symbol] = _Market(symbol, base, quote, Decimal(step), Decimal(tick),
                                            Decimal(min_qty or step), Decimal(max_qty),
                                            Decimal(min_notional))

    def delist(self, symbol: str) -> None:
        """Stop listing ``symbol``: its orders get -1121 "Invalid symbol." from now on."""
        with self._lock:
            self._markets.pop(symbol, None)

    def set_balance(self, asset: str, free: float) -> None:
        with self._lock:
            self._free[asset] = Decimal(str(free))
            self._locked.setdefault(asset, Decimal(0))

    def balance(self, asset: str) -> tuple[float, float]:
        """(free, locked) of ``asset``."""
        with self._lock:
            return (float(self._free.get(asset, 0)), float(self._locked.get(asset, 0)))

    def set_price(self, symbol: str, price: float | None) -> None:
        """Market orders of ``symbol`` fill at ``price`` from now on (over loaded bars);
        None: at the loaded bars' closes again."""
        with self._lock:
            if price is None:
                self._prices.pop(symbol, None)
            else:
                self._prices[symbol] = Decimal(str(price))

    def load_bars(self, bars: pd.DataFrame, interval: str = "1m") -> None:
        """Serve long-form ``bars`` (timestamp = open time) on ``/api/v3/klines`` for
        ``interval``; their closes price market orders once :meth:`advance` reached them."""
        if interval not in _INTERVALS:
            raise ValueError(f"LocalExchange.load_bars: interval must be one of "
                             f"{list(_INTERVALS)}, got {interval!r}")
        with self._lock:
            for symbol, g in bars.groupby("symbol", sort=True, observed=True):
                g = g.sort_values("timestamp")
                ts = pd.DatetimeIndex(pd.to_datetime(g["timestamp"], utc=True))
                self._bars[str(symbol)] = {
                    "t": (ts.as_unit("ns").asi8 // 1_000_000).astype(np.int64),
                    **{c: g[c].to_numpy(float) for c in ("open", "high", "low", "close",
                                                         "volume")}}
                self._bar_interval[str(symbol)] = interval

    def advance(self, to: Any) -> None:
        """Set the market clock to ``to`` (a time; naive is UTC): klines serve the bars
        closed by then and market orders fill at the latest such close."""
        t = pd.Timestamp(to)
        t = t.tz_localize("UTC") if t.tzinfo is None else t
        with self._lock:
            self._clock = int(t.value // 1_000_000)

    def clock(self) -> pd.Timestamp:
        """The market clock (:meth:`advance`; the wall clock until it is set)."""
        return pd.Timestamp(self._now_ms(), unit="ms", tz="UTC")

    def _server_ms(self) -> int:
        return int(time.time() * 1000) + self.time_offset_ms

    def _now_ms(self) -> int:
        return self._clock if self._clock is not None else int(time.time() * 1000)

    def price(self, symbol: str) -> float | None:
        """The price a market order of ``symbol`` fills at now, or None."""
        p = self._price(symbol)
        return None if p is None else float(p)

    def _price(self, symbol: str) -> Decimal | None:
        with self._lock:
            if symbol in self._prices:
                return self._prices[symbol]
            b = self._bars.get(symbol)
            if b is None:
                return None
            width = _INTERVALS[self._bar_interval[symbol]]
            k = int(np.searchsorted(b["t"] + width, self._now_ms(), side="right")) - 1
            return None if k < 0 else Decimal(repr(float(b["close"][k])))

    # ------------------------------------------------------------------ faults
    def fail_next(self, path: str, status: int, body: Any = None, *,
                  headers: dict[str, str] | None = None, times: int = 1,
                  method: str | None = None) -> None:
        """Answer the next ``times`` requests to ``path`` (``"/api/v3/order"``; of
        ``method`` only, when given) with ``status`` and ``body`` (a dict/list as JSON, a
        str sent as a JSON content type even when it is none, bytes as they are) without
        acting on them. ``body`` defaults to Binance's error for the status."""
        if body is None:
            body = ({"code": -1003, "msg": "Too many requests; current limit of IP is 6000 "
                     "requests per minute. Please use WebSocket Streams for live updates to "
                     "avoid polling the API."} if status in (418, 429) else
                    {"code": -1001, "msg": "Internal error; unable to process your request. "
                     "Please try again."} if status >= 500 else {})
        self._script(path, [_Fault(method, status, body, dict(headers or {}))] * times)

    def delay_next(self, path: str, seconds: float, *, times: int = 1,
                   method: str | None = None, process: bool = True) -> None:
        """Answer the next ``times`` requests to ``path`` ``seconds`` late. With
        ``process`` (default) the request is acted on first, as an exchange that took an
        order but whose answer was lost; otherwise it is not acted on and the answer is
        Binance's 504 ``-1007`` ("Send status unknown; execution status unknown.")."""
        self._script(path, [_Fault(method, delay=seconds, process=process)] * times)

    def clear_faults(self) -> None:
        """Drop every scripted fault not yet used."""
        with self._lock:
            self._faults.clear()

    def _script(self, path: str, faults: list[_Fault]) -> None:
        with self._lock:
            self._faults.setdefault(path, deque()).extend(faults)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            q = self._faults.get(path)
            if not q:
                return None
            for i, f in enumerate(q):
                if f.method is None or f.method.upper() == method:
                    del q[i]
                    return f
            return None

    # ------------------------------------------------------------------ inspection
    def requests(self, path: str | None = None, method: str | None = None
                 ) -> list[ExchangeRequest]:
        """Requests received so far (to ``path``, with ``method``)."""
        with self._lock:
            return [r for r in self._received if (path is None or r.path == path)
                    and (method is None or r.method == method.upper())]

    def orders(self) -> list[dict[str, Any]]:
        """Every order the exchange holds, as ``GET /api/v3/order`` shows it."""
        with self._lock:
            return [o.info() for o in self._orders.values()]

    def fill_open(self, client_order_id: str | None = None) -> int:
        """Fill the rest of the open orders (or of one) at the current price; returns how
        many were filled."""
        n = 0
        with self._lock:
            for o in list(self._orders.values()):
                if o.status in ("NEW", "PARTIALLY_FILLED") and (
                        client_order_id is None or o.client_id == client_order_id):
                    m = self._markets[o.symbol]
                    price = self._price(o.symbol)
                    if price is None:
                        continue
                    self._release(o, m)
                    self._fill(o, m, o.qty - o.executed, price)
                    n += 1
        return n

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, method: str, raw_path: str, body: str, headers: dict[str, str]
                  ) -> tuple[int, Any, dict[str, str], float]:
        parts = urlsplit(raw_path)
        path, query = parts.path, parts.query
        params = dict(parse_qsl(query, keep_blank_values=True))
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if body and "json" not in ctype:
            params.update(parse_qsl(body, keep_blank_values=True))
        with self._lock:
            self._received.append(ExchangeRequest(time.monotonic(), method, path, params,
                                                  headers))
        fault = self._take_fault(method, path)
        if fault is not None and fault.status:
            return fault.status, fault.body, fault.headers, fault.delay
        delay = fault.delay if fault is not None else 0.0
        if fault is not None and not fault.process:
            return 504, {"code": -1007, "msg": "Timeout waiting for response from backend "
                         "server. Send status unknown; execution status unknown."}, {}, delay
        try:
            if path in _SIGNED:
                self._authenticate(query, body, headers, params)
            return 200, self._route(method, path, params), {}, delay
        except _ApiError as e:
            return e.status, {"code": e.code, "msg": e.msg}, {}, delay

    def _authenticate(self, query: str, body: str, headers: dict[str, str],
                      params: dict[str, str]) -> None:
        key = next((v for k, v in headers.items() if k.lower() == "x-mbx-apikey"), None)
        if key is None:
            raise _ApiError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        m = _SIGNATURE.search(total)
        if m is None:
            raise _ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was "
                                        "empty/null, or malformed.")
        payload = total[:m.start()] + total[m.end():]
        want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, m.group(1).lower()):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise _ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was "
                                        "empty/null, or malformed.")
        if self.check_recv_window:
            ts = int(_dec(params["timestamp"], "timestamp"))
            window = int(_dec(params.get("recvWindow", "5000"), "recvWindow"))
            now = self._server_ms()
            if ts > now + 1000 or now - ts > window:
                raise _ApiError(400, -1021, "Timestamp for this request is outside of the "
                                            "recvWindow.")

    def _route(self, method: str, path: str, p: dict[str, str]) -> Any:
        if method == "GET" and path == "/api/v3/ping":
            return {}
        if method == "GET" and path == "/api/v3/time":
            return {"serverTime": self._server_ms()}
        if method == "GET" and path == "/api/v3/exchangeInfo":
            return self._exchange_info()
        if method == "GET" and path == "/api/v3/klines":
            return self._klines(p)
        if method == "GET" and path == "/api/v3/ticker/price":
            return self._ticker(p)
        with self._lock:
            if path == "/api/v3/order":
                if method == "POST":
                    return self._new_order(p)
                if method == "GET":
                    return self._find(p).info()
                if method == "DELETE":
                    return self._cancel(p)
            if method == "GET" and path == "/api/v3/openOrders":
                sym = self._market(p["symbol"]).symbol if "symbol" in p else None
                return [o.info() for o in self._orders.values()
                        if o.status in ("NEW", "PARTIALLY_FILLED")
                        and (sym is None or o.symbol == sym)]
            if method == "GET" and path == "/api/v3/account":
                return self._account(p)
            if method == "GET" and path == "/api/v3/myTrades":
                return self._my_trades(p)
        raise _ApiError(404, -1000, f"{method} {path}: no such endpoint on LocalExchange")

    # ------------------------------------------------------------------ endpoints
    def _market(self, symbol: str | None) -> _Market:
        m = self._markets.get(symbol or "")
        if m is None:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return m

    def _exchange_info(self) -> dict[str, Any]:
        with self._lock:
            symbols = [m.info() for m in self._markets.values()]
        return {"timezone": "UTC", "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                     "intervalNum": 1, "limit": 6000},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": 100},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE",
                     "intervalNum": 5, "limit": 61000}],
                "exchangeFilters": [], "symbols": symbols}

    def _klines(self, p: dict[str, str]) -> list[list[Any]]:
        with self._lock:
            m = self._market(p.get("symbol"))
            interval = p.get("interval", "")
            if interval not in _INTERVALS:
                raise _ApiError(400, -1120, "Invalid interval.")
            b = self._bars.get(m.symbol)
            if b is None:
                return []
            if interval != self._bar_interval[m.symbol]:
                raise _ApiError(400, -1120, f"Invalid interval: LocalExchange holds "
                                            f"{self._bar_interval[m.symbol]} bars of "
                                            f"{m.symbol}.")
            width = _INTERVALS[interval]
            limit = min(1000, max(1, int(_dec(p.get("limit", 500), "limit"))))
            t = b["t"]
            ok = t + width <= self._now_ms()
            if "startTime" in p:
                ok &= t >= int(_dec(p["startTime"], "startTime"))
            if "endTime" in p:
                ok &= t <= int(_dec(p["endTime"], "endTime"))
            idx = np.flatnonzero(ok)
            idx = idx[:limit] if "startTime" in p else idx[-limit:]
            return [[int(t[i]), _fmt(b["open"][i]), _fmt(b["high"][i]), _fmt(b["low"][i]),
                     _fmt(b["close"][i]), _fmt(b["volume"][i]), int(t[i] + width - 1),
                     _fmt(b["close"][i] * b["volume"][i]), 1, "0.00000000", "0.00000000", "0"]
                    for i in idx]

    def _ticker(self, p: dict[str, str]) -> Any:
        with self._lock:
            if "symbol" in p:
                m = self._market(p["symbol"])
                price = self._price(m.symbol)
                if price is None:
                    raise _ApiError(400, -1121, "Invalid symbol.")
                return {"symbol": m.symbol, "price": _fmt(price)}
            if "symbols" in p:
                try:
                    names = json.loads(p["symbols"])
                except ValueError:
                    raise _ApiError(400, -1100, "Illegal characters found in parameter "
                                                "'symbols'.") from None
                syms = [self._market(s).symbol for s in names]
            else:
                syms = list(self._markets)
            return [{"symbol": s, "price": _fmt(pr)} for s in syms
                    if (pr := self._price(s)) is not None]

    def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        m = self._market(p.get("symbol"))
        side = p.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1102, "Mandatory parameter 'side' was not sent, was "
                                        "empty/null, or malformed.")
        if p.get("type", "").upper() != "MARKET":
            raise _ApiError(400, -1116, "Invalid orderType.")
        cid = p.get("newClientOrderId") or f"local-{self._next_id}"
        if not re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", cid):
            raise _ApiError(400, -1100, "Illegal characters found in parameter "
                                        "'newClientOrderId'; legal range is "
                                        "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        prev = self._by_client.get((m.symbol, cid))
        if prev is not None and self._orders[prev].status in ("NEW", "PARTIALLY_FILLED"):
            raise _ApiError(400, -2010, "Duplicate order sent.")
        if "quantity" not in p:
            raise _ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent, was "
                                        "empty/null, or malformed.")
        qty = _dec(p["quantity"], "quantity")
        if qty < m.min_qty or qty > m.max_qty or (qty - m.min_qty) % m.step != 0:
            raise _ApiError(400, -1013, "Filter failure: LOT_SIZE")
        price = self._price(m.symbol)
        if price is None:
            raise _ApiError(400, -2010, "Market is closed.")
        if qty * price < m.min_notional:
            raise _ApiError(400, -1013, "Filter failure: NOTIONAL")
        need = qty * price * (1 + self.fee_rate) if side == "BUY" else qty
        asset = m.quote if side == "BUY" else m.base
        if self._free.get(asset, Decimal(0)) < need:
            raise _ApiError(400, -2010, "Account has insufficient balance for requested "
                                        "action.")
        now = int(time.time() * 1000)
        o = _Order(self._next_id, cid, m.symbol, side, qty, now, update_ms=now)
        self._next_id += 1
        self._orders[o.order_id] = o
        self._by_client[(m.symbol, cid)] = o.order_id
        first = qty if self.partial_fill is None else \
            (qty * self.partial_fill / m.step).to_integral_value(ROUND_DOWN) * m.step
        if first > 0:
            self._fill(o, m, first, price)
        if o.status != "FILLED":   # hold what the rest needs
            o.locked = (qty - o.executed) * price * (1 + self.fee_rate) if side == "BUY" \
                else qty - o.executed
            self._free[asset] -= o.locked
            self._locked[asset] = self._locked.get(asset, Decimal(0)) + o.locked
        return o.info(full=True)

    def _release(self, o: _Order, m: _Market) -> None:
        asset = m.quote if o.side == "BUY" else m.base
        self._free[asset] += o.locked
        self._locked[asset] -= o.locked
        o.locked = Decimal(0)

    def _fill(self, o: _Order, m: _Market, qty: Decimal, price: Decimal) -> None:
        value = qty * price
        fee = (value * self.fee_rate).quantize(_EIGHT)
        fee_asset = m.quote
        zero = Decimal(0)
        if o.side == "BUY" and self.commission == "received":   # paid in the base bought
            fee, fee_asset = (qty * self.fee_rate).quantize(_EIGHT), m.base
            self._free[m.quote] = self._free.get(m.quote, zero) - value
            self._free[m.base] = self._free.get(m.base, zero) + qty - fee
        elif o.side == "BUY":
            self._free[m.quote] = self._free.get(m.quote, zero) - value - fee
            self._free[m.base] = self._free.get(m.base, zero) + qty
        else:
            self._free[m.base] = self._free.get(m.base, zero) - qty
            self._free[m.quote] = self._free.get(m.quote, zero) + value - fee
        self._locked.setdefault(m.base, zero)
        self._locked.setdefault(m.quote, zero)
        o.executed += qty
        o.quote += value
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        o.update_ms = int(time.time() * 1000)
        o.fills.append({"price": _fmt(price), "qty": _fmt(qty), "commission": _fmt(fee),
                        "commissionAsset": fee_asset, "tradeId": self._next_trade,
                        "time": o.update_ms})
        self._next_trade += 1

    def _find(self, p: dict[str, str]) -> _Order:
        m = self._market(p.get("symbol"))
        if "orderId" in p:
            o = self._orders.get(int(_dec(p["orderId"], "orderId")))
        elif "origClientOrderId" in p:
            oid = self._by_client.get((m.symbol, p["origClientOrderId"]))
            o = None if oid is None else self._orders[oid]
        else:
            raise _ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                        "but both were empty/null!")
        if o is None or o.symbol != m.symbol:
            raise _ApiError(400, -2013, "Order does not exist.")
        return o

    def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        try:
            o = self._find(p)
        except _ApiError as e:
            if e.code == -2013:
                raise _ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if o.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _ApiError(400, -2011, "Unknown order sent.")
        self._release(o, self._markets[o.symbol])
        o.status = "CANCELED"
        o.update_ms = int(time.time() * 1000)
        d = o.info()
        d["origClientOrderId"] = o.client_id
        d["transactTime"] = o.update_ms
        return d

    def _account(self, p: dict[str, str]) -> dict[str, Any]:
        omit = p.get("omitZeroBalances", "false").lower() == "true"
        assets = sorted(set(self._free) | set(self._locked))
        zero = Decimal(0)
        balances = [{"asset": a, "free": _fmt(self._free.get(a, zero)),
                     "locked": _fmt(self._locked.get(a, zero))} for a in assets
                    if not omit or self._free.get(a, zero) or self._locked.get(a, zero)]
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": _fmt(self.fee_rate), "taker": _fmt(self.fee_rate),
                                    "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": int(time.time() * 1000), "accountType": "SPOT",
                "balances": balances, "permissions": ["SPOT"], "uid": 354937868}

    def _my_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(p.get("symbol"))
        oid = int(_dec(p["orderId"], "orderId")) if "orderId" in p else None
        out = []
        for o in self._orders.values():
            if o.symbol != m.symbol or (oid is not None and o.order_id != oid):
                continue
            for f in o.fills:
                out.append({"symbol": o.symbol, "id": f["tradeId"], "orderId": o.order_id,
                            "orderListId": -1, "price": f["price"], "qty": f["qty"],
                            "quoteQty": _fmt(Decimal(f["price"]) * Decimal(f["qty"])),
                            "commission": f["commission"],
                            "commissionAsset": f["commissionAsset"], "time": f["time"],
                            "isBuyer": o.side == "BUY", "isMaker": False,
                            "isBestMatch": True})
        out.sort(key=lambda d: d["id"])
        limit = min(1000, int(_dec(p.get("limit", 500), "limit")))
        return out[:limit]
