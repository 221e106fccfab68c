"""The Alpaca adapter against the local Alpaca-shaped server, over real sockets on 127.0.0.1:
fills and bookkeeping, partial fills, rejections, 429/5xx/timeouts without double
submits, malformed answers, keys kept out of reprs, errors and logs, and bar pagination."""

from __future__ import annotations

import functools
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import BrokerError, BrokerUnavailable, OrderRejected
from alphatrade_lab.live.brokers import alpaca
from alphatrade_lab.live.brokers._http import RetryPolicy, retry_after
from alphatrade_lab.live.brokers.alpaca import (
    LIVE_URL,
    PAPER_URL,
    AlpacaBroker,
    parse_order,
    rejection_reason,
)
from alphatrade_lab.live.brokers.base import BarSource, Broker, fill_delta
from alphatrade_lab.live.orders import Intent, OrderRequest, OrderStatus
from alphatrade_lab.testing import LocalAlpaca

T0 = pd.Timestamp("2024-01-02 15:00", tz="UTC")
KEY_ID = "PKTESTKEYID7Q2W9E4R1"
SECRET = "sEcReT-9f8e7d6c5b4a39281706f5e4d3c2b1a0Zz"


def request(cid: str, symbol: str = "AAA", qty: float = 10, intent: Intent = Intent.OPEN_LONG
            ) -> OrderRequest:
    return OrderRequest(cid, symbol, intent, qty, T0, 100.0)


@pytest.fixture
def srv():
    with LocalAlpaca(cash=10_000.0, key_id=KEY_ID, secret_key=SECRET) as s:
        s.set_price("AAA", 100.0)
        s.set_price("BBB", 50.0)
        yield s


def make_broker(s: LocalAlpaca, **kw) -> AlpacaBroker:
    opts = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05} | kw
    return AlpacaBroker(s.key_id, s.secret_key, base_url=s.url, data_url=s.url, **opts)


@pytest.fixture
def broker(srv):
    with make_broker(srv) as b:
        yield b


def test_implements_the_broker_and_bar_source_protocols(broker):
    assert isinstance(broker, Broker) and isinstance(broker, BarSource)
    assert broker.name == "alpaca"


def test_submit_fills_books_cash_and_positions_and_sends_alpacas_shape(srv, broker):
    o = broker.submit(request("c-1", qty=10))
    assert (o.status, o.filled_qty, o.filled_avg_price, o.fees) == (OrderStatus.FILLED, 10, 100, 0)
    assert o.client_order_id == "c-1" and o.side == "buy" and o.broker_order_id
    (post,) = srv.requests("/v2/orders", "POST")
    assert post.json == {"symbol": "AAA", "qty": "10", "side": "buy", "type": "market",
                         "time_in_force": "day", "client_order_id": "c-1"}
    assert post.headers["APCA-API-KEY-ID"] == KEY_ID
    assert post.headers["APCA-API-SECRET-KEY"] == SECRET
    a = broker.account()
    assert (a.cash, a.equity, a.buying_power, a.currency) == (9_000, 10_000, 9_000, "USD")
    srv.set_price("AAA", 110.0)
    pos = broker.positions()
    assert list(pos) == ["AAA"]
    assert (pos["AAA"].qty, pos["AAA"].avg_entry_price, pos["AAA"].market_price) == (10, 100, 110)
    assert broker.account().equity == 9_000 + 10 * 110
    # sell 15: close the 10 long at 110 and open a 5 short at 110 (shorts allowed)
    s = broker.submit(request("c-2", qty=15, intent=Intent.TO_SHORT))
    assert s.side == "sell" and s.status is OrderStatus.FILLED
    pos = broker.positions()
    assert (pos["AAA"].qty, pos["AAA"].avg_entry_price) == (-5, 110)
    assert broker.account().cash == 9_000 + 15 * 110
    srv.set_price("AAA", 100.0)
    assert broker.account().equity == 9_000 + 15 * 110 - 5 * 100
    assert broker.get_order("c-1").broker_order_id == o.broker_order_id
    assert broker.open_orders() == []


def test_gtc_and_fractional_quantities_are_sent_as_decimal_strings(srv):
    with make_broker(srv, time_in_force="gtc") as b:
        o = b.submit(request("c-frac", qty=0.123456789))
    (post,) = srv.requests("/v2/orders", "POST")
    assert post.json["qty"] == "0.123456789" and post.json["time_in_force"] == "gtc"
    assert o.filled_qty == pytest.approx(0.123456789, abs=1e-12)


