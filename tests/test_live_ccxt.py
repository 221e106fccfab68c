"""The ccxt adapter against the local Binance-spot-shaped exchange, over real sockets on
127.0.0.1: fills with fees, partial fills, rejections, 429/5xx/timeouts without double
submits, duplicate client ids, malformed answers, clock skew, keys kept out of reprs,
errors and logs, and kline pagination against the loaded bars."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ccxt")   # the 'live' extra

from alphatrade_lab.errors import BrokerError, BrokerUnavailable, OrderRejected
from alphatrade_lab.live.brokers.base import BarSource, Broker, fill_delta
from alphatrade_lab.live.brokers.exchange import CCXTBroker
from alphatrade_lab.live.orders import Intent, OrderRequest, OrderStatus
from alphatrade_lab.testing import LocalExchange

T0 = pd.Timestamp("2024-01-02 15:00", tz="UTC")
KEY = "kEy-5Gq8Zr2Lw9Xt4Nv7Bm3Hc6"
SECRET = "sEcReT-9f8e7d6c5b4a39281706f5e4d3c2b1a0Zz"
KNOWN_PATHS = {"/api/v3/ping", "/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/klines",
               "/api/v3/ticker/price", "/api/v3/order", "/api/v3/openOrders",
               "/api/v3/account", "/api/v3/myTrades"}


def request(cid: str, symbol: str = "BTCUSDT", qty: float = 0.1,
            intent: Intent = Intent.OPEN_LONG, price: float = 50_000.0) -> OrderRequest:
    return OrderRequest(cid, symbol, intent, qty, T0, price)


def make_exchange(**kw) -> LocalExchange:
    opts = {"api_key": KEY, "secret": SECRET} | kw
    return LocalExchange(opts.pop("balances", {"USDT": 10_000.0}), **opts)


@pytest.fixture
def ex():
    with make_exchange() as s:
        s.set_price("BTCUSDT", 50_000.0)
        s.set_price("ETHUSDT", 2_000.0)
        yield s


def make_broker(s: LocalExchange, **kw) -> CCXTBroker:
    opts = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05,
            "rate_limit": False} | kw
    return CCXTBroker(api_key=s.api_key, secret=s.secret, urls=s.url, **opts)


@pytest.fixture
def broker(ex):
    with make_broker(ex) as b:
        yield b


def posts(s: LocalExchange) -> int:
    return len(s.requests("/api/v3/order", "POST"))


# ---------------------------------------------------------------------------- basics
def test_implements_the_broker_and_bar_source_protocols(broker):
    assert isinstance(broker, Broker) and isinstance(broker, BarSource)
    assert broker.name == "ccxt:binance"


def test_sandbox_is_the_default_and_live_needs_saying_so():
    b = CCXTBroker(api_key=KEY, secret=SECRET)
    assert b.sandbox and "testnet.binance.vision" in b._ex.urls["api"]["private"]
    live = CCXTBroker(api_key=KEY, secret=SECRET, sandbox=False)
    assert not live.sandbox and live._ex.urls["api"]["private"] == \
        "https://api.binance.com/api/v3"
    with pytest.raises(ValueError, match="binance"):
        CCXTBroker("kraken", api_key=KEY, secret=SECRET)


def test_load_markets_asks_only_for_spot_exchange_info(ex, broker):
    broker.account()
    paths = [r.path for r in ex.requests()]
    assert paths[0] == "/api/v3/exchangeInfo" and paths.count("/api/v3/exchangeInfo") == 1
    assert set(paths) <= KNOWN_PATHS  # no sapi currencies, margin pairs or futures
    m = broker._ex.markets["BTC/USDT"]
    assert m["precision"]["amount"] == 1e-05 and m["limits"]["cost"]["min"] == 5.0


# ---------------------------------------------------------------------------- fills
def test_market_buy_fills_with_the_commission_in_the_quote(ex, broker):
    o = broker.submit(request("atl-buy-1", qty=0.1))
    assert (o.status, o.side, o.qty, o.filled_qty) == (OrderStatus.FILLED, "buy", 0.1, 0.1)
    assert o.filled_avg_price == 50_000.0
    assert o.fees == pytest.approx(0.1 * 50_000 * 0.001, abs=1e-9)     # 5.0 USDT
    assert o.symbol == "BTCUSDT" and o.client_order_id == "atl-buy-1" and o.broker_order_id
    assert ex.balance("USDT") == (pytest.approx(10_000 - 5_000 - 5.0), 0.0)
    assert ex.balance("BTC") == (pytest.approx(0.1), 0.0)
    pos = broker.positions()
    assert list(pos) == ["BTCUSDT"] and pos["BTCUSDT"].qty == pytest.approx(0.1)
    assert pos["BTCUSDT"].market_price == 50_000.0
    acct = broker.account()
    assert acct.currency == "USDT" and acct.cash == pytest.approx(4_995.0)
    assert acct.equity == pytest.approx(4_995.0 + 5_000.0)
    ex.set_price("BTCUSDT", 60_000.0)
    assert broker.account().equity == pytest.approx(4_995.0 + 6_000.0)
    # a sell of what was bought: commission again in the quote
    s = broker.submit(request("atl-sell-1", qty=0.1, intent=Intent.CLOSE_LONG,
                              price=60_000.0))
    assert s.side == "sell" and s.fees == pytest.approx(6.0)
    assert broker.positions() == {}
    assert broker.account().cash == pytest.approx(4_995.0 + 6_000.0 - 6.0)


def test_a_looked_up_order_gets_its_fees_from_its_trades(ex, broker):
    broker.submit(request("atl-fee-1", qty=0.02))
    # a restarted broker (no cache; it learns the symbol from symbols=): Binance's
    # GET /api/v3/order carries no fills, so the fees come from the order's trades
    with make_broker(ex, symbols=["BTCUSDT"]) as fresh:
        o = fresh.get_order("atl-fee-1")
    assert o is not None and o.fees == pytest.approx(0.02 * 50_000 * 0.001)
    assert len(ex.requests("/api/v3/myTrades")) == 1


def test_a_commission_in_the_base_asset_is_converted_at_the_fill_price():
    with make_exchange(commission="received") as ex:
        ex.set_price("BTCUSDT", 50_000.0)
        o = make_broker(ex).submit(request("atl-base-1", qty=0.1))
        # 0.1% of 0.1 BTC = 0.0001 BTC, worth 5 USDT at 50,000
        assert o.fees == pytest.approx(5.0) and "other_fees" not in o.extra
        assert ex.balance("BTC")[0] == pytest.approx(0.0999)
        assert make_broker(ex).positions()["BTCUSDT"].qty == pytest.approx(0.0999)


def test_spot_refuses_shorts_before_sending(ex, broker):
    for intent in (Intent.OPEN_SHORT, Intent.TO_SHORT):
        with pytest.raises(OrderRejected) as e:
            broker.submit(request(f"atl-short-{intent.value}", intent=intent))
        assert e.value.reason == "short_not_allowed"
    assert ex.requests() == []


def test_quantities_are_cut_to_the_step_and_minimums_refused_before_sending(ex, broker):
    o = broker.submit(request("atl-step-1", qty=0.123456789))
    assert o.qty == 0.12345 and o.filled_qty == 0.12345          # truncated to 1e-5
    before = posts(ex)
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("atl-step-2", qty=0.000001))        # under one step
    assert e.value.reason == "invalid_qty" and e.value.client_order_id == "atl-step-2"
    with pytest.raises(OrderRejected, match="notional") as e:
        broker.submit(request("atl-step-3", qty=0.00005))         # 2.5 USDT < 5
    assert e.value.reason == "invalid_qty"
    assert posts(ex) == before


def test_market_orders_fill_at_the_latest_closed_bar(ex, broker):
    bars = make_bars(["BTCUSDT"], 10)
    ex.set_price("BTCUSDT", None)
    ex.load_bars(bars)
    ex.advance(bars["timestamp"].iloc[4] + pd.Timedelta("30s"))   # bars 0..3 closed
    o = broker.submit(request("atl-bar-1", qty=1.0, price=bars["close"].iloc[3]))
    assert o.filled_avg_price == pytest.approx(bars["close"].iloc[3])


# ---------------------------------------------------------------------------- partial fills
def test_partial_fills_come_out_of_fill_delta():
    with make_exchange(partial_fill=0.4) as ex:
        ex.set_price("BTCUSDT", 50_000.0)
        broker = make_broker(ex)
        o1 = broker.submit(request("atl-part-1", qty=0.1))
        assert o1.status is OrderStatus.PARTIALLY_FILLED and o1.filled_qty == 0.04
        f1 = fill_delta(None, o1, T0)
        assert (f1.qty, f1.price, f1.fees) == (0.04, 50_000.0, pytest.approx(2.0))
        assert [o.client_order_id for o in broker.open_orders()] == ["atl-part-1"]
        ex.set_price("BTCUSDT", 51_000.0)
        assert ex.fill_open() == 1
        o2 = broker.get_order("atl-part-1")
        assert o2.status is OrderStatus.FILLED and o2.filled_qty == pytest.approx(0.1)
        f2 = fill_delta(o1, o2, T0)
        assert f2.qty == pytest.approx(0.06) and f2.price == pytest.approx(51_000.0)
        assert f2.fees == pytest.approx(0.06 * 51_000 * 0.001)
        assert broker.open_orders() == []
        # the exchange's books agree: 10,000 - 2,000 - 2 - 3,060 - 3.06
        assert ex.balance("USDT")[0] == pytest.approx(10_000 - 2_002 - 3_063.06)


def test_cancel_releases_the_rest_and_unknown_ids_are_none():
    with make_exchange(partial_fill=0.5) as ex:
        ex.set_price("BTCUSDT", 50_000.0)
        broker = make_broker(ex)
        broker.submit(request("atl-cx-1", qty=0.1))
        assert ex.balance("USDT")[1] > 0                     # the rest is held
        c = broker.cancel("atl-cx-1")
        assert c.status is OrderStatus.CANCELED and c.filled_qty == pytest.approx(0.05)
        assert ex.balance("USDT") == (pytest.approx(10_000 - 2_500 - 2.5), 0.0)
        assert broker.cancel("atl-cx-1").status is OrderStatus.CANCELED   # already final
        assert broker.cancel("atl-nope") is None and broker.get_order("atl-nope") is None


def test_a_restarted_broker_finds_its_open_orders_without_knowing_their_symbol():
    with make_exchange(partial_fill=0.5) as ex:
        ex.set_price("ETHUSDT", 2_000.0)
        make_broker(ex).submit(request("atl-rs-1", symbol="ETHUSDT", qty=1.0, price=2_000.0))
        fresh = make_broker(ex)                       # Binance looks orders up per symbol
        o = fresh.get_order("atl-rs-1")               # found through GET openOrders
        assert o.symbol == "ETHUSDT" and o.status is OrderStatus.PARTIALLY_FILLED
        assert o.fees == pytest.approx(0.5 * 2_000 * 0.001)
        assert make_broker(ex).cancel("atl-rs-1").status is OrderStatus.CANCELED
        assert make_broker(ex).get_order("atl-rs-1") is None     # final, symbol not given
        assert make_broker(ex, symbols=["ETHUSDT"]).get_order("atl-rs-1").status is \
            OrderStatus.CANCELED


# ---------------------------------------------------------------------------- rejections
def test_insufficient_balance_is_a_rejection_with_a_reason(ex, broker):
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("atl-big-1", qty=1.0))          # 50,000 > 10,000 USDT
    assert e.value.reason == "insufficient_buying_power"
    assert "insufficient balance" in str(e.value) and "atl-big-1" in str(e.value)
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("atl-big-2", qty=0.1, intent=Intent.CLOSE_LONG))  # no BTC
    assert e.value.reason == "insufficient_qty"
    assert ex.orders() == []


def test_unknown_symbols_are_rejections(ex, broker):
    with pytest.raises(OrderRejected) as e:
        broker.submit(request("atl-sym-1", symbol="DOGEUSDT"))
    assert e.value.reason == "unknown_symbol" and posts(ex) == 0   # refused before sending
    broker.submit(request("atl-sym-2", symbol="ETH/USDT", qty=0.01, price=2_000.0))
    ex.delist("ETHUSDT")                                  # the exchange's -1121
    with pytest.raises(OrderRejected, match="Invalid symbol") as e:
        broker.submit(request("atl-sym-3", symbol="ETH/USDT", qty=0.01, price=2_000.0))
    assert e.value.reason == "unknown_symbol"


# ---------------------------------------------------------------------------- retries
def test_429_waits_what_retry_after_asks(ex, broker):
    ex.fail_next("/api/v3/order", 429, headers={"Retry-After": "0.3"}, method="POST")
    t = time.monotonic()
    o = broker.submit(request("atl-429-1"))
    waited = time.monotonic() - t
    assert o.status is OrderStatus.FILLED and waited >= 0.3
    assert posts(ex) == 2 and len(ex.orders()) == 1


def test_429_asking_more_than_max_wait_is_unavailable_at_once(ex):
    broker = make_broker(ex, max_wait=1.0)
    ex.fail_next("/api/v3/order", 429, headers={"Retry-After": "30"}, method="POST")
    t = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="rate limited"):
        broker.submit(request("atl-429-2"))
    assert time.monotonic() - t < 2.0 and ex.orders() == []


def test_5xx_is_retried_then_unavailable(ex, broker):
    ex.fail_next("/api/v3/order", 503, times=2, method="POST")
    o = broker.submit(request("atl-5xx-1"))
    assert o.status is OrderStatus.FILLED and posts(ex) == 3 and len(ex.orders()) == 1
    n_get = len(ex.requests("/api/v3/order", "GET"))
    ex.fail_next("/api/v3/order", 500, times=10, method="POST")
    with pytest.raises(BrokerUnavailable, match="4 attempts") as e:
        broker.submit(request("atl-5xx-2"))
    assert "POST /api/v3/order" in str(e.value)
    assert len(ex.orders()) == 1                        # nothing went through
    # after each uncertain failure the order was looked up before trying again
    assert len(ex.requests("/api/v3/order", "GET")) - n_get == 1 + 3


def test_a_timeout_during_submit_does_not_submit_twice(ex):
    broker = make_broker(ex, timeout=0.2)
    ex.delay_next("/api/v3/order", 0.6, method="POST")  # taken, but the answer is late
    o = broker.submit(request("atl-slow-1"))
    assert o.status is OrderStatus.FILLED and o.client_order_id == "atl-slow-1"
    assert posts(ex) == 1 and len(ex.orders()) == 1
    assert ex.balance("BTC")[0] == pytest.approx(0.1)   # bought once


def test_execution_status_unknown_is_looked_up_then_sent_once_more(ex, broker):
    ex.delay_next("/api/v3/order", 0.01, method="POST", process=False)   # 504 -1007
    o = broker.submit(request("atl-1007-1"))
    assert o.status is OrderStatus.FILLED
    assert posts(ex) == 2 and len(ex.orders()) == 1       # the lookup said: not there


def test_no_second_post_while_the_lookup_cannot_tell(ex):
    broker = make_broker(ex, timeout=0.2, lookup_before_submit=False)
    ex.delay_next("/api/v3/order", 0.6, method="POST")  # taken, answer late
    ex.fail_next("/api/v3/order", 503, times=100, method="GET")   # and lookups fail
    with pytest.raises(BrokerUnavailable, match="may have reached the exchange"):
        broker.submit(request("atl-blind-1"))
    assert posts(ex) == 1 and len(ex.orders()) == 1
    ex.clear_faults()
    assert broker.get_order("atl-blind-1").status is OrderStatus.FILLED


def test_unreachable_exchange_is_unavailable():
    with make_exchange() as ex:
        url, key, secret = ex.url, ex.api_key, ex.secret
    broker = CCXTBroker(api_key=key, secret=secret, urls=url, timeout=0.2, max_retries=2,
                        backoff=0.01, rate_limit=False)
    with pytest.raises(BrokerUnavailable, match="3 attempts"):
        broker.account()


def test_clock_skew_resyncs_once(ex, broker):
    ex.time_offset_ms = 120_000          # the exchange's clock is 2 minutes ahead
    o = broker.submit(request("atl-skew-1"))
    assert o.status is OrderStatus.FILLED
    assert len(ex.requests("/api/v3/time")) == 1 and len(ex.orders()) == 1


# ---------------------------------------------------------------------------- duplicates
def test_a_restarted_broker_returns_the_existing_order_instead_of_sending_it(ex, broker):
    first = broker.submit(request("atl-dup-1"))
    again = make_broker(ex).submit(request("atl-dup-1"))      # a restart, same request
    assert again.broker_order_id == first.broker_order_id
    assert again.status is OrderStatus.FILLED and posts(ex) == 1 and len(ex.orders()) == 1


def test_duplicate_order_sent_returns_the_open_order():
    with make_exchange(partial_fill=0.5) as ex:
        ex.set_price("BTCUSDT", 50_000.0)
        first = make_broker(ex).submit(request("atl-dup-2"))
        broker = make_broker(ex, lookup_before_submit=False)
        again = broker.submit(request("atl-dup-2"))           # -2010 Duplicate order sent.
        assert posts(ex) == 2 and len(ex.orders()) == 1
        assert again.broker_order_id == first.broker_order_id
        assert again.status is OrderStatus.PARTIALLY_FILLED


# ---------------------------------------------------------------------------- bad answers
def test_malformed_json_is_a_broker_error(ex, broker):
    ex.fail_next("/api/v3/account", 200, "{not json")
    with pytest.raises(BrokerError, match="GET /api/v3/account.*malformed") as e:
        broker.account()
    assert not isinstance(e.value, BrokerUnavailable | OrderRejected)
    ex.fail_next("/api/v3/order", 200, {"hello": "world"}, method="GET")
    with pytest.raises(BrokerError, match="GET /api/v3/order.*malformed"):
        broker.submit(request("atl-mal-1"))  # the lookup before sending gets junk
    assert posts(ex) == 0
    ex.fail_next("/api/v3/order", 200, "<html>oops</html>", method="POST")
    with pytest.raises(BrokerError, match="POST /api/v3/order"):
        make_broker(ex, lookup_before_submit=False).submit(request("atl-mal-2"))


def test_the_server_checks_key_and_signature(ex):
    def call(key: str, secret: str) -> tuple[int, dict]:
        q = f"timestamp={int(time.time() * 1000)}"
        sig = hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"{ex.url}/api/v3/account?{q}&signature={sig}",
                                     headers={"X-MBX-APIKEY": key})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert call(KEY, SECRET)[0] == 200
    assert call(KEY, "wrong-secret") == (400, {"code": -1022, "msg":
                                               "Signature for this request is not valid."})
    assert call("wrong-key", SECRET)[1]["code"] == -2015


def test_the_server_refuses_a_body_over_its_limit():
    with make_exchange(max_body=1000) as ex:
        req = urllib.request.Request(ex.url + "/api/v3/order", data=b"x" * 5000,
                                     method="POST", headers={"X-MBX-APIKEY": KEY})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 413 and ex.orders() == []
        with urllib.request.urlopen(ex.url + "/api/v3/ping") as r:
            assert r.status == 200


# ---------------------------------------------------------------------------- secrets
def test_keys_never_in_repr_errors_or_logs(ex, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    broker = make_broker(ex)
    errors = []
    broker.submit(request("atl-sec-1"))
    for fn in (lambda: broker.submit(request("atl-sec-2", qty=5.0)),
               lambda: broker.submit(request("atl-sec-3", symbol="NOPEUSDT"))):
        with pytest.raises(OrderRejected) as e:
            fn()
        errors.append(str(e.value))
    ex.fail_next("/api/v3/order", 503, times=10, method="POST")
    with pytest.raises(BrokerUnavailable) as e:
        broker.submit(request("atl-sec-4"))
    errors.append(str(e.value))
    bad = CCXTBroker(api_key=KEY, secret="another-secret-8d7c6b5a4f3e", urls=ex.url,
                     rate_limit=False, max_retries=0)
    with pytest.raises(BrokerError, match="authentication") as e:
        bad.account()
    errors.append(str(e.value))
    assert "X-MBX-APIKEY" in caplog.text               # ccxt's request log was captured
    for text in (repr(broker), repr(bad), *errors, caplog.text):
        assert KEY not in text and SECRET not in text
        assert "another-secret-8d7c6b5a4f3e" not in text
    # keys from the environment; a missing one is named, its value never shown
    for v in ("CCXT_API_KEY", "CCXT_SECRET", "BINANCE_API_KEY", "BINANCE_SECRET"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    with pytest.raises(BrokerError, match="CCXT_SECRET or BINANCE_SECRET") as e:
        CCXTBroker(urls=ex.url)
    assert "API_KEY" not in str(e.value) and KEY not in str(e.value)
    monkeypatch.setenv("CCXT_SECRET", SECRET)
    assert make_env_broker(ex).account().cash == pytest.approx(10_000 - 5_005.0)


def make_env_broker(ex: LocalExchange) -> CCXTBroker:
    return CCXTBroker(urls=ex.url, rate_limit=False, timeout=2.0)


# ---------------------------------------------------------------------------- bars
def make_bars(symbols: list[str], n: int, start: pd.Timestamp = T0, seed: int = 7
              ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k, s in enumerate(symbols):
        close = np.round(100.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.001, n))), 2)
        open_ = np.round(np.r_[close[0], close[:-1]], 2)
        frames.append(pd.DataFrame({
            "timestamp": start + pd.to_timedelta(np.arange(n), unit="min"), "symbol": s,
            "open": open_, "high": np.round(np.maximum(open_, close) + 0.05, 2),
            "low": np.round(np.minimum(open_, close) - 0.05, 2),
            "volume": np.round(rng.uniform(1, 10, n), 4), "close": close}))
    cols = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    return pd.concat(frames, ignore_index=True)[cols]


def test_fetch_bars_pages_through_every_loaded_bar(ex, broker):
    bars = make_bars(["BTCUSDT", "ETHUSDT"], 2_500)
    ex.load_bars(bars)
    ex.advance(T0 + pd.Timedelta(minutes=2_500))          # every bar closed
    got = broker.fetch_bars(["BTCUSDT", "ETHUSDT"], T0, "1m")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), bars, check_dtype=False,
                                  check_categorical=False, check_exact=True)
    assert len(ex.requests("/api/v3/klines")) == 2 * 3    # 1000 + 1000 + 500 each
    # a later start and an end; names as the caller gave them
    mid = broker.fetch_bars("BTC/USDT", T0 + pd.Timedelta(minutes=1_500), "1m",
                            end=T0 + pd.Timedelta(minutes=1_600))
    assert list(mid["symbol"].unique()) == ["BTC/USDT"] and len(mid) == 101
    assert mid["close"].tolist() == bars["close"].iloc[1_500:1_601].tolist()


def test_klines_serve_only_closed_bars(ex, broker):
    bars = make_bars(["BTCUSDT"], 300)
    ex.load_bars(bars)
    ex.advance(T0 + pd.Timedelta(minutes=100, seconds=30))   # bar 100 is still forming
    got = broker.fetch_bars(["BTCUSDT"], T0)
    assert len(got) == 100 and got["timestamp"].iloc[-1] == T0 + pd.Timedelta(minutes=99)
    with pytest.raises(ValueError, match="timeframe"):
        broker.fetch_bars(["BTCUSDT"], T0, "7m")
    # PollingFeed's default spelling is Alpaca's: the same bars
    pd.testing.assert_frame_equal(broker.fetch_bars(["BTCUSDT"], T0, "1Min"), got)
    with pytest.raises(BrokerError, match="no spot market"):
        broker.fetch_bars(["NOPEUSDT"], T0)


def test_a_polling_feed_over_the_adapter_yields_each_closed_bar_once(ex, broker):
    from alphatrade_lab.live.feeds import PollingFeed

    bars = make_bars(["BTCUSDT", "ETHUSDT"], 30)
    ex.load_bars(bars)
    now = [T0 + pd.Timedelta(minutes=10)]
    ex.advance(now[0])
    feed = PollingFeed(broker, ["BTCUSDT", "ETHUSDT"], timeframe="1m", start=T0,
                       interval=0.0, grace=0.0, clock=lambda: now[0], max_polls=1)
    first = [x for x in feed if x is not None]
    now[0] += pd.Timedelta(minutes=5)
    ex.advance(now[0])
    feed.start = max(x.timestamp for x in first) + pd.Timedelta(minutes=1)
    second = [x for x in feed if x is not None]
    closed = bars[bars["timestamp"] + pd.Timedelta(minutes=1) <= now[0]]
    want = sorted(closed.itertuples(index=False, name=None), key=lambda r: (r[0], r[1]))
    assert [tuple(x) for x in first + second] == want and len(want) == 30


# ---------------------------------------------------------------------------- the engine
def test_the_engine_trades_through_the_adapter_and_reconciles_with_the_backtest():
    import alphatrade_lab as atl
    from alphatrade_lab.live import Engine, PollingFeed, SignalStrategy, reconcile

    def cross(bars):
        c = atl.data.to_wide(bars, "close")
        f, s = c.rolling(4).mean(), c.rolling(12).mean()
        return atl.signals.crossed_above(f, s), atl.signals.crossed_below(f, s)

    class Stepper:   # one bar closes before each poll: orders fill at that bar's close
        def __init__(self, broker, server, closes):
            self.broker, self.server, self.closes = broker, server, iter(closes)

        def fetch_bars(self, symbols, start, timeframe):
            self.server.advance(next(self.closes))
            return self.broker.fetch_bars(symbols, start, timeframe)

    bars = atl.data.load_sample(["AAA", "BBB"])
    bars = bars[bars["timestamp"] < bars["timestamp"].min() + pd.Timedelta("90min")]
    bars = bars.assign(symbol=bars["symbol"].astype(str) + "USDT").reset_index(drop=True)
    times, bar = sorted(bars["timestamp"].unique()), pd.Timedelta("1min")
    with make_exchange(markets=["AAAUSDT", "BBBUSDT"], fee_rate=0.0) as srv:
        srv.load_bars(bars, "1m")
        broker = make_broker(srv)
        feed = PollingFeed(Stepper(broker, srv, [t + bar for t in times]),
                           ["AAAUSDT", "BBBUSDT"], timeframe="1m", bar=bar, start=times[0],
                           interval=0.0, grace=0.0, max_polls=len(times),
                           clock=srv.clock)
        result = Engine(feed, SignalStrategy(cross, 13), broker, run_id="ccxt-run",
                        direction="longonly", size=0.45).run()
        server_orders = srv.orders()
    assert result.bars == len(bars) and len(result.fills) >= 6
    assert sorted(o["clientOrderId"] for o in server_orders) == sorted(
        result.orders["client_order_id"])
    pf = atl.backtest.from_signals(atl.data.to_wide(bars, "close"), *cross(bars), size=0.45,
                                   cash_sharing=True, init_cash=10_000.0)
    rec = reconcile(result, pf)
    kinds = rec.summary().set_index("kind")["count"]
    assert kinds.drop("size").sum() == 0, rec.differences
    # sizes differ only by the market's step (0.00001 units, truncated)
    d = rec.differences
    assert (abs(d["value"]) <= 1e-5 * d["backtest_value"]).all()
