"""The Alpaca broker: market orders through Alpaca's REST v2 trading API, bars from its
market-data API, over one synchronous :class:`httpx.Client`.

* **Keys** come from ``key_id``/``secret_key`` or the environment variables
  ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``, and go out as the ``APCA-API-KEY-ID`` /
  ``APCA-API-SECRET-KEY`` headers. They are registered with :mod:`alphatrade_lab.redact`,
  so they never appear in the repr, in error messages or in log lines.
* **Paper by default**: ``base_url`` is ``https://paper-api.alpaca.markets``; the live
  endpoint (``https://api.alpaca.markets``) is used only when passed explicitly.
* **Idempotent submit.** Every order carries the engine's deterministic client order id.
  When a POST times out or gets a 5xx, the adapter cannot tell whether Alpaca took the
  order, so it looks the order up (``GET /v2/orders:by_client_order_id``) before posting
  again; an answer "client_order_id must be unique" means the order is there, and it is
  fetched and returned. So no order is sent twice.
* **Failures.** 429: wait as long as ``Retry-After`` (or ``X-RateLimit-Reset``) says, else
  the backoff, then retry; 5xx, timeouts and connection errors: exponential backoff, then
  :class:`~alphatrade_lab.errors.BrokerUnavailable` naming the endpoint. A refused order
  (403 insufficient buying power, 422 unknown symbol or bad quantity, ...) raises
  :class:`~alphatrade_lab.errors.OrderRejected` with a ``reason``; wrong keys, malformed
  JSON and missing fields raise :class:`~alphatrade_lab.errors.BrokerError` naming the
  endpoint and the field.
* **Statuses.** Alpaca's order statuses map onto the five of
  :class:`~alphatrade_lab.live.orders.OrderStatus`: ``filled``, ``partially_filled`` and
  ``rejected`` as they are; ``canceled``, ``expired`` and ``replaced`` as canceled (final
  for this order id); the working states (``new``, ``accepted``, ``pending_new``,
  ``pending_cancel``, ``held``, ``done_for_day``, ...) as new, or partially filled once
  some quantity filled. The raw status is kept in ``order.extra["alpaca_status"]``.
  Alpaca charges no commission on equities: ``fees`` is 0.

Against the local Alpaca-shaped server of :mod:`alphatrade_lab.testing`:

>>> from alphatrade_lab.testing import LocalAlpaca
>>> from alphatrade_lab.live.orders import Intent, OrderRequest
>>> import pandas as pd
>>> with LocalAlpaca(cash=10_000.0) as srv:
...     srv.set_price("AAA", 100.0)
...     with AlpacaBroker(srv.key_id, srv.secret_key, base_url=srv.url,
...                       data_url=srv.url) as broker:
...         t = pd.Timestamp("2024-01-02 15:00", tz="UTC")
...         o = broker.submit(OrderRequest("atl-demo-1", "AAA", Intent.OPEN_LONG, 10, t, 100.0))
...         o.status.value, o.filled_qty, o.filled_avg_price, broker.account().cash
('filled', 10.0, 100.0, 9000.0)
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
import pandas as pd

from alphatrade_lab.data.schema import validate
from alphatrade_lab.errors import BrokerError, BrokerUnavailable, DataError, OrderRejected
from alphatrade_lab.live.brokers._http import RetryPolicy, retry_after
from alphatrade_lab.live.orders import Account, Order, OrderRequest, OrderStatus, Position
from alphatrade_lab.redact import REDACTED, redact_truncate, register_secret

__all__ = ["DATA_URL", "KEY_ID_ENV", "LIVE_URL", "PAPER_URL", "SECRET_KEY_ENV",
           "AlpacaBroker", "parse_order", "rejection_reason"]

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
KEY_ID_ENV = "APCA_API_KEY_ID"
SECRET_KEY_ENV = "APCA_API_SECRET_KEY"

_LOG = logging.getLogger("alphatrade_lab.live.alpaca")
_TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
_TIMEFRAME = re.compile(r"^[1-9]\d*(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_ORDERS_PAGE = 500          # Alpaca's largest page of GET /v2/orders
_BARS_PAGE = 10_000         # and of GET /v2/stocks/bars
_MAX_CLIENT_ID = 48

_FINAL_STATUS = {"filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
                 "expired": OrderStatus.CANCELED, "replaced": OrderStatus.CANCELED,
                 "rejected": OrderStatus.REJECTED}
_WORKING_STATUS = frozenset({
    "new", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
    "pending_replace", "pending_review", "held", "stopped", "suspended", "done_for_day",
    "calculated"})
_EXTRA_FIELDS = ("type", "time_in_force", "created_at", "updated_at", "filled_at",
                 "canceled_at", "expired_at", "failed_at", "asset_class", "notional",
                 "commission")


class _Transient(Exception):
    """A request that got no usable answer; ``sent``: it may have reached the server."""

    def __init__(self, reason: str, sent: bool = True):
        super().__init__(reason)
        self.reason, self.sent = reason, sent


# ----------------------------------------------------------------------------- parsing
def _where(endpoint: str, field: str | None = None) -> str:
    return f"Alpaca {endpoint}" + (f", field '{field}'" if field else "")


def _object(d: Any, endpoint: str, what: str = "an order") -> dict[str, Any]:
    if not isinstance(d, dict):
        raise BrokerError(f"{_where(endpoint)}: expected {what} (a JSON object), got "
                          f"{type(d).__name__}: {redact_truncate(d, 120)}")
    return d


def _text(d: Mapping[str, Any], name: str, endpoint: str) -> str:
    if name not in d:
        raise BrokerError(f"{_where(endpoint, name)}: missing (fields: {sorted(d)[:20]})")
    v = d[name]
    if not isinstance(v, str) or not v:
        raise BrokerError(f"{_where(endpoint, name)}: expected a non-empty string, got "
                          f"{redact_truncate(repr(v), 80)}")
    return v


def _number(d: Mapping[str, Any], name: str, endpoint: str, *, null: float | None = None
            ) -> float:
    """A numeric field (Alpaca sends decimals as strings); ``null``: the value for JSON
    null (None: null is an error)."""
    if name not in d:
        raise BrokerError(f"{_where(endpoint, name)}: missing (fields: {sorted(d)[:20]})")
    v = d[name]
    if v is None and null is not None:
        return null
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise BrokerError(f"{_where(endpoint, name)}: expected a number, got "
                          f"{redact_truncate(repr(v), 80)}")
    try:
        out = float(v)
    except ValueError:
        raise BrokerError(f"{_where(endpoint, name)}: expected a number, got "
                          f"{redact_truncate(repr(v), 80)}") from None
    if not math.isfinite(out):
        raise BrokerError(f"{_where(endpoint, name)}: not a finite number: {v!r}")
    return out


def _timestamp(v: Any, endpoint: str, name: str) -> pd.Timestamp | None:
    if v is None:
        return None
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError):
        raise BrokerError(f"{_where(endpoint, name)}: not a timestamp: "
                          f"{redact_truncate(repr(v), 80)}") from None
    if t is pd.NaT:
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _status(raw: str, filled: float, qty: float) -> OrderStatus:
    if raw == "partially_filled":
        return OrderStatus.PARTIALLY_FILLED
    if raw in _FINAL_STATUS:
        return _FINAL_STATUS[raw]
    if raw == "calculated" and qty > 0 and filled >= qty:
        return OrderStatus.FILLED
    if raw not in _WORKING_STATUS:
        _LOG.warning("Alpaca order status %r is not known here; read as a working order", raw)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW


def parse_order(d: Any, endpoint: str = "order") -> Order:
    """An Alpaca order object (JSON, decimals as strings) as an :class:`Order`.

    Raises :class:`BrokerError` naming ``endpoint`` and the field when a field is
    missing or malformed.

    >>> o = parse_order({"id": "61e69015", "client_order_id": "atl-1", "symbol": "AAA",
    ...                  "side": "buy", "qty": "10", "filled_qty": "4",
    ...                  "filled_avg_price": "100.5", "status": "partially_filled",
    ...                  "submitted_at": "2024-01-02T15:00:00.123456789Z"})
    >>> o.status.value, o.filled_qty, o.filled_avg_price, o.fees, o.broker_order_id
    ('partially_filled', 4.0, 100.5, 0.0, '61e69015')
    >>> parse_order({"id": "x", "symbol": "AAA"}, "GET /v2/orders/x")
    Traceback (most recent call last):
    ...
    alphatrade_lab.errors.BrokerError: Alpaca GET /v2/orders/x, field 'client_order_id': missing ...
    """
    d = _object(d, endpoint)
    oid = _text(d, "id", endpoint)
    cid = _text(d, "client_order_id", endpoint)
    symbol = _text(d, "symbol", endpoint)
    raw_side = _text(d, "side", endpoint)
    if raw_side.startswith("buy"):
        side = "buy"
    elif raw_side.startswith("sell"):
        side = "sell"
    else:
        raise BrokerError(f"{_where(endpoint, 'side')}: expected buy or sell, got {raw_side!r}")
    qty = _number(d, "qty", endpoint, null=math.nan)        # null for a notional order
    filled = _number(d, "filled_qty", endpoint, null=0.0)
    avg = _number(d, "filled_avg_price", endpoint, null=math.nan)
    if filled < 0 or (qty == qty and qty <= 0):
        raise BrokerError(f"{_where(endpoint, 'qty')}: qty {qty:g} and filled_qty {filled:g} "
                          "must be positive")
    if filled > 0 and not avg > 0:
        raise BrokerError(f"{_where(endpoint, 'filled_avg_price')}: {filled:g} filled but no "
                          f"positive average price ({d.get('filled_avg_price')!r})")
    raw_status = _text(d, "status", endpoint)
    status = _status(raw_status, filled, qty)
    submitted = _timestamp(d.get("submitted_at") or d.get("created_at"), endpoint,
                           "submitted_at")
    extra = {"alpaca_status": raw_status, **{k: d[k] for k in _EXTRA_FIELDS if k in d}}
    reason = raw_status if raw_status in ("expired", "replaced") else ""
    return Order(cid, symbol, side, qty, status, filled, avg, 0.0, oid, reason, submitted,
                 extra)


def rejection_reason(status: int, message: str) -> str:
    """The engine's reason for an order Alpaca refused, from its HTTP status and message.

    >>> rejection_reason(403, "insufficient buying power")
    'insufficient_buying_power'
    >>> rejection_reason(422, "could not find us_equity 'ZZZZ'")
    'unknown_symbol'
    >>> rejection_reason(422, "qty must be > 0")
    'invalid_qty'
    """
    m = message.lower()
    if "insufficient qty" in m or "qty available" in m:
        return "insufficient_qty"
    if "buying power" in m or "insufficient" in m:
        return "insufficient_buying_power"
    if "client_order_id" in m and "unique" in m:
        return "duplicate_client_order_id"
    if "short" in m:
        return "short_not_allowed"
    if "pattern day" in m or "day trad" in m:
        return "pattern_day_trading"
    if any(w in m for w in ("asset", "symbol", "us_equity")) and any(w in m for w in (
            "not found", "could not find", "not active", "not tradable", "invalid", "unknown")):
        return "unknown_symbol"
    if "qty" in m or "quantity" in m or "notional" in m:
        return "invalid_qty"
    if "market" in m and ("closed" in m or "hours" in m):
        return "market_closed"
    if status == 403:
        return "forbidden"
    return "rejected"


def _error_message(resp: httpx.Response) -> tuple[int | None, str]:
    """Alpaca's error body ``{"code": 40310000, "message": "..."}``: code and message."""
    try:
        body = resp.json()
    except ValueError:
        return None, resp.text.strip()
    if isinstance(body, dict):
        code = body.get("code")
        msg = body.get("message")
        return (code if isinstance(code, int) else None,
                msg if isinstance(msg, str) else str(body))
    return None, str(body)