def test_partial_fills_read_through_fill_delta():
    with LocalAlpaca(cash=10_000.0, partial_fill=0.5) as s, make_broker(s) as b:
        s.set_price("AAA", 100.0)
        first = b.submit(request("c-p", qty=10))
        assert first.status is OrderStatus.PARTIALLY_FILLED
        assert (first.filled_qty, first.filled_avg_price) == (5, 100)
        s.set_price("AAA", 110.0)
        final = b.get_order("c-p")
        assert final.status is OrderStatus.FILLED and final.filled_qty == 10
        assert final.filled_avg_price == pytest.approx(105.0, rel=1e-12)
        f1 = fill_delta(None, first, T0)
        f2 = fill_delta(first, final, T0)
        assert (f1.qty, f1.price) == (5, 100)
        assert f2.qty == 5 and f2.price == pytest.approx(110.0, rel=1e-12)
        assert fill_delta(final, final, T0) is None
        # the fills account for the cash the server booked
        assert b.account().cash == pytest.approx(10_000 - f1.qty * f1.price - f2.qty * f2.price,
                                                 rel=1e-12)
        assert b.positions()["AAA"].qty == 10


def test_partial_fill_completes_on_the_next_status_request():
    with LocalAlpaca(cash=10_000.0, partial_fill=0.25) as s, make_broker(s) as b:
        s.set_price("AAA", 100.0)
        first = b.submit(request("c-q", qty=8))
        assert (first.status, first.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 2)
        done = b.get_order("c-q")
        assert (done.status, done.filled_qty, done.filled_avg_price) == (OrderStatus.FILLED, 8, 100)


@functools.cache
def _minute_bars(n: int) -> pd.DataFrame:
    """``n`` one-minute bars of AAA, BBB and CCC (random walks; CCC misses a few minutes)."""
    rng = np.random.default_rng(7)
    frames = []
    for k, symbol in enumerate(["AAA", "BBB", "CCC"]):
        close = (50.0 + 25 * k) * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[close[0], close[:-1]]
        minutes = np.arange(n) + (np.arange(n) >= n // 2) * 3 * (symbol == "CCC")
        frames.append(pd.DataFrame({
            "timestamp": T0 + pd.to_timedelta(minutes, unit="min"), "symbol": symbol,
            "open": open_, "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999, "close": close,
            "volume": rng.integers(100, 10_000, n).astype(float)}))
    return atl.data.validate(pd.concat(frames, ignore_index=True))


def _bars(n: int = 250) -> pd.DataFrame:
    return _minute_bars(n).copy()


def test_orders_fill_at_the_latest_close_by_the_clock_and_wait_without_one(broker):
    bars = _bars(30)
    with LocalAlpaca(cash=1e6) as s, make_broker(s) as b:
        s.load_bars(bars)
        t0 = bars["timestamp"].min()
        s.advance(t0)                                 # nothing has closed yet
        waiting = b.submit(request("c-w", "BBB", qty=3))
        assert waiting.status is OrderStatus.NEW and waiting.filled_qty == 0
        assert [o.client_order_id for o in b.open_orders()] == ["c-w"]
        s.advance(t0 + pd.Timedelta(minutes=10))      # bars opened up to t0+9min are closed
        g = bars[bars["symbol"] == "BBB"].set_index("timestamp")["close"]
        expected = g[g.index + pd.Timedelta(minutes=1) <= t0 + pd.Timedelta(minutes=10)].iloc[-1]
        filled = b.get_order("c-w")
        assert filled.status is OrderStatus.FILLED and filled.filled_avg_price == expected
        o = b.submit(request("c-x", "AAA", qty=1))
        a = bars[bars["symbol"] == "AAA"].set_index("timestamp")["close"]
        assert o.filled_avg_price == a[a.index <= t0 + pd.Timedelta(minutes=9)].iloc[-1]
        assert b.open_orders() == []


def test_cancel_open_orders_and_unknown_ones():
    bars = _bars(5)
    with LocalAlpaca() as s, make_broker(s) as b:
        s.load_bars(bars)
        s.advance(bars["timestamp"].min())
        b.submit(request("c-open", "AAA", qty=1))
        canceled = b.cancel("c-open")
        assert canceled.status is OrderStatus.CANCELED and canceled.filled_qty == 0
        assert b.open_orders() == []
        assert b.cancel("c-open").status is OrderStatus.CANCELED   # final: returned as it is
        assert b.cancel("nope") is None and b.get_order("nope") is None
        s.advance(bars["timestamp"].max() + pd.Timedelta(minutes=1))
        assert b.get_order("c-open").filled_qty == 0                # never fills afterwards
        assert b.positions() == {}


def test_an_engine_restarted_finds_its_orders_on_the_server():
    bars = _bars(5)
    with LocalAlpaca() as s:
        s.load_bars(bars)
        s.advance(bars["timestamp"].min())
        with make_broker(s) as first:
            first.submit(request("c-r", "CCC", qty=2))
        with make_broker(s) as second:      # a new process: no state but the server's
            assert [o.client_order_id for o in second.open_orders()] == ["c-r"]
            assert second.get_order("c-r").symbol == "CCC"


def test_rejections_raise_order_rejected_with_a_reason(srv, broker):
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("c-big", qty=101))          # 10,100 > 10,000 of cash
    assert e.value.reason == "insufficient_buying_power" and e.value.client_order_id == "c-big"
    assert "insufficient buying power" in str(e.value) and "POST /v2/orders" in str(e.value)
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("c-short", qty=201, intent=Intent.OPEN_SHORT))   # gross 20,100
    assert e.value.reason == "insufficient_buying_power"
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("c-zz", "ZZZZ", qty=1))
    assert e.value.reason == "unknown_symbol" and "ZZZZ" in str(e.value)
    assert srv.orders() == [] and broker.positions() == {}
    n = len(srv.requests("/v2/orders", "POST"))
    for bad in (0, -3, math.nan, math.inf):
        with pytest.raises(OrderRejected) as e:
            broker.submit(request("c-bad", qty=bad))
        assert e.value.reason == "invalid_qty"
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("x" * 49, qty=1))
    assert e.value.reason == "invalid_client_order_id"
    assert len(srv.requests("/v2/orders", "POST")) == n       # refused before sending
    # exactly the buying power goes through
    assert broker.submit(request("c-all", qty=100)).status is OrderStatus.FILLED


