"""The engine against the real adapters, over real sockets to servers on 127.0.0.1 that
follow Alpaca's and Binance's request and response shapes: bars polled from the broker's
bars endpoint, orders sized from the account, fills read back, and reconciliation with the
backtest of the same bars; and a live run killed with SIGKILL and restarted that never
sends an order twice."""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.live import Engine, PollingFeed, ReplayFeed, SignalStrategy, reconcile
from alphatrade_lab.live.brokers.alpaca import AlpacaBroker
from alphatrade_lab.testing import LocalAlpaca


def cross(bars):
    c = atl.data.to_wide(bars, "close")
    f, s = c.rolling(4).mean(), c.rolling(12).mean()
    return atl.signals.crossed_above(f, s), atl.signals.crossed_below(f, s)


class Stepper:
    """A bars source that moves the server's clock one bar forward before each poll, so
    that the engine sees one closed bar per poll and its orders fill at that bar's close."""

    def __init__(self, broker, server, closes):
        self.broker, self.server, self.closes = broker, server, iter(closes)

    def fetch_bars(self, symbols, start, timeframe):
        self.server.advance(next(self.closes))
        return self.broker.fetch_bars(symbols, start, timeframe)


@pytest.fixture(scope="module")
def bars():
    b = atl.data.load_sample(["AAA", "BBB"])
    return b[b["timestamp"] < b["timestamp"].min() + pd.Timedelta("120min")].reset_index(
        drop=True)


def test_engine_trades_through_alpaca_and_reconciles_with_the_backtest(bars):
    times = sorted(bars["timestamp"].unique())
    bar = pd.Timedelta("1min")
    with LocalAlpaca(cash=10_000.0) as srv:
        srv.load_bars(bars, bar)
        broker = AlpacaBroker(srv.key_id, srv.secret_key, base_url=srv.url, data_url=srv.url,
                              backoff=0.01)
        feed = PollingFeed(Stepper(broker, srv, [t + bar for t in times]), ["AAA", "BBB"],
                           bar=bar, start=times[0], interval=0.0, grace=0.0,
                           clock=srv.clock, max_polls=len(times))
        result = Engine(feed, SignalStrategy(cross, 13), broker, run_id="alpaca-run",
                        direction="longonly", size=0.45).run()
        server_orders = srv.orders()
    assert result.bars == len(bars)
    assert len(result.fills) > 10 and len(server_orders) == len(result.orders)
    assert {o["client_order_id"] for o in server_orders} == set(
        result.orders["client_order_id"])
    # The account is one cash pool: its backtest is the shared-cash one, sized at 45%.
    pf = atl.backtest.from_signals(atl.data.to_wide(bars, "close"), *cross(bars), size=0.45,
                                   cash_sharing=True, init_cash=10_000.0)
    rec = reconcile(result, pf)
    kinds = rec.summary().set_index("kind")["count"]
    # Same bars, same prices: the only differences allowed are sizes in the last digits
    # (the engine sizes from the account's cash as the broker reports it, in decimals).
    assert kinds.drop("size").sum() == 0, rec.differences
    sized = rec.differences
    assert (abs(sized["value"]) <= 1e-6 * sized["backtest_value"]).all()


def live_config(tmp, srv, bars_start):
    cfg = tmp / "live.toml"
    cfg.write_text(f"""
[broker]
kind = "alpaca"
base_url = "{srv.url}"
data_url = "{srv.url}"

[feed]
kind = "poll"
symbols = ["AAA", "BBB", "CCC"]
start = "{bars_start.isoformat()}"
interval = 0.05
grace = 0.0

[strategy]
bundle = "{tmp / 'model.atlb'}"
threshold = 0.4
direction = "longonly"
size = 0.3

[store]
path = "{tmp / 'live.duckdb'}"

[run]
id = "killed-live-run"
flush_every = 25
max_bars = 1400
""")
    return cfg