def _bar_rows(items: list[Any], symbol: str, endpoint: str) -> list[tuple[Any, ...]]:
    """``(t, o, h, l, c, v)`` of each bar object; the checked loop names what is wrong."""
    try:
        rows = [(b["t"], b["o"], b["h"], b["l"], b["c"], b["v"]) for b in items]
        if all(type(x) in (int, float) for r in rows for x in r[1:]):
            return rows
    except (KeyError, TypeError):
        pass
    out = []
    for b in items:
        b = _object(b, endpoint, "a bar")
        if "t" not in b:
            raise BrokerError(f"{_where(endpoint, 't')}: missing in a bar of {symbol!r}")
        out.append((b["t"], *(_number(b, k, endpoint) for k in "ohlcv")))
    return out


def _rfc3339(t: Any, name: str) -> str:
    try:
        ts = pd.Timestamp(t)
    except (TypeError, ValueError):
        raise ValueError(f"AlpacaBroker.fetch_bars: {name} is not a timestamp: {t!r}") from None
    if ts is pd.NaT:
        raise ValueError(f"AlpacaBroker.fetch_bars: {name} is missing (NaT)")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    frac = f".{ts.microsecond:06d}" if ts.microsecond else ""
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _qty_text(qty: float) -> str:
    """A quantity as Alpaca takes it: a decimal string, at most 9 decimals."""
    return format(qty, ".9f").rstrip("0").rstrip(".")