def test_the_server_rejects_a_bad_quantity_with_422(srv, broker):
    srv.fail_next("/v2/orders", 422, body={"code": 40010001, "message": "qty must be > 0"},
                  method="POST")
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("c-q0", qty=1))
    assert e.value.reason == "invalid_qty"


def test_429_waits_for_retry_after(srv, broker):
    srv.fail_next("/v2/orders", 429, headers={"Retry-After": "0.3"}, method="POST")
    t = time.perf_counter()
    o = broker.submit(request("c-429", qty=1))
    elapsed = time.perf_counter() - t
    assert o.status is OrderStatus.FILLED
    posts = srv.requests("/v2/orders", "POST")
    assert len(posts) == 2 and len(srv.orders()) == 1
    assert posts[1].t - posts[0].t >= 0.3 - 1e-3      # measured on the server's side
    assert 0.3 <= elapsed < 2.0
    # a GET too, and X-RateLimit-Reset (Alpaca's header) when there is no Retry-After
    srv.fail_next("/v2/account", 429,
                  headers={"X-RateLimit-Reset": str(time.time() + 0.2)})
    t = time.perf_counter()
    assert broker.account().cash == 9_900
    assert time.perf_counter() - t >= 0.15


def test_429_asking_longer_than_max_wait_gives_up_at_once(srv):
    srv.fail_next("/v2/account", 429, headers={"Retry-After": "120"}, times=5)
    with make_broker(srv, max_wait=1.0) as b:
        t = time.perf_counter()
        with pytest.raises(BrokerUnavailable, match=r"GET /v2/account.*429.*max_wait"):
            b.account()
        assert time.perf_counter() - t < 1.0