@pytest.mark.slow
def test_killed_live_run_never_sends_an_order_twice(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = atl.data.load_sample(["AAA", "BBB", "CCC"])
    b15 = atl.data.resample(bars, "15min")
    X, y = atl.models.align(atl.features.technical(b15), atl.models.labels(b15))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    atl.models.save_bundle(atl.models.train(X, y, model, n_splits=2, progress=False),
                           tmp_path / "model.atlb")
    day = bars[bars["timestamp"] < bars["timestamp"].min() + pd.Timedelta("1D")]
    rng = random.Random(3)
    with LocalAlpaca(cash=100_000.0) as srv:
        srv.load_bars(day, pd.Timedelta("1min"))  # no clock: every bar has closed
        for s in ("AAA", "BBB", "CCC"):  # fills at fixed prices: the run is deterministic
            srv.set_price(s, float(day.loc[day["symbol"] == s, "close"].iloc[0]))
        cfg = live_config(tmp_path, srv, day["timestamp"].min())
        env = {**os.environ, "APCA_API_KEY_ID": srv.key_id,
               "APCA_API_SECRET_KEY": srv.secret_key}
        cmd = [sys.executable, "-m", "alphatrade_lab.cli", "live", "--config", str(cfg)]
        kills = 0
        while True:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            if kills < 8:
                time.sleep(rng.uniform(1.0, 4.0))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    continue
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-3000:]
            for text in (out.decode(), err.decode()):  # keys never in the output
                assert srv.key_id not in text and srv.secret_key not in text
            break
        posts = Counter(r.json["client_order_id"] for r in srv.requests("/v2/orders", "POST")
                        if r.json)
        orders = srv.orders()
        positions = srv.positions()
    assert kills >= 3
    assert len(orders) > 20
    assert max(posts.values()) == 1  # no order was ever sent twice
    store = atl.store.LabStore(tmp_path / "live.duckdb", read_only=True)
    stored = store.orders("killed-live-run")
    assert set(stored["client_order_id"]) == {o["client_order_id"] for o in orders}
    for table in store.counts():  # nor in any stored row
        dump = store.query(f"SELECT * FROM {table}").to_string()
        assert srv.key_id not in dump and srv.secret_key not in dump, table
    # the engine's own position book equals the broker's
    book = store.positions("killed-live-run").sort_values("timestamp").groupby("symbol")[
        "qty"].last()
    for sym, qty in positions.items():
        assert book[sym] == pytest.approx(qty, rel=1e-9)


def test_a_run_killed_before_its_first_batch_looks_its_orders_up(bars):
    """The store has the run but no batch yet (killed early), the broker has its orders:
    started again, the engine finds them instead of posting them a second time."""
    times = sorted(bars["timestamp"].unique())
    bar = pd.Timedelta("1min")
    with LocalAlpaca(cash=10_000.0) as srv:
        srv.load_bars(bars, bar)
        broker = AlpacaBroker(srv.key_id, srv.secret_key, base_url=srv.url, data_url=srv.url,
                              backoff=0.01)

        def feed():
            return PollingFeed(Stepper(broker, srv, [t + bar for t in times]), ["AAA", "BBB"],
                               bar=bar, start=times[0], interval=0.0, grace=0.0,
                               clock=srv.clock, max_polls=len(times))

        first = Engine(feed(), SignalStrategy(cross, 13), broker, run_id="early",
                       size=0.45).run()  # its orders reached the broker, none the store
        assert len(first.orders) > 5
        store = atl.store.LabStore(":memory:")
        store.record_run("live", run_id="early")
        # the same bars again (the server's clock is at their end: it fills at the last close)
        Engine(ReplayFeed(bars), SignalStrategy(cross, 13), broker, run_id="early", size=0.45,
               store=store, flush_every=len(times)).run()
        posts = Counter(r.json["client_order_id"] for r in srv.requests("/v2/orders", "POST")
                        if r.json)
    assert max(posts.values()) == 1
    assert set(store.orders("early")["client_order_id"]) == set(first.orders["client_order_id"])