def _check_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"AlpacaBroker: {name} must be an http(s) URL, got {url!r}")
    if parts.username or parts.password or parts.query:
        raise ValueError(f"AlpacaBroker: {name} must not hold credentials or a query")
    return url.rstrip("/")


# ----------------------------------------------------------------------------- the broker
class AlpacaBroker:
    """Alpaca's trading and market-data APIs behind the :class:`Broker` interface.

    Parameters
    ----------
    key_id, secret_key
        API keys; default: the ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` variables.
    base_url
        The trading API (default the paper endpoint; pass :data:`LIVE_URL` to trade live).
    data_url
        The market-data API.
    timeout
        Seconds per request (connect, read, write).
    max_retries, backoff, max_backoff, max_wait
        Retries after the first attempt on timeouts, connection errors, 5xx and 429; the
        k-th waits ``backoff * 2**(k-1)`` seconds (at most ``max_backoff``, with jitter)
        or what a 429 asks for, unless that is more than ``max_wait``.
    feed
        The market-data feed of :meth:`fetch_bars` (``"iex"`` is free; ``"sip"`` needs a
        subscription).
    time_in_force
        Of every order: ``"day"`` (default), ``"gtc"``, ...
    """

    name = "alpaca"

    def __init__(self, key_id: str | None = None, secret_key: str | None = None, *,
                 base_url: str = PAPER_URL, data_url: str = DATA_URL, timeout: float = 10.0,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0,
                 max_wait: float = 60.0, feed: str = "iex", time_in_force: str = "day"):
        # the settings first: a traceback of a bad setting then holds no key in its locals
        self.base_url = _check_url(base_url, "base_url")
        self.data_url = _check_url(data_url, "data_url")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"AlpacaBroker: timeout must be > 0 seconds, got {timeout!r}")
        if time_in_force not in _TIME_IN_FORCE:
            raise ValueError(f"AlpacaBroker: time_in_force must be one of {_TIME_IN_FORCE}, "
                             f"got {time_in_force!r}")
        if not (isinstance(feed, str) and feed):
            raise ValueError(f"AlpacaBroker: feed must be a feed name, got {feed!r}")
        self.timeout, self.feed, self.time_in_force = float(timeout), feed, time_in_force
        self.retry = RetryPolicy(max_retries, backoff, max_backoff, max_wait)
        key_id = os.environ.get(KEY_ID_ENV) if key_id is None else key_id
        secret_key = os.environ.get(SECRET_KEY_ENV) if secret_key is None else secret_key
        missing = [env for env, v in ((KEY_ID_ENV, key_id), (SECRET_KEY_ENV, secret_key))
                   if not (isinstance(v, str) and v.strip())]
        if missing:
            raise BrokerError(
                f"AlpacaBroker: no API key: set {' and '.join(missing)} in the environment "
                "or pass key_id= and secret_key=")
        assert isinstance(key_id, str) and isinstance(secret_key, str)
        register_secret(key_id, secret_key)
        self._keys = (key_id, secret_key)
        self._client = httpx.Client(
            timeout=self.timeout, follow_redirects=False,
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key,
                     "Accept": "application/json", "User-Agent": "alphatrade-lab"})

    # ------------------------------------------------------------------ plumbing
    @property
    def paper(self) -> bool:
        """Whether the trading endpoint is Alpaca's paper API (or a local server)."""
        host = urlsplit(self.base_url).hostname or ""
        return host.startswith("paper-api.") or host in ("127.0.0.1", "localhost", "::1")

    def __repr__(self) -> str:
        return (f"AlpacaBroker(base_url={self.base_url!r}, data_url={self.data_url!r}, "
                f"key_id='{REDACTED}', paper={self.paper})")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> AlpacaBroker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _scrub(self, text: Any, limit: int = 300) -> str:
        return redact_truncate(text, limit, self._keys)

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None = None,
              json: Any = None) -> httpx.Response:
        try:
            return self._client.request(method, url, params=params, json=json)
        except httpx.ConnectTimeout:
            raise _Transient(f"connect timed out after {self.timeout:g} s", sent=False) from None
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out after {self.timeout:g} s ({type(exc).__name__})"
                             ) from None
        except httpx.ConnectError as exc:
            raise _Transient(f"ConnectError: {self._scrub(exc, 200)}", sent=False) from None
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {self._scrub(exc, 200)}") from None

    def _rate_limit_wait(self, resp: httpx.Response, endpoint: str, retry: int) -> float:
        wait = retry_after(resp.headers)
        if wait is None:
            return self.retry.delay(retry)
        if wait > self.retry.max_wait:
            raise BrokerUnavailable(
                f"{_where(endpoint)} ({urlsplit(str(resp.url)).netloc}): rate limited (HTTP "
                f"429) for {wait:.3g} s, more than max_wait={self.retry.max_wait:g} s")
        return wait

    def _check_auth(self, resp: httpx.Response, endpoint: str) -> None:
        """Wrong or missing keys: 401, or a 403 without Alpaca's error code."""
        if resp.status_code not in (401, 403):
            return
        code, message = _error_message(resp)
        if resp.status_code == 403 and code is not None and code != 40110000:
            return   # an order refused for a reason (buying power, shorting, ...)
        raise BrokerError(
            f"{_where(endpoint)}: authentication failed (HTTP {resp.status_code}: "
            f"{self._scrub(message, 120)}); check {KEY_ID_ENV} and {SECRET_KEY_ENV}, and "
            f"that the keys are for {self.base_url}")

    def _wait(self, endpoint: str, reason: str, retry: int, wait: float) -> None:
        _LOG.warning("%s: %s; retry %d of %d in %.3g s", _where(endpoint), reason, retry,
                     self.retry.max_retries, wait)
        time.sleep(wait)

    def _unavailable(self, endpoint: str, base: str, last: str, extra: str = "") -> NoReturn:
        n = self.retry.attempts
        raise BrokerUnavailable(
            f"{_where(endpoint)} ({urlsplit(base).netloc}): no usable answer after {n} "
            f"attempt{'s' * (n != 1)}; last: {last}{extra}")

    def _call(self, method: str, base: str, path: str, *,
              params: Mapping[str, Any] | None = None) -> httpx.Response:
        """One idempotent request (GET, DELETE) with the retries; the first answer that is
        not a 429, a 5xx or a failure, after the key check."""
        endpoint = f"{method} {path.split('?')[0]}"
        last = "not attempted"
        for attempt in range(1, self.retry.attempts + 1):
            try:
                resp = self._send(method, base + path, params)
            except _Transient as t:
                last, wait = t.reason, self.retry.delay(attempt)
            else:
                if resp.status_code == 429:
                    last, wait = "HTTP 429 rate limited", self._rate_limit_wait(
                        resp, endpoint, attempt)
                elif resp.status_code >= 500:
                    last, wait = f"HTTP {resp.status_code}", self.retry.delay(attempt)
                else:
                    self._check_auth(resp, endpoint)
                    return resp
            if attempt < self.retry.attempts:
                self._wait(endpoint, last, attempt, wait)
        self._unavailable(endpoint, base, last)

    def _json(self, resp: httpx.Response, endpoint: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise BrokerError(f"{_where(endpoint)}: HTTP {resp.status_code} answer is not JSON: "
                              f"{self._scrub(resp.text, 120)!r}") from None

    def _fail(self, resp: httpx.Response, endpoint: str) -> NoReturn:
        _, message = _error_message(resp)
        raise BrokerError(f"{_where(endpoint)}: HTTP {resp.status_code}: "
                          f"{self._scrub(message, 200)}")

    def _get(self, path: str, params: Mapping[str, Any] | None = None, *,
             base: str | None = None) -> Any:
        resp = self._call("GET", base or self.base_url, path, params=params)
        endpoint = f"GET {path}"
        if not resp.is_success:
            self._fail(resp, endpoint)
        return self._json(resp, endpoint)

    # ------------------------------------------------------------------ orders
    def _order_body(self, request: OrderRequest) -> dict[str, Any]:
        cid = request.client_order_id
        if not (isinstance(cid, str) and 0 < len(cid) <= _MAX_CLIENT_ID):
            raise OrderRejected(f"Alpaca: client order id {cid!r} must be 1 to "
                                f"{_MAX_CLIENT_ID} characters; not sent",
                                reason="invalid_client_order_id", client_order_id=str(cid))
        qty = float(request.qty)
        if not (math.isfinite(qty) and qty > 0) or _qty_text(qty) in ("", "0"):
            raise OrderRejected(f"Alpaca: order {cid} ({request.symbol}): quantity {qty!r} "
                                "is not a positive number; not sent", reason="invalid_qty",
                                client_order_id=cid)
        if not (isinstance(request.symbol, str) and request.symbol):
            raise OrderRejected(f"Alpaca: order {cid}: no symbol; not sent",
                                reason="unknown_symbol", client_order_id=cid)
        return {"symbol": request.symbol, "qty": _qty_text(qty), "side": request.side,
                "type": "market", "time_in_force": self.time_in_force,
                "client_order_id": cid}

    def submit(self, request: OrderRequest) -> Order:
        """Send a market order for ``request.qty`` shares; the order as Alpaca acknowledged
        it (maybe already filled).

        Raises :class:`OrderRejected` (with ``reason``) when Alpaca refuses it and
        :class:`BrokerUnavailable` when no attempt got an answer; in the second case the
        order may still have reached Alpaca (the message says so), and
        :meth:`get_order` finds it by its client order id.
        """
        body = self._order_body(request)
        cid, endpoint, base = request.client_order_id, "POST /v2/orders", self.base_url
        uncertain, last, wait = False, "not attempted", 0.0
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self._wait(endpoint, last, attempt - 1, wait)
            wait = self.retry.delay(attempt)
            if uncertain:          # did the last POST get through? look before posting again
                try:
                    found = self._lookup_once(cid)
                except _Transient as t:
                    last = f"{last}; lookup by client order id: {t.reason}"
                    continue
                if found is not None:
                    _LOG.info("%s: order %s was taken before the failure; not sent again",
                              _where(endpoint), cid)
                    return found
                uncertain = False
            try:
                resp = self._send("POST", base + "/v2/orders", json=body)
            except _Transient as t:
                uncertain, last = t.sent, t.reason
                continue
            status = resp.status_code
            if status == 429:      # refused before it was looked at: safe to post again
                last, wait = "HTTP 429 rate limited", self._rate_limit_wait(
                    resp, endpoint, attempt)
                continue
            if status >= 500:
                uncertain, last = True, f"HTTP {status}"
                continue
            self._check_auth(resp, endpoint)
            if resp.is_success:
                return parse_order(self._json(resp, endpoint), endpoint)
            if status in (404, 405):       # not an order refused: a wrong base URL
                self._fail(resp, endpoint)
            return self._refused(resp, request)
        self._unavailable(endpoint, base, last,
                          f"; order {cid} ({request.symbol}) may have reached Alpaca: look it "
                          "up by its client order id" if uncertain else
                          f"; order {cid} ({request.symbol}) was not taken")

    def _refused(self, resp: httpx.Response, request: OrderRequest) -> Order:
        """A 4xx answer to a POST: the existing order when the id was taken, else raise."""
        cid, endpoint = request.client_order_id, "POST /v2/orders"
        _, message = _error_message(resp)
        reason = rejection_reason(resp.status_code, message)
        if reason == "duplicate_client_order_id":
            existing = self.get_order(cid)
            if existing is None:
                raise BrokerError(f"{_where(endpoint)}: Alpaca says client order id {cid} is "
                                  "taken, but no order has it")
            if existing.symbol != request.symbol or existing.side != request.side:
                raise BrokerError(
                    f"{_where(endpoint)}: client order id {cid} belongs to another order "
                    f"({existing.side} {existing.symbol}, not {request.side} {request.symbol})")
            _LOG.info("%s: order %s exists already; returning it", _where(endpoint), cid)
            return existing
        raise OrderRejected(
            f"{_where(endpoint)}: order {cid} ({request.side} {_qty_text(float(request.qty))} "
            f"{request.symbol}) rejected, HTTP {resp.status_code}: {self._scrub(message, 200)}",
            reason=reason, client_order_id=cid)

    def _lookup_once(self, client_order_id: str) -> Order | None:
        """One look-up by client order id, no retries (raises _Transient)."""
        endpoint = "GET /v2/orders:by_client_order_id"
        resp = self._send("GET", self.base_url + "/v2/orders:by_client_order_id",
                          {"client_order_id": client_order_id})
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Transient(f"HTTP {resp.status_code}")
        return self._order_or_none(resp, endpoint)

    def _order_or_none(self, resp: httpx.Response, endpoint: str) -> Order | None:
        self._check_auth(resp, endpoint)
        if resp.status_code == 404:
            return None
        if not resp.is_success:
            self._fail(resp, endpoint)
        return parse_order(self._json(resp, endpoint), endpoint)

    def get_order(self, client_order_id: str) -> Order | None:
        """The order with this client order id, or None when Alpaca has none."""
        path = "/v2/orders:by_client_order_id"
        resp = self._call("GET", self.base_url, path,
                          params={"client_order_id": client_order_id})
        return self._order_or_none(resp, f"GET {path}")

    def _get_by_id(self, order_id: str) -> Order | None:
        path = f"/v2/orders/{quote(order_id, safe='')}"
        return self._order_or_none(self._call("GET", self.base_url, path),
                                   "GET /v2/orders/{id}")

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel an open order; the order afterwards (``pending_cancel`` reads as still
        working), the order as it is when it was already final, None when unknown."""
        order = self.get_order(client_order_id)
        if order is None or order.status.final:
            return order
        path = f"/v2/orders/{quote(order.broker_order_id, safe='')}"
        resp = self._call("DELETE", self.base_url, path)
        if resp.status_code not in (200, 204, 404, 422):   # 422: no longer cancelable
            self._fail(resp, "DELETE /v2/orders/{id}")
        return self._get_by_id(order.broker_order_id) or order

    def open_orders(self) -> list[Order]:
        """Orders not yet final (Alpaca's ``status=open``), oldest first."""
        params: dict[str, Any] = {"status": "open", "limit": _ORDERS_PAGE, "direction": "asc",
                                  "nested": "false"}
        out: dict[str, Order] = {}
        while True:
            page = self._get("/v2/orders", params)
            if not isinstance(page, list):
                raise BrokerError(f"{_where('GET /v2/orders')}: expected a list of orders, got "
                                  f"{type(page).__name__}")
            before = len(out)
            for d in page:
                o = parse_order(d, "GET /v2/orders")
                out.setdefault(o.broker_order_id, o)
            if len(page) < _ORDERS_PAGE or len(out) == before:
                break
            params["after"] = page[-1].get("submitted_at") or page[-1].get("created_at")
        return [o for o in out.values() if not o.status.final]

    # ------------------------------------------------------------------ account
    def positions(self) -> dict[str, Position]:
        """Open positions by symbol; a short has a negative ``qty``."""
        endpoint = "GET /v2/positions"
        data = self._get("/v2/positions")
        if not isinstance(data, list):
            raise BrokerError(f"{_where(endpoint)}: expected a list of positions, got "
                              f"{type(data).__name__}")
        out: dict[str, Position] = {}
        for d in data:
            d = _object(d, endpoint, "a position")
            symbol = _text(d, "symbol", endpoint)
            qty = _number(d, "qty", endpoint)
            if d.get("side") == "short" and qty > 0:
                qty = -qty
            if qty == 0:
                continue
            avg = _number(d, "avg_entry_price", endpoint, null=math.nan)
            price = _number(d, "current_price", endpoint, null=math.nan) \
                if "current_price" in d else math.nan
            out[symbol] = Position(symbol, qty, avg, price)
        return out

    def account(self) -> Account:
        """Cash, equity and buying power (``GET /v2/account``)."""
        endpoint = "GET /v2/account"
        d = _object(self._get("/v2/account"), endpoint, "the account")
        currency = d.get("currency") if isinstance(d.get("currency"), str) else "USD"
        return Account(_number(d, "cash", endpoint), _number(d, "equity", endpoint),
                       _number(d, "buying_power", endpoint), currency or "USD")

    # ------------------------------------------------------------------ market data
    def fetch_bars(self, symbols: Iterable[str], start: Any, timeframe: str = "1Min", *,
                   end: Any = None, limit: int = _BARS_PAGE, adjustment: str = "raw"
                   ) -> pd.DataFrame:
        """Long-form bars of ``symbols`` opened at or after ``start`` (and at or before
        ``end``), every page of ``GET /v2/stocks/bars`` (``limit`` bars a page).

        Alpaca stamps a bar with its open time, as the bar contract does. Timestamps are
        UTC; a naive ``start``/``end`` is read as UTC.
        """
        syms = [symbols] if isinstance(symbols, str) else list(symbols)
        if not syms or not all(isinstance(s, str) and s and "," not in s for s in syms):
            raise ValueError(f"AlpacaBroker.fetch_bars: symbols must be non-empty names, got "
                             f"{syms!r}")
        if not (isinstance(timeframe, str) and _TIMEFRAME.match(timeframe)):
            raise ValueError(f"AlpacaBroker.fetch_bars: timeframe must look like 1Min, 15Min, "
                             f"1Hour, 1Day, 1Week or 1Month, got {timeframe!r}")
        if not (isinstance(limit, int) and 1 <= limit <= _BARS_PAGE):
            raise ValueError(f"AlpacaBroker.fetch_bars: limit must be 1 to {_BARS_PAGE}, "
                             f"got {limit!r}")
        params: dict[str, Any] = {"symbols": ",".join(syms), "timeframe": timeframe,
                                  "start": _rfc3339(start, "start"), "limit": limit,
                                  "feed": self.feed, "adjustment": adjustment, "sort": "asc"}
        if end is not None:
            params["end"] = _rfc3339(end, "end")
        endpoint = "GET /v2/stocks/bars"
        rows: dict[str, list[tuple[Any, ...]]] = {}
        seen_tokens: set[str] = set()
        while True:
            page = _object(self._get("/v2/stocks/bars", params, base=self.data_url), endpoint,
                           "a page of bars")
            if "bars" not in page:
                raise BrokerError(f"{_where(endpoint, 'bars')}: missing (fields: "
                                  f"{sorted(page)[:20]})")
            bars = page["bars"] or {}
            if not isinstance(bars, dict):
                raise BrokerError(f"{_where(endpoint, 'bars')}: expected an object of symbols, "
                                  f"got {type(bars).__name__}")
            for symbol, items in bars.items():
                if not isinstance(items, list):
                    raise BrokerError(f"{_where(endpoint, 'bars')}: bars of {symbol!r} are not "
                                      "a list")
                rows.setdefault(symbol, []).extend(_bar_rows(items, symbol, endpoint))
            token = page.get("next_page_token")
            if not token:
                break
            if not isinstance(token, str) or token in seen_tokens:
                raise BrokerError(f"{_where(endpoint, 'next_page_token')}: repeated or not a "
                                  f"string: {redact_truncate(repr(token), 80)}")
            seen_tokens.add(token)
            params["page_token"] = token
        return self._bars_frame(rows, endpoint)

    @staticmethod
    def _bars_frame(rows: dict[str, list[tuple[Any, ...]]], endpoint: str) -> pd.DataFrame:
        symbols = sorted(rows)
        flat = [r for s in symbols for r in rows[s]]
        try:
            ts = pd.to_datetime([r[0] for r in flat], utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise BrokerError(f"{_where(endpoint, 't')}: not RFC-3339 timestamps "
                              f"({redact_truncate(exc, 120)})") from None
        frame = pd.DataFrame({
            "timestamp": ts.as_unit("ns"),
            "symbol": [s for s in symbols for _ in rows[s]],
            **{col: np.fromiter((r[i] for r in flat), np.float64, len(flat))
               for i, col in enumerate(("open", "high", "low", "close", "volume"), start=1)}})
        frame = frame.sort_values(["symbol", "timestamp"], kind="stable", ignore_index=True)
        try:
            return validate(frame, source=f"Alpaca {endpoint}")
        except DataError as exc:
            raise BrokerError(str(exc)) from None