def test_5xx_is_retried_with_backoff_then_broker_unavailable(srv, broker):
    srv.fail_next("/v2/account", 503, times=2)
    assert broker.account().cash == 10_000
    assert len(srv.requests("/v2/account")) == 3
    srv.fail_next("/v2/positions", 500, times=10)
    with pytest.raises(BrokerUnavailable) as e:
        broker.positions()
    assert "GET /v2/positions" in str(e.value) and "HTTP 500" in str(e.value)
    assert "4 attempts" in str(e.value) and len(srv.requests("/v2/positions")) == 4
    # a POST that keeps failing: looked up before every retry, never taken, unavailable
    srv.fail_next("/v2/orders", 502, times=10, method="POST")
    with pytest.raises(BrokerUnavailable, match="POST /v2/orders") as e:
        broker.submit(request("c-5xx", qty=1))
    assert "c-5xx" in str(e.value)
    assert len(srv.requests("/v2/orders", "POST")) == 4
    assert len(srv.requests("/v2/orders:by_client_order_id")) == 3
    assert srv.orders() == []


def test_backoff_grows_exponentially(srv):
    srv.fail_next("/v2/account", 503, times=3)
    with make_broker(srv, backoff=0.05, max_backoff=1.0) as b:
        b.account()
    t = [r.t for r in srv.requests("/v2/account")]
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    # jitter draws each wait in [0.5, 1] x 0.05 * 2**k
    for k, gap in enumerate(gaps):
        assert 0.05 * 2 ** k * 0.5 - 2e-3 <= gap < 0.05 * 2 ** k + 0.25


def test_a_5xx_after_the_order_was_taken_does_not_submit_twice(srv, broker):
    srv.fail_next("/v2/orders", 503, method="POST")
    o = broker.submit(request("c-503", qty=2))
    assert o.status is OrderStatus.FILLED
    assert [d["client_order_id"] for d in srv.orders()] == ["c-503"]


def test_a_timeout_during_submit_does_not_submit_twice(srv):
    srv.delay_next("/v2/orders", 1.0, method="POST")        # taken, answered too late
    with make_broker(srv, timeout=0.3) as b:
        o = b.submit(request("c-slow", qty=10))
        assert o.status is OrderStatus.FILLED and o.filled_qty == 10
        assert len(srv.requests("/v2/orders", "POST")) == 1        # the server saw it once
        assert len(srv.requests("/v2/orders:by_client_order_id")) == 1
        assert len(srv.orders()) == 1 and srv.positions() == {"AAA": 10}
        assert b.positions()["AAA"].qty == 10


def test_a_request_lost_on_the_way_is_sent_again_once(srv):
    srv.delay_next("/v2/orders", 0.5, method="POST", process=False)   # never handled
    with make_broker(srv, timeout=0.2) as b:
        o = b.submit(request("c-lost", qty=3))
    assert o.status is OrderStatus.FILLED
    assert len(srv.requests("/v2/orders", "POST")) == 2
    assert len(srv.orders()) == 1 and srv.positions() == {"AAA": 3}


def test_timeouts_on_every_attempt_end_unavailable_saying_the_order_may_be_there(srv):
    srv.delay_next("/v2/orders", 0.4, times=20)      # posts and look-ups alike
    with make_broker(srv, timeout=0.1, max_retries=2) as b:
        with pytest.raises(BrokerUnavailable, match="may have reached Alpaca") as e:
            b.submit(request("c-hang", qty=1))
    assert "timed out" in str(e.value)
    assert len(srv.requests("/v2/orders", "POST")) == 1
    assert len(srv.orders()) == 1                    # the one post was taken: the engine
    time.sleep(0.5)                                  # finds it by its id afterwards
    with make_broker(srv) as b:
        assert b.get_order("c-hang").status is OrderStatus.FILLED


def test_a_duplicate_client_order_id_returns_the_existing_order(srv, broker):
    first = broker.submit(request("c-dup", qty=4))
    with make_broker(srv) as restarted:
        again = restarted.submit(request("c-dup", qty=5))   # sized again after a restart
    assert again.broker_order_id == first.broker_order_id and again.filled_qty == 4
    assert len(srv.orders()) == 1 and srv.positions() == {"AAA": 4}
    (dup,) = [r for r in srv.requests("/v2/orders", "POST")][1:]
    assert dup.json["client_order_id"] == "c-dup"
    with pytest.raises(BrokerError, match="belongs to another order"):
        broker.submit(request("c-dup", "BBB", qty=1))


