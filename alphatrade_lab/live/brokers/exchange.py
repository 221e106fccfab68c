"""A crypto exchange's spot account through ccxt: Binance spot, testnet by default.

:class:`CCXTBroker` drives ccxt's synchronous ``binance`` client behind the
:class:`~alphatrade_lab.live.brokers.base.Broker` interface, and serves bars as a
:class:`~alphatrade_lab.live.brokers.base.BarSource`.

* **Testnet by default.** ccxt's sandbox mode (Binance's spot testnet) unless
  ``sandbox=False`` is passed; ``urls=`` points the client somewhere else (the tests'
  :class:`~alphatrade_lab.testing.LocalExchange`).
* **Keys** come from ``api_key``/``secret`` or the environment (``CCXT_API_KEY`` and
  ``CCXT_SECRET``, else ``BINANCE_API_KEY`` and ``BINANCE_SECRET``). They are registered
  with :mod:`alphatrade_lab.redact`; the repr, error messages and log lines (ours and
  ccxt's own request log, which would print the ``X-MBX-APIKEY`` header) never show them.
* **Only what is needed.** ``load_markets`` asks for the spot ``exchangeInfo`` alone: no
  currencies (a private wallet endpoint), no margin pairs, no futures or options markets.
* **Idempotent submit.** The engine's client order id goes out as ``newClientOrderId``.
  Binance refuses a reused id only while its order is open, so by default the adapter
  first looks the id up (``GET /api/v3/order?origClientOrderId=``) and returns the order it
  finds instead of sending it again. After a timeout, a connection error, a 5xx or a
  malformed answer it looks the id up again, and sends again only once the exchange said
  it has no such order: while it cannot tell, nothing is resent and the end is
  :class:`~alphatrade_lab.errors.BrokerUnavailable` saying the order may have gone
  through. "Duplicate order sent." returns the existing order.
* **Failures.** 429/418: wait what ``Retry-After`` asks (else the backoff), then retry;
  timeouts, connection errors, 5xx: exponential backoff, then ``BrokerUnavailable``; a
  clock out of ``recvWindow`` (-1021): re-sync with the server's time once and retry.
  Refusals raise :class:`~alphatrade_lab.errors.OrderRejected` with a ``reason``:
  ``insufficient_buying_power`` (buy) / ``insufficient_qty`` (sell), ``unknown_symbol``,
  ``invalid_qty`` (under the market's minimum quantity or notional, off its step),
  ``short_not_allowed`` (a spot account holds no shorts: ``OPEN_SHORT``/``TO_SHORT`` are
  refused before sending), ``rejected``. Wrong keys and malformed answers raise
  :class:`~alphatrade_lab.errors.BrokerError` naming the endpoint.
* **Symbols**: ``"BTCUSDT"`` (Binance's id) or ``"BTC/USDT"`` (ccxt's); orders, positions
  and bars carry the name the caller used (else Binance's id). Binance looks orders up
  per symbol: a client order id this broker has not seen is searched among the open
  orders, then in the markets of ``symbols=`` (a restarted engine's submit needs neither:
  its request names the symbol).
* **Quantities** are cut down to the market's step (``amount_to_precision`` truncates).
* **Fees** (``Order.fees``) are in the market's quote currency: commissions charged in it
  as they are, in the base asset converted at the order's average price; a commission in
  any other asset (BNB) is not converted and not counted: it is kept in
  ``order.extra["other_fees"]`` and logged. An order looked up (which Binance returns
  without its fills) gets its commissions from its trades (``GET /api/v3/myTrades``).
* **Spot positions**: every non-quote asset with a balance whose ``ASSET/QUOTE`` market
  exists is a long position valued at that market's last price; the account's cash is
  the quote currency's total (``buying_power`` its free part), its equity cash plus
  positions.

>>> from alphatrade_lab.testing import LocalExchange
>>> from alphatrade_lab.live.orders import Intent, OrderRequest
>>> import pandas as pd
>>> with LocalExchange({"USDT": 10_000.0}) as ex:
...     ex.set_price("BTCUSDT", 50_000.0)
...     broker = CCXTBroker(api_key=ex.api_key, secret=ex.secret, urls=ex.url)
...     t = pd.Timestamp("2024-01-02", tz="UTC")
...     o = broker.submit(OrderRequest("atl-demo-1", "BTCUSDT", Intent.OPEN_LONG, 0.1, t,
...                                    50_000.0))
...     o.status.value, o.filled_qty, o.filled_avg_price, round(o.fees, 6)
('filled', 0.1, 50000.0, 5.0)
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

try:  # the 'live' extra: the module imports without it, the broker needs it
    import ccxt  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised by test_library_imports_without_the_extras
    ccxt = None
import pandas as pd

from alphatrade_lab.data.schema import validate
from alphatrade_lab.errors import BrokerError, BrokerUnavailable, DataError, OrderRejected
from alphatrade_lab.live.orders import (
    Account,
    Intent,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
)
from alphatrade_lab.redact import REDACTED, redact, redact_truncate, register_secret

__all__ = ["KEY_ENV", "SECRET_ENV", "CCXTBroker"]

KEY_ENV = ("CCXT_API_KEY", "BINANCE_API_KEY")
SECRET_ENV = ("CCXT_SECRET", "BINANCE_SECRET")

_LOG = logging.getLogger("alphatrade_lab.live.ccxt")
_WIRE = logging.getLogger("alphatrade_lab.live.ccxt.http")   # ccxt's own request log
_EXCHANGES = ("binance",)
_STATUS = {"NEW": OrderStatus.NEW, "PENDING_NEW": OrderStatus.NEW,
           "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED, "FILLED": OrderStatus.FILLED,
           "CANCELED": OrderStatus.CANCELED, "PENDING_CANCEL": OrderStatus.NEW,
           "EXPIRED": OrderStatus.CANCELED, "EXPIRED_IN_MATCH": OrderStatus.CANCELED,
           "REJECTED": OrderStatus.REJECTED}
_CCXT_STATUS = {"open": OrderStatus.NEW, "closed": OrderStatus.FILLED,
                "canceled": OrderStatus.CANCELED, "expired": OrderStatus.CANCELED,
                "rejected": OrderStatus.REJECTED}
_T = TypeVar("_T")


class _RedactFilter(logging.Filter):
    """Log records without credentials (ccxt logs request headers at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


_WIRE.addFilter(_RedactFilter())


class _Malformed(Exception):
    pass


class _Unknown(Exception):
    """A submit whose fate is unknown (its lookup failed): not sent again this attempt."""


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a 429/418 answer asks to wait (``Retry-After``: seconds or an HTTP date)."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        s = float(value)
        return max(0.0, s) if math.isfinite(s) else None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return None if when is None else max(0.0, when.timestamp() - time.time())


_UNITS = {"min": "m", "t": "m", "minute": "m", "hour": "h", "h": "h", "day": "d", "d": "d",
          "week": "w", "w": "w", "month": "M", "mo": "M", "s": "s", "sec": "s"}


def _timeframe(tf: Any) -> Any:
    """ccxt's timeframe ("1m") of an Alpaca- or pandas-style one ("1Min", "15min", "1Hour",
    "1D"); anything else as it is.

    >>> [_timeframe(t) for t in ("1m", "1Min", "15min", "1Hour", "4h", "1D", "1Week")]
    ['1m', '1m', '15m', '1h', '4h', '1d', '1w']
    """
    if not isinstance(tf, str):
        return tf
    m = re.fullmatch(r"(\d+)([A-Za-z]+)", tf)
    if m is None or m.group(2) in ("m", "h", "d", "w", "M", "s", "y"):
        return tf
    unit = _UNITS.get(m.group(2).lower())
    return f"{int(m.group(1))}{unit}" if unit else tf


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n, "").strip()), None)