def test_malformed_answers_raise_broker_error_naming_endpoint_and_field(srv, broker):
    srv.fail_next("/v2/account", 200, body="<html>gateway</html>")
    with pytest.raises(BrokerError, match=r"GET /v2/account.*not JSON"):
        broker.account()
    srv.fail_next("/v2/account", 200, body={"cash": "1", "buying_power": "1"})
    with pytest.raises(BrokerError, match=r"GET /v2/account, field 'equity': missing"):
        broker.account()
    srv.fail_next("/v2/account", 200, body={"cash": "abc", "equity": "1", "buying_power": "1"})
    with pytest.raises(BrokerError, match=r"field 'cash': expected a number"):
        broker.account()
    srv.fail_next("/v2/positions", 200, body={"not": "a list"})
    with pytest.raises(BrokerError, match=r"GET /v2/positions: expected a list"):
        broker.positions()
    srv.fail_next("/v2/positions", 200, body=[{"symbol": "AAA"}])
    with pytest.raises(BrokerError, match=r"field 'qty': missing"):
        broker.positions()
    srv.fail_next("/v2/orders", 200, body={"id": "x", "symbol": "AAA"}, method="POST")
    with pytest.raises(BrokerError, match=r"POST /v2/orders, field 'client_order_id'"):
        broker.submit(request("c-m", qty=1))
    srv.fail_next("/v2/orders:by_client_order_id", 200, body=[1, 2])
    with pytest.raises(BrokerError, match=r"by_client_order_id: expected an order"):
        broker.get_order("c-m")
    srv.fail_next("/v2/stocks/bars", 200, body={"bars": {"AAA": [{"o": 1}]}})
    with pytest.raises(BrokerError, match=r"stocks/bars, field 't'"):
        broker.fetch_bars(["AAA"], T0)
    good = {"id": "i", "client_order_id": "c", "symbol": "AAA", "side": "buy", "qty": "2",
            "filled_qty": "1", "filled_avg_price": None, "status": "partially_filled"}
    with pytest.raises(BrokerError, match="filled_avg_price"):
        parse_order(good)
    with pytest.raises(BrokerError, match="field 'side'"):
        parse_order(good | {"side": "hold", "filled_avg_price": "1"})


def test_wrong_or_missing_keys_are_a_broker_error_without_retries(srv):
    with AlpacaBroker(KEY_ID, "wrong-secret-123456789", base_url=srv.url, backoff=0.01) as b:
        with pytest.raises(BrokerError, match=r"authentication failed \(HTTP 403") as e:
            b.submit(request("c-auth", qty=1))
        assert not isinstance(e.value, OrderRejected)
        with pytest.raises(BrokerError, match="authentication failed"):
            b.account()
    assert len(srv.requests("/v2/orders", "POST")) == 1 and srv.orders() == []
    assert httpx.get(srv.url + "/v2/account").status_code == 401


def test_keys_never_appear_in_reprs_errors_or_logs(srv, caplog, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    texts = []
    wrong = "Wr0ng-secret-value-7d6c5b4a3928"
    with AlpacaBroker(KEY_ID, wrong, base_url=srv.url, data_url=srv.url, timeout=0.2,
                      max_retries=1, backoff=0.01) as bad:
        texts.append(repr(bad))
        with pytest.raises(BrokerError) as e:
            bad.account()
        texts.append(str(e.value))
    with make_broker(srv, timeout=0.2, max_retries=1) as b:
        texts.append(repr(b))
        srv.fail_next("/v2/orders", 503, times=5, method="POST")
        srv.fail_next("/v2/account", 200, body=f'{{"key": "{SECRET}"')   # echoed back, cut
        for call in (lambda: b.submit(request("c-k", qty=1)), b.account,
                     lambda: b.submit(request("c-z", "ZZZZ", qty=1))):
            with pytest.raises(BrokerError) as e:
                call()
            texts.append(str(e.value))
        b.submit(request("c-ok", qty=1))
        b.fetch_bars(["AAA"], T0)
    texts.append(caplog.text)
    assert "POST /v2/orders" in caplog.text     # the retries were logged
    for text in texts:
        for secret in (KEY_ID, SECRET, wrong):
            assert secret not in text
    assert "[REDACTED]" in repr(b) and srv.url in repr(b)


def test_keys_come_from_the_environment(srv, monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    with AlpacaBroker(base_url=srv.url) as b:
        assert b.account().cash == 10_000
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(BrokerError) as e:
        AlpacaBroker(base_url=srv.url)
    assert "APCA_API_SECRET_KEY" in str(e.value) and "APCA_API_KEY_ID" not in str(e.value)
    assert KEY_ID not in str(e.value)
    monkeypatch.delenv("APCA_API_KEY_ID")
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaBroker()


def test_paper_endpoint_by_default_live_only_when_passed():
    with AlpacaBroker("k" * 20, "s" * 40) as b:
        assert b.base_url == PAPER_URL and b.paper
    with AlpacaBroker("k" * 20, "s" * 40, base_url=LIVE_URL) as b:
        assert b.base_url == LIVE_URL and not b.paper
    with pytest.raises(ValueError, match="base_url"):
        AlpacaBroker("k" * 20, "s" * 40, base_url="https://user:pw@example.com")
    with pytest.raises(ValueError, match="time_in_force"):
        AlpacaBroker("k" * 20, "s" * 40, time_in_force="forever")


def test_fetch_bars_pages_through_to_the_loaded_bars():
    bars = _bars(250)
    with LocalAlpaca() as s, make_broker(s) as b:
        s.load_bars(bars)
        got = b.fetch_bars(["CCC", "AAA", "BBB"], bars["timestamp"].min(), "1Min", limit=100)
        pd.testing.assert_frame_equal(got, bars)
        pages = s.requests("/v2/stocks/bars")
        assert len(pages) == math.ceil(len(bars) / 100)
        assert all("feed=iex" in p.path for p in pages)
        # only bars closed by the clock; start and end filter by open time
        t0 = bars["timestamp"].min()
        s.advance(t0 + pd.Timedelta(minutes=100))
        got = b.fetch_bars(["AAA", "BBB", "CCC"], t0 + pd.Timedelta(minutes=50), limit=7)
        want = bars[(bars["timestamp"] >= t0 + pd.Timedelta(minutes=50))
                    & (bars["timestamp"] + pd.Timedelta(minutes=1)
                       <= t0 + pd.Timedelta(minutes=100))].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
        got = b.fetch_bars("AAA", t0, end=t0 + pd.Timedelta(minutes=4))
        assert got["timestamp"].tolist() == [t0 + pd.Timedelta(minutes=k) for k in range(5)]
        empty = b.fetch_bars(["QQQ"], t0)
        assert list(empty.columns) == list(bars.columns) and len(empty) == 0
        with pytest.raises(ValueError, match="timeframe"):
            b.fetch_bars(["AAA"], t0, "1 minute")


def test_alpaca_statuses_map_onto_the_five():
    base = {"id": "i", "client_order_id": "c", "symbol": "AAA", "side": "sell", "qty": "4",
            "filled_qty": "0", "filled_avg_price": None}
    cases = {"new": "new", "accepted": "new", "pending_new": "new", "held": "new",
             "pending_cancel": "new", "done_for_day": "new", "filled": "filled",
             "canceled": "canceled", "expired": "canceled", "replaced": "canceled",
             "rejected": "rejected", "partially_filled": "partially_filled"}
    for raw, want in cases.items():
        o = parse_order(base | {"status": raw})
        assert o.status.value == want and o.extra["alpaca_status"] == raw
    part = base | {"filled_qty": "1", "filled_avg_price": "10"}
    assert parse_order(part | {"status": "pending_cancel"}).status is OrderStatus.PARTIALLY_FILLED
    assert parse_order(part | {"status": "canceled"}).status is OrderStatus.CANCELED
    assert parse_order(base | {"status": "something_new"}).status is OrderStatus.NEW
    assert parse_order(base | {"status": "expired"}).reason == "expired"
    assert parse_order(base | {"side": "sell_short", "status": "new"}).side == "sell"
    assert rejection_reason(403, "insufficient qty available for order") == "insufficient_qty"
    assert rejection_reason(403, "account is not allowed to short") == "short_not_allowed"


def test_retry_after_forms():
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
                       now=pd.Timestamp("2015-10-21 07:27:58", tz="UTC").timestamp()) == 2.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"X-RateLimit-Reset": "1000"}, now=998.5) == 1.5
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_open_orders_pages_through_every_open_order(monkeypatch):
    monkeypatch.setattr(alpaca, "_ORDERS_PAGE", 3)
    bars = _bars(5)
    with LocalAlpaca() as s, make_broker(s) as b:
        s.load_bars(bars)
        s.advance(bars["timestamp"].min())
        cids = [f"c-{k}" for k in range(8)]
        for k, cid in enumerate(cids):
            b.submit(request(cid, ["AAA", "BBB", "CCC"][k % 3], qty=1))
        assert [o.client_order_id for o in b.open_orders()] == cids
        assert len(s.requests("/v2/orders", "GET")) == 3          # pages of 3, 3 and 2