def _ms(t: Any, name: str) -> int:
    try:
        ts = pd.Timestamp(t)
    except (TypeError, ValueError):
        raise ValueError(f"CCXTBroker.fetch_bars: {name} is not a time: {t!r}") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


class CCXTBroker:
    """Binance spot (testnet by default) through ccxt, behind the :class:`Broker`
    interface.

    Parameters
    ----------
    exchange
        The ccxt exchange id; ``"binance"`` (spot) is the one wired up.
    api_key, secret
        Default: ``CCXT_API_KEY``/``CCXT_SECRET``, else ``BINANCE_API_KEY``/``BINANCE_SECRET``.
    sandbox
        Binance's spot testnet (default); ``False`` trades real money.
    quote
        The account's currency: cash, positions' valuation and fees are in it.
    urls
        A base URL (``"http://127.0.0.1:8000"``: its ``/api/v3`` serves the public and
        private endpoints) or a mapping of ccxt's API names to URLs, replacing the
        exchange's.
    symbols
        Symbols searched for a client order id whose symbol this broker has not seen
        (after a restart; Binance looks orders up per symbol). Open orders are searched
        in any case.
    timeout
        Seconds per request.
    max_retries, backoff, max_backoff, max_wait
        Retries after the first attempt on timeouts, connection errors, 5xx and 429; the
        k-th waits ``backoff * 2**(k-1)`` seconds (at most ``max_backoff``, with jitter)
        or what ``Retry-After`` asks, unless that is more than ``max_wait``.
    lookup_before_submit
        Look a client order id up before sending it the first time (see the module
        docstring); one more request per order.
    rate_limit
        ccxt's own request throttle (Binance's weights).
    """

    def __init__(self, exchange: str = "binance", *, api_key: str | None = None,
                 secret: str | None = None, sandbox: bool = True, quote: str = "USDT",
                 urls: str | Mapping[str, str] | None = None,
                 symbols: Iterable[str] = (), timeout: float = 10.0, max_retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0, max_wait: float = 60.0,
                 lookup_before_submit: bool = True, rate_limit: bool = True):
        if ccxt is None:
            raise ImportError("CCXTBroker needs ccxt: pip install 'alphatrade-lab[live]'")
        if exchange not in _EXCHANGES:
            raise ValueError(f"CCXTBroker: exchange must be one of {_EXCHANGES} (spot), got "
                             f"{exchange!r}")
        api_key = _env(KEY_ENV) if api_key is None else api_key
        secret = _env(SECRET_ENV) if secret is None else secret
        missing = [" or ".join(names) for names, v in ((KEY_ENV, api_key), (SECRET_ENV, secret))
                   if not (isinstance(v, str) and v.strip())]
        if missing:
            raise BrokerError(f"CCXTBroker({exchange}): no API key: set {' and '.join(missing)} "
                              "in the environment or pass api_key= and secret=")
        assert isinstance(api_key, str) and isinstance(secret, str)
        register_secret(api_key, secret)
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"CCXTBroker: timeout must be > 0 seconds, got {timeout!r}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ValueError(f"CCXTBroker: max_retries must be an int >= 0, got "
                             f"{max_retries!r}")
        for label, v in (("backoff", backoff), ("max_backoff", max_backoff),
                         ("max_wait", max_wait)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"CCXTBroker: {label} must be a number >= 0, got {v!r}")
        if not (isinstance(quote, str) and quote.isalnum()):
            raise ValueError(f"CCXTBroker: quote must be an asset code like 'USDT', got "
                             f"{quote!r}")
        self.name = f"ccxt:{exchange}"
        self.exchange_id, self.sandbox, self.quote = exchange, bool(sandbox), quote.upper()
        self.timeout, self.max_retries = float(timeout), max_retries
        self.backoff, self.max_backoff, self.max_wait = backoff, max_backoff, max_wait
        self.lookup_before_submit = lookup_before_submit
        ex = getattr(ccxt, exchange)({"apiKey": api_key, "secret": secret,
                                      "timeout": max(1, int(round(self.timeout * 1000))),
                                      "enableRateLimit": bool(rate_limit)})
        ex.logger = _WIRE
        ex.set_sandbox_mode(self.sandbox)
        if urls is not None:
            ex.urls["api"] = self._urls(urls)
        ex.options["defaultType"] = "spot"
        ex.options["fetchCurrencies"] = False
        ex.options["fetchMarkets"] = {"types": ["spot"]}
        ex.options["fetchMargins"] = False
        ex.options["fetchOpenOrders"] = {"warnWithoutSymbol": False}
        ex.options["adjustForTimeDifference"] = False
        self._ex = ex
        self._where = "testnet" if self.sandbox else "live"
        if urls is not None:
            self._where = "custom URL"
        self._markets_loaded = False
        self._alias: dict[str, str] = {}           # ccxt symbol -> the engine's symbol
        self._symbol_of: dict[str, str] = {}       # client order id -> ccxt symbol
        self._search = list(symbols)
        self._fees: dict[tuple[str, float], tuple[float, dict[str, float]]] = {}

    @staticmethod
    def _urls(urls: str | Mapping[str, str]) -> dict[str, str]:
        if isinstance(urls, str):
            base = urls.rstrip("/")
            if not base.startswith(("http://", "https://")):
                raise ValueError(f"CCXTBroker: urls must be an http(s) URL, got {urls!r}")
            return {"public": base + "/api/v3", "private": base + "/api/v3",
                    "v1": base + "/api/v1"}
        if not (isinstance(urls, Mapping) and all(isinstance(v, str) for v in urls.values())):
            raise ValueError("CCXTBroker: urls must be a base URL or a mapping of ccxt API "
                             "names to URLs")
        return dict(urls)

    def __repr__(self) -> str:
        return (f"CCXTBroker(exchange={self.exchange_id!r}, sandbox={self.sandbox}, "
                f"quote={self.quote!r}, api_key='{REDACTED}')")

    def close(self) -> None:
        """Close the HTTP connections."""
        session = getattr(self._ex, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> CCXTBroker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _scrub(self, text: Any, limit: int = 300) -> str:
        return redact_truncate(str(text), limit)

    def _fail(self, endpoint: str, what: str) -> NoReturn:
        raise BrokerError(f"{self.name} ({self._where}) {endpoint}: {self._scrub(what)}")

    def _delay(self, retry: int) -> float:
        base = min(self.max_backoff, self.backoff * 2 ** max(0, retry - 1))
        return base * random.uniform(0.5, 1.0)

    def _call(self, endpoint: str, fn: Callable[[], _T], *,
              passthrough: tuple[type[BaseException], ...] = (),
              uncertain: Callable[[], _T | None] | None = None) -> _T:
        """``fn()`` with retries on transient failures. ccxt's refusals of the
        ``passthrough`` classes propagate for the caller to map; other refusals raise
        :class:`BrokerError`.

        ``uncertain`` (submit's lookup by client order id) is asked after a failure that
        may have gone through (a timeout, a 5xx, a malformed answer): an order it finds is
        returned; ``fn`` runs again only once it answered that there is none, so a lookup
        that fails too never leads to a second order."""
        last, maybe_sent, synced = "", False, False
        for attempt in range(self.max_retries + 1):
            wait = 0.0
            send = True
            if maybe_sent and uncertain is not None:
                try:
                    found = uncertain()
                except BrokerError as e:
                    send, last = False, f"{last}; lookup by client order id failed: {e}"
                else:
                    if found is not None:
                        return found
                    maybe_sent = False
            try:
                if not send:
                    raise _Unknown
                out = fn()
                if isinstance(out, str | bytes):
                    raise _Malformed("not a JSON object or array")
                return out
            except _Unknown:
                wait = self._delay(attempt + 1)
            except ccxt.InvalidNonce as e:      # clock outside recvWindow: re-sync once
                last = f"clock skew: {e}"
                if not synced:
                    synced = True
                    try:
                        self._ex.load_time_difference()
                    except (ccxt.BaseError, TypeError, ValueError, KeyError):
                        pass
                else:
                    wait = self._delay(attempt + 1)
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as e:
                asked = _retry_after(self._ex.last_response_headers)
                wait = self._delay(attempt + 1) if asked is None else asked
                last = f"rate limited ({self._scrub(e, 160)})"
                if wait > self.max_wait:
                    raise BrokerUnavailable(
                        f"{self.name} ({self._where}) {endpoint}: rate limited, asked to "
                        f"wait {wait:.3g} s (more than max_wait={self.max_wait:g} s)") from None
            except (ccxt.BadResponse, _Malformed, TypeError, ValueError, KeyError,
                    AttributeError, IndexError) as e:
                what = f"malformed response ({type(e).__name__}: {e})"
                if uncertain is not None:
                    try:
                        found = uncertain()
                    except BrokerError as e2:
                        what += f"; lookup by client order id failed too: {e2}"
                        found = None
                    if found is not None:
                        return found
                self._fail(endpoint, what)
            except (ccxt.NetworkError, ccxt.OperationFailed) as e:
                maybe_sent = True
                last, wait = f"{type(e).__name__}: {self._scrub(e, 200)}", \
                    self._delay(attempt + 1)
            except ccxt.AuthenticationError as e:
                self._fail(endpoint, f"authentication failed (check the API key and "
                                     f"secret): {e}")
            except passthrough:
                raise
            except ccxt.BaseError as e:
                self._fail(endpoint, f"{type(e).__name__}: {e}")
            if attempt < self.max_retries:
                _LOG.warning("%s %s: %s; retry %d of %d in %.3g s", self.name, endpoint,
                             self._scrub(last), attempt + 1, self.max_retries, wait)
                time.sleep(wait)
        state = (" (the order may have reached the exchange: get_order tells)"
                 if maybe_sent or uncertain is not None and "lookup" in last else "")
        raise BrokerUnavailable(f"{self.name} ({self._where}) {endpoint}: no usable answer "
                                f"after {self.max_retries + 1} attempts{state}; last: "
                                f"{self._scrub(last)}")

    def _load(self) -> None:
        if not self._markets_loaded:
            markets = self._call("GET /api/v3/exchangeInfo", self._ex.load_markets)
            if not isinstance(markets, dict):
                self._fail("GET /api/v3/exchangeInfo", "malformed response: no markets")
            self._markets_loaded = True

    def _market(self, symbol: str) -> dict[str, Any] | None:
        """ccxt's market of an engine symbol ("BTCUSDT" or "BTC/USDT"), or None."""
        self._load()
        if not isinstance(symbol, str) or not symbol:
            return None
        ex = self._ex
        if "/" in symbol:
            m = ex.markets.get(symbol)
        else:
            found = [m for m in ex.markets_by_id.get(symbol, []) if m.get("spot")]
            m = found[0] if found else None
        if m is not None:
            self._alias.setdefault(m["symbol"], symbol)
        return m

    def _engine_symbol(self, ccxt_symbol: str) -> str:
        if ccxt_symbol in self._alias:
            return self._alias[ccxt_symbol]
        m = self._ex.markets.get(ccxt_symbol) if self._ex.markets else None
        return m["id"] if m else ccxt_symbol.replace("/", "")

    # ------------------------------------------------------------------ orders
    def _order(self, o: Any, endpoint: str, *, fetch_fees: bool = True) -> Order:
        """Our :class:`Order` from ccxt's unified order."""
        if not isinstance(o, dict) or not isinstance(o.get("info"), dict):
            raise _Malformed("not an order object")
        info = o["info"]
        cid, sym = o.get("clientOrderId"), o.get("symbol")
        if not isinstance(cid, str) or not cid or not isinstance(sym, str):
            raise _Malformed(f"an order without clientOrderId or symbol (fields: "
                             f"{sorted(info)[:20]})")
        qty = float(o.get("amount") or 0.0)
        filled = float(o.get("filled") or 0.0)
        if not (math.isfinite(qty) and math.isfinite(filled)) or filled < 0:
            raise _Malformed("executedQty/origQty are not numbers")
        avg = o.get("average")
        if avg is None and filled > 0 and o.get("cost") is not None:
            avg = float(o["cost"]) / filled
        avg = float("nan") if avg is None or filled <= 0 else float(avg)
        raw = str(info.get("status") or "")
        status = _STATUS.get(raw) or _CCXT_STATUS.get(str(o.get("status")), OrderStatus.NEW)
        if status is OrderStatus.NEW and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        fees, other = self._order_fees(o, cid, sym, filled, avg, fetch_fees)
        ts = o.get("timestamp")
        submitted = pd.Timestamp(int(ts), unit="ms", tz="UTC") if ts is not None else None
        self._symbol_of[cid] = sym
        extra: dict[str, Any] = {"exchange_status": raw, "ccxt_symbol": sym}
        if other:
            extra["other_fees"] = other
        reason = raw.lower() if raw in ("EXPIRED", "EXPIRED_IN_MATCH") else ""
        return Order(cid, self._engine_symbol(sym), str(o.get("side") or ""), qty, status,
                     filled, avg, fees, str(o.get("id") or ""), reason, submitted, extra)

    def _order_fees(self, o: dict[str, Any], cid: str, sym: str, filled: float, avg: float,
                    fetch: bool) -> tuple[float, dict[str, float]]:
        if filled <= 0:
            return 0.0, {}
        entries = [f for f in (o.get("fees") or []) if isinstance(f, dict)]
        if not entries and isinstance(o.get("fee"), dict):
            entries = [o["fee"]]
        if not entries and o.get("trades"):
            entries = [t["fee"] for t in o["trades"] if isinstance(t.get("fee"), dict)]
        if not entries:
            cached = self._fees.get((str(o.get("id")), filled))
            if cached is not None:
                return cached
            if not fetch or not o.get("id"):
                return 0.0, {}
            trades = self._call("GET /api/v3/myTrades",
                                lambda: self._ex.fetch_order_trades(o["id"], sym))
            if not isinstance(trades, list):
                raise _Malformed("myTrades is not a list")
            entries = [t["fee"] for t in trades if isinstance(t, dict)
                       and isinstance(t.get("fee"), dict)]
        market = self._ex.markets.get(sym, {})
        base, quote = market.get("base"), market.get("quote", self.quote)
        total, other = 0.0, dict[str, float]()
        for f in entries:
            cost = float(f.get("cost") or 0.0)
            cur = f.get("currency")
            if cur == quote:
                total += cost
            elif cur == base and math.isfinite(avg):
                total += cost * avg
            elif cost:
                other[str(cur)] = other.get(str(cur), 0.0) + cost
        if other:
            _LOG.warning("%s: order %s paid fees in %s, not converted to %s", self.name, cid,
                         sorted(other), quote)
        self._fees[(str(o.get("id")), filled)] = (total, other)   # by exchange order id
        return total, other

    def _reject(self, request: OrderRequest, reason: str, what: str) -> NoReturn:
        raise OrderRejected(f"{self.name} ({self._where}) order {request.client_order_id} "
                            f"{request.side} {request.qty:g} {request.symbol}: "
                            f"{self._scrub(what)}", reason=reason,
                            client_order_id=request.client_order_id)

    def submit(self, request: OrderRequest) -> Order:
        """Send ``request`` as a market order; the order as the exchange acknowledged it.

        Raises :class:`OrderRejected` when the exchange (or the market's filters, checked
        before sending) refuses it, :class:`BrokerUnavailable` when it cannot be reached.
        """
        cid = request.client_order_id
        if not (isinstance(cid, str) and 0 < len(cid) <= 36):
            self._reject(request, "invalid_client_order_id",
                         "the client order id must be 1 to 36 characters (Binance's limit)")
        if request.intent in (Intent.OPEN_SHORT, Intent.TO_SHORT):
            self._reject(request, "short_not_allowed", f"a spot account cannot go short "
                         f"({request.intent.name.lower()})")
        market = self._market(request.symbol)
        if market is None:
            self._reject(request, "unknown_symbol", f"the exchange lists no spot market "
                         f"{request.symbol!r}")
        sym = market["symbol"]
        self._symbol_of[cid] = sym
        try:
            qty = float(request.qty)
        except (TypeError, ValueError):
            qty = float("nan")
        if not (math.isfinite(qty) and qty > 0):
            self._reject(request, "invalid_qty", f"quantity {request.qty!r} is not a positive "
                         "number")
        try:
            amount = self._ex.amount_to_precision(sym, qty)
        except ccxt.BaseError as e:
            self._reject(request, "invalid_qty", f"quantity below the market's step: {e}")
        limits = market.get("limits") or {}
        amin = (limits.get("amount") or {}).get("min")
        cmin = (limits.get("cost") or {}).get("min")
        if amin is not None and float(amount) < amin:
            self._reject(request, "invalid_qty", f"quantity {amount} is under the market's "
                         f"minimum {amin:g}")
        price = request.reference_price
        if cmin is not None and math.isfinite(price) and float(amount) * price < cmin:
            self._reject(request, "invalid_qty", f"notional {float(amount) * price:.8g} "
                         f"{market['quote']} at {price:g} is under the market's minimum "
                         f"{cmin:g}")
        if self.lookup_before_submit:
            try:
                existing = self._lookup(cid, sym, unlisted=True)
            except ccxt.BadSymbol as e:
                self._reject(request, "unknown_symbol", str(e))
            if existing is not None:
                _LOG.info("%s: order %s is known to the exchange; not sent again", self.name,
                          cid)
                return existing
        endpoint = "POST /api/v3/order"

        def send() -> Order:
            o = self._ex.create_order(sym, "market", request.side, float(amount),
                                      params={"newClientOrderId": cid})
            try:
                return self._order(o, endpoint)
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise _Malformed(f"{type(e).__name__}: {e}") from None

        try:
            return self._call(endpoint, send, passthrough=(ccxt.ExchangeError,),
                              uncertain=lambda: self._lookup(cid, sym))
        except ccxt.InsufficientFunds as e:
            self._reject(request, "insufficient_buying_power" if request.side == "buy"
                         else "insufficient_qty", str(e))
        except ccxt.BadSymbol as e:
            self._reject(request, "unknown_symbol", str(e))
        except ccxt.InvalidOrder as e:
            text = str(e)
            if "Duplicate order sent" in text:
                existing = self._lookup(cid, sym)
                if existing is not None:
                    return existing
                self._reject(request, "duplicate_client_order_id", text)
            self._reject(request, "invalid_qty" if any(w in text for w in (
                "LOT_SIZE", "NOTIONAL", "amount", "quantity")) else "rejected", text)
        except ccxt.ExchangeError as e:
            self._reject(request, "rejected", str(e))

    def _lookup(self, cid: str, sym: str, *, unlisted: bool = False) -> Order | None:
        """The order with client id ``cid`` in market ``sym``, or None (one retried call).
        A market the exchange no longer lists has no order (``unlisted``: raise
        ``ccxt.BadSymbol`` instead)."""
        endpoint = "GET /api/v3/order"

        def get() -> Order | None:
            try:
                o = self._ex.fetch_order(None, sym, params={"origClientOrderId": cid})
            except ccxt.OrderNotFound:
                return None
            except ccxt.BadSymbol:
                if unlisted:
                    raise
                return None
            try:
                return self._order(o, endpoint)
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise _Malformed(f"{type(e).__name__}: {e}") from None

        return self._call(endpoint, get, passthrough=(ccxt.BadSymbol,))

    def _symbol_for(self, client_order_id: str) -> list[str]:
        """The markets to look ``client_order_id`` up in: its own when known, else the
        market of an open order with that id, else the configured ``symbols``."""
        if client_order_id in self._symbol_of:
            return [self._symbol_of[client_order_id]]
        for o in self.open_orders():
            if o.client_order_id == client_order_id:
                return [o.extra["ccxt_symbol"]]
        out = []
        for s in self._search:
            m = self._market(s)
            if m is not None:
                out.append(m["symbol"])
        return out

    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client order id, or None when the exchange has none."""
        for sym in self._symbol_for(client_order_id):
            found = self._lookup(client_order_id, sym)
            if found is not None:
                return found
        return None

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel an open order; the order as it ended (already final: as it is), or None
        when the exchange has no order with this id."""
        endpoint = "DELETE /api/v3/order"
        for sym in self._symbol_for(client_order_id):
            def delete(sym: str = sym) -> Any:
                return self._ex.cancel_order(None, sym,
                                             params={"origClientOrderId": client_order_id})
            try:
                self._call(endpoint, delete,
                           passthrough=(ccxt.OrderNotFound, ccxt.OperationRejected))
            except (ccxt.OrderNotFound, ccxt.OperationRejected):
                pass          # unknown here, or already final: the lookup says which
            found = self._lookup(client_order_id, sym)
            if found is not None:
                return found
        return None

    def open_orders(self) -> list[Order]:
        """Orders not yet final, in every market."""
        endpoint = "GET /api/v3/openOrders"
        self._load()
        raw = self._call(endpoint, self._ex.fetch_open_orders)
        if not isinstance(raw, list):
            self._fail(endpoint, "malformed response: not a list")
        try:
            out = [self._order(o, endpoint) for o in raw]
        except (_Malformed, TypeError, ValueError, KeyError, AttributeError) as e:
            self._fail(endpoint, f"malformed response: {e}")
        return [o for o in out if not o.status.final]

    # ------------------------------------------------------------------ account
    def _balances(self) -> dict[str, tuple[float, float]]:
        """(free, total) by asset."""
        endpoint = "GET /api/v3/account"
        self._load()
        b = self._call(endpoint, self._ex.fetch_balance)
        if not (isinstance(b, dict) and isinstance(b.get("info"), dict)
                and isinstance(b["info"].get("balances"), list)):
            self._fail(endpoint, "malformed response: no balances")
        out = {}
        for asset, total in (b.get("total") or {}).items():
            free = (b.get("free") or {}).get(asset) or 0.0
            out[str(asset)] = (float(free), float(total or 0.0))
        return out

    def _last_prices(self, symbols: list[str]) -> dict[str, float]:
        if not symbols:
            return {}
        endpoint = "GET /api/v3/ticker/price"
        raw = self._call(endpoint, lambda: self._ex.fetch_last_prices(symbols))
        if not isinstance(raw, dict):
            self._fail(endpoint, "malformed response: not a list of prices")
        return {s: float(v["price"]) for s, v in raw.items()
                if isinstance(v, dict) and v.get("price") is not None}

    def _positions(self) -> tuple[dict[str, Position], dict[str, tuple[float, float]]]:
        balances = self._balances()
        held = {}
        for asset, (_, total) in balances.items():
            if asset == self.quote or total <= 0:
                continue
            sym = f"{asset}/{self.quote}"
            if sym in self._ex.markets:
                held[sym] = total
            else:
                _LOG.debug("%s: %s %g held, no %s market to value it", self.name, asset,
                           total, sym)
        prices = self._last_prices(sorted(held))
        out = {}
        for sym, qty in held.items():
            name = self._engine_symbol(sym)
            out[name] = Position(name, qty, float("nan"), prices.get(sym, float("nan")))
        return out, balances

    def positions(self) -> dict[str, Position]:
        """Spot holdings of every asset but the quote, as long positions at last prices
        (the entry price is not known to a spot account: NaN)."""
        return self._positions()[0]

    def account(self) -> Account:
        """Cash (the quote currency's total balance), equity (cash plus positions at last
        prices) and buying power (the quote's free balance)."""
        positions, balances = self._positions()
        free, total = balances.get(self.quote, (0.0, 0.0))
        value = sum(p.market_value for p in positions.values() if math.isfinite(p.market_value))
        return Account(total, total + value, free, self.quote)

    # ------------------------------------------------------------------ bars
    def fetch_bars(self, symbols: Iterable[str] | str, start: Any, timeframe: str = "1m", *,
                   end: Any = None, limit: int = 1000) -> pd.DataFrame:
        """Long-form bars of ``symbols`` opened at or after ``start`` (and at or before
        ``end``), every page of ``fetch_ohlcv`` (``limit`` bars a page); only closed bars
        (Binance also serves the bar still forming: it is dropped). ``timeframe`` is
        ccxt's (``"1m"``, ``"1h"``, ...) or Alpaca's/pandas' (``"1Min"``, ``"1Hour"``)."""
        syms = [symbols] if isinstance(symbols, str) else list(symbols)
        if not syms or not all(isinstance(s, str) and s for s in syms):
            raise ValueError(f"CCXTBroker.fetch_bars: symbols must be non-empty names, got "
                             f"{syms!r}")
        timeframe = _timeframe(timeframe)
        if timeframe not in self._ex.timeframes:
            raise ValueError(f"CCXTBroker.fetch_bars: timeframe must be one of "
                             f"{sorted(self._ex.timeframes)} (or 1Min, 1Hour, 1Day, ...), "
                             f"got {timeframe!r}")
        if not (isinstance(limit, int) and 1 <= limit <= 1000):
            raise ValueError(f"CCXTBroker.fetch_bars: limit must be 1 to 1000, got {limit!r}")
        width = int(self._ex.parse_timeframe(timeframe) * 1000)
        since0 = _ms(start, "start")
        until = None if end is None else _ms(end, "end")
        endpoint = "GET /api/v3/klines"
        rows: list[tuple[Any, ...]] = []
        for name in syms:
            market = self._market(name)
            if market is None:
                raise BrokerError(f"{self.name} ({self._where}) {endpoint}: the exchange "
                                  f"lists no spot market {name!r}")
            sym, since = market["symbol"], since0
            while True:
                def page(since: int = since, sym: str = sym) -> Any:
                    return self._ex.fetch_ohlcv(sym, timeframe, since, limit)
                got = self._call(f"{endpoint} {name}", page)
                if not isinstance(got, list) or not all(
                        isinstance(r, list) and len(r) >= 6 for r in got):
                    self._fail(endpoint, f"{name}: malformed response: not a list of klines")
                now = time.time() * 1000
                last = since - 1
                for r in got:
                    t = int(r[0])
                    last = max(last, t)
                    if t < since or (until is not None and t > until) or t + width > now:
                        continue
                    rows.append((t, name, *(r[1:6])))
                if len(got) < limit or last < since or (until is not None and last >= until):
                    break
                since = last + width
        return self._bars_frame(rows, endpoint)

    def _bars_frame(self, rows: list[tuple[Any, ...]], endpoint: str) -> pd.DataFrame:
        try:
            frame = pd.DataFrame({
                "timestamp": pd.to_datetime([r[0] for r in rows], unit="ms", utc=True
                                            ).as_unit("ns"),
                "symbol": [r[1] for r in rows],
                **{c: [float(r[i]) for r in rows]
                   for i, c in enumerate(("open", "high", "low", "close", "volume"), start=2)}})
        except (TypeError, ValueError) as e:
            self._fail(endpoint, f"malformed klines: {e}")
        frame = frame.sort_values(["symbol", "timestamp"], kind="stable", ignore_index=True)
        frame = frame.drop_duplicates(["symbol", "timestamp"], ignore_index=True)
        try:
            return validate(frame, source=f"{self.name} {endpoint}")
        except DataError as exc:
            raise BrokerError(str(exc)) from None