def test_a_wrong_base_url_is_a_broker_error_not_a_rejection(srv):
    with AlpacaBroker(KEY_ID, SECRET, base_url=srv.url + "/nope", backoff=0.01) as b:
        with pytest.raises(BrokerError, match="HTTP 404") as e:
            b.submit(request("c-404", qty=1))
    assert not isinstance(e.value, OrderRejected)


def test_the_same_order_sent_from_many_threads_is_taken_once(srv):
    with make_broker(srv) as b, ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: b.submit(request("c-race", qty=3)), range(8)))
    assert len({o.broker_order_id for o in got}) == 1
    assert len(srv.orders()) == 1 and srv.positions() == {"AAA": 3}
    assert srv.cash == 10_000 - 3 * 100


def test_margin_multiplier_and_a_partial_fill_completed_by_advance():
    bars = _bars(20)
    t0 = bars["timestamp"].min()
    with LocalAlpaca(cash=1_000.0, multiplier=2.0, partial_fill=0.5) as s, make_broker(s) as b:
        s.load_bars(bars)
        s.advance(t0 + pd.Timedelta(minutes=1))          # the first bar has closed
        close = bars[bars["symbol"] == "AAA"].set_index("timestamp")["close"]
        qty = math.floor(2 * 1_000.0 / close.iloc[0])    # twice the equity, not more
        with pytest.raises(OrderRejected, match="insufficient buying power"):
            b.submit(request("c-3x", qty=qty + 1))
        first = b.submit(request("c-2x", qty=qty))
        assert first.filled_qty == qty / 2 and first.filled_avg_price == close.iloc[0]
        s.advance(t0 + pd.Timedelta(minutes=5))          # the rest fills at the new close
        final = b.get_order("c-2x")
        want = (close.iloc[0] + close.iloc[4]) / 2
        assert final.status is OrderStatus.FILLED
        assert final.filled_avg_price == pytest.approx(want, rel=1e-12)
        acct = b.account()
        assert acct.cash == pytest.approx(1_000.0 - qty / 2 * (close.iloc[0] + close.iloc[4]),
                                          rel=1e-12)
        assert acct.equity == pytest.approx(acct.cash + qty * close.iloc[4], rel=1e-12)


def test_a_polling_feed_over_the_adapter_yields_each_closed_bar_once():
    from alphatrade_lab.live.feeds import PollingFeed

    bars = _bars(30)
    t0 = bars["timestamp"].min()
    with LocalAlpaca() as s, make_broker(s) as b:
        s.load_bars(bars)
        now = [t0 + pd.Timedelta(minutes=10)]
        s.advance(now[0])
        feed = PollingFeed(b, ["AAA", "BBB", "CCC"], start=t0, interval=0.0, grace=0.0,
                           clock=lambda: now[0], max_polls=1)
        first = [x for x in feed if x is not None]
        now[0] += pd.Timedelta(minutes=5)
        s.advance(now[0])
        feed.start = max(x.timestamp for x in first) + pd.Timedelta(minutes=1)
        second = [x for x in feed if x is not None]
    closed = bars[bars["timestamp"] + pd.Timedelta(minutes=1) <= now[0]]
    want = sorted(closed.itertuples(index=False, name=None), key=lambda r: (r[0], r[1]))
    got = [tuple(x) for x in first + second]
    assert got == want


def test_the_server_refuses_a_body_over_its_limit():
    with LocalAlpaca(max_body=1000) as s:
        h = {"APCA-API-KEY-ID": s.key_id, "APCA-API-SECRET-KEY": s.secret_key}
        r = httpx.post(s.url + "/v2/orders", headers=h, content=b"x" * 5000)
        assert r.status_code == 413 and s.orders() == []
        assert httpx.get(s.url + "/v2/account", headers=h).status_code == 200
