"""The live engine with the paper broker: research/production parity, proven against
``atl.backtest.from_signals`` (the backtest is the independent reference: the engine
replays bars one timestamp at a time and never sees the backtest's arrays)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import FeedWarning
from alphatrade_lab.live import (
    Engine,
    EventBus,
    ModelStrategy,
    PaperBroker,
    ReplayFeed,
    SignalStrategy,
)

TRADE_COLUMNS = ["entry_price", "exit_price", "size", "pnl", "return", "entry_fees",
                 "exit_fees"]


def ma_cross(bars):
    close = atl.data.to_wide(bars, "close")
    fast, slow = close.rolling(4).mean(), close.rolling(12).mean()
    return atl.signals.crossed_above(fast, slow), atl.signals.crossed_below(fast, slow)


@pytest.fixture(scope="module")
def bars():
    b = atl.data.load_sample(["AAA", "BBB", "CCC"])
    return b[b["timestamp"] < b["timestamp"].min() + pd.Timedelta("200min")].reset_index(
        drop=True)


def assert_same_trades(pf_trades, live_trades):
    a, b = pf_trades.reset_index(drop=True), live_trades.reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert list(a.columns) == list(b.columns)
    for c in ("column", "direction", "status"):
        assert a[c].tolist() == b[c].tolist(), c
    for c in ("entry_time", "exit_time"):
        assert (a[c].to_numpy() == b[c].to_numpy()).all(), c
    for c in TRADE_COLUMNS:  # identical, not close
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=c)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_replay_equals_the_backtest(bars, direction, execution):
    close, open_ = atl.data.to_wide(bars, "close"), atl.data.to_wide(bars, "open")
    costs = dict(fees=0.001, slippage=0.0005)
    entries, exits = ma_cross(bars)
    pf = atl.backtest.from_signals(close, entries, exits, direction=direction,
                                   execution=execution, open=open_, init_cash=1000.0, **costs)
    broker = PaperBroker(1000.0, execution=execution, **costs)
    result = Engine(ReplayFeed(bars), SignalStrategy(ma_cross, lookback=13), broker,
                    direction=direction).run()
    assert_same_trades(pf.trades, result.trades)
    eq = result.equity[list(close.columns)]
    np.testing.assert_allclose(eq.to_numpy(), pf.equity.to_numpy(), rtol=1e-9, atol=0)
    assert (eq.index == pf.equity.index).all()
    assert len(result.fills) == len(pf.orders)
    assert result.bars == len(bars)


def test_replay_equals_the_backtest_with_sizes_and_shared_cash(bars):
    close = atl.data.to_wide(bars, "close")
    kw = dict(fees=0.002, fixed_fees=0.05, slippage=0.001, size_granularity=1.0)
    entries, exits = ma_cross(bars)
    pf = atl.backtest.from_signals(close, entries, exits, direction="both", size=0.5,
                                   cash_sharing=True, init_cash=10_000.0, **kw)
    broker = PaperBroker(10_000.0, cash_sharing=True, **kw)
    result = Engine(ReplayFeed(bars), SignalStrategy(ma_cross, lookback=13), broker,
                    direction="both", size=0.5).run()
    assert_same_trades(pf.trades, result.trades)
    np.testing.assert_allclose(result.equity["portfolio"].to_numpy(),
                               pf.equity.to_numpy().ravel(), rtol=1e-9, atol=0)
    assert (result.fills["qty"] % 1.0 == 0).all()  # whole shares


def test_model_strategy_replay_equals_the_backtest_of_the_held_out_period():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = atl.data.resample(atl.data.load_sample(["AAA", "BBB"]), "15min")
    cut = bars["timestamp"].quantile(0.7)
    train, held = bars[bars["timestamp"] < cut], bars[bars["timestamp"] >= cut]
    held = held[held["timestamp"] < held["timestamp"].min() + pd.Timedelta("6D")]
    X, y = atl.models.align(atl.features.technical(train), atl.models.labels(train))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    bundle = atl.models.train(X, y, model, n_splits=2, progress=False)
    close = atl.data.to_wide(held, "close")
    sig = atl.models.signals(bundle, atl.features.technical(held), threshold=0.4)
    pf = sig.backtest(close, fees=0.001)
    result = Engine(ReplayFeed(held), ModelStrategy(bundle, threshold=0.4),
                    PaperBroker(100.0, fees=0.001)).run()
    assert len(pf.trades) > 5
    assert_same_trades(pf.trades, result.trades)
    np.testing.assert_allclose(result.equity[list(close.columns)].to_numpy(),
                               pf.equity.to_numpy(), rtol=1e-9)


def test_orders_before_t_do_not_depend_on_bars_after_t(bars):
    """Perturbation: bars after t changed (or cut off) leave every order up to t as it was."""
    t = bars["timestamp"].iloc[len(bars) // 2]
    later = bars["timestamp"] > t
    changed = bars.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.3
    runs = []
    for b in (bars, changed, bars[~later]):
        r = Engine(ReplayFeed(b), SignalStrategy(ma_cross, lookback=13), PaperBroker(100.0),
                   direction="both", run_id="perturbed").run()
        runs.append(r.fills[r.fills["bar_time"] <= t].drop(columns="timestamp"))
    assert len(runs[0]) > 3
    for other in runs[1:]:
        pd.testing.assert_frame_equal(runs[0], other)


def test_bad_bars_are_skipped_warned_and_recorded(bars):
    one = bars[bars["symbol"] == "AAA"].head(30).reset_index(drop=True)
    feed = list(ReplayFeed(one))
    after_gap = feed[22].timestamp
    alien = feed[24]._replace(symbol="ZZZ")
    # a duplicate of bar 10, bar 3 again (out of order), bars 20 and 21 missing (a gap)
    feed = feed[:11] + [feed[10]] + feed[11:13] + [feed[3]] + feed[13:20] + feed[22:25] + \
        [alien] + feed[25:]
    with pytest.warns(FeedWarning) as seen:
        result = Engine(feed, SignalStrategy(ma_cross, lookback=13), PaperBroker(100.0),
                        symbols=["AAA"], bar_length="1min").run()
    assert sorted(result.events["kind"]) == ["duplicate", "gap", "out_of_order",
                                             "unknown_symbol"]
    gap = result.events[result.events["kind"] == "gap"].iloc[0]
    assert "2 bar(s) missing" in gap["detail"] and gap["timestamp"] == after_gap
    assert len(seen) == 3  # a gap is reported, not warned about
    assert result.bars == 28  # every good bar once


def test_a_late_bar_is_not_acted_on(bars):
    """BBB's bar at t5 arrives after the t6 bars were processed: acting on it now would
    trade out of time order, so it and BBB's t6 bar (t6 is done too) are skipped as late."""
    two = bars[bars["symbol"].isin(["AAA", "BBB"])]
    feed = list(ReplayFeed(two[two["timestamp"] < two["timestamp"].min() + pd.Timedelta(
        "20min")]))
    late = feed.pop(11)  # BBB at t5
    assert late.symbol == "BBB"
    feed.insert(12, late)  # after AAA's t6 bar
    with pytest.warns(FeedWarning, match="late"):
        result = Engine(feed, SignalStrategy(ma_cross, lookback=13), PaperBroker(100.0)).run()
    ev = result.events
    assert ev["kind"].tolist() == ["late", "late"]
    assert ev["symbol"].tolist() == ["BBB", "BBB"]
    assert result.bars == 38


def test_bus_publishes_in_order_and_a_slow_subscriber_never_blocks(bars):
    bus = EventBus()
    fills = bus.subscribe(["fill"])
    slow = bus.subscribe(maxsize=5)  # never read
    result = Engine(ReplayFeed(bars), SignalStrategy(ma_cross, lookback=13),
                    PaperBroker(100.0), bus=bus, direction="both").run()
    got = fills.drain()
    assert len(got) == len(result.fills) > 0
    assert [e.data["client_order_id"] for e in got] == result.fills["client_order_id"].tolist()
    seqs = [e.seq for e in bus.since(0)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len(slow) == 5 and slow.dropped == bus.seq - 5


def test_position_limit_blocks_entries_and_is_recorded(bars):
    result = Engine(ReplayFeed(bars), SignalStrategy(ma_cross, lookback=13),
                    PaperBroker(100.0), risk={"position_size": 0.5},
                    direction="both").run()
    blocked = result.events[result.events["kind"] == "risk_blocked"]
    assert len(blocked) > 0 and blocked["detail"].str.contains("position in").all()
    assert len(result.fills) == 0  # every entry is all-in: over 0.5 x equity


def test_daily_loss_kill_switch_stops_new_entries_for_the_day():
    t = pd.date_range("2024-01-02 09:30", periods=40, freq="1min", tz="UTC")
    price = np.r_[np.full(5, 100.0), np.linspace(100, 80, 10), np.full(25, 80.0)]
    bars = pd.DataFrame({"timestamp": t, "symbol": "AAA", "open": price, "high": price,
                         "low": price, "close": price, "volume": 1.0})

    def every_other(b):  # enter on even minutes, exit on odd ones
        close = atl.data.to_wide(b, "close")
        even = pd.DataFrame((close.index.minute % 2 == 0)[:, None], index=close.index,
                            columns=close.columns)
        return even, ~even

    result = Engine(ReplayFeed(bars), SignalStrategy(every_other, lookback=1),
                    PaperBroker(100.0), risk={"daily_loss": 0.05}).run()
    events = result.events
    switch = events[events["detail"].str.contains("kill switch on")]
    assert len(switch) == 1
    after = result.fills[result.fills["bar_time"] > switch["timestamp"].iloc[0]]
    assert (after["side"] == "sell").all()  # only the exit of the open position
    assert (events["kind"] == "risk_blocked").sum() > 5


def test_strategy_errors_are_clear(bars):
    with pytest.raises(atl.errors.DataError, match="must return \\(entries, exits\\)"):
        Engine(ReplayFeed(bars), SignalStrategy(lambda b: None, lookback=2),
               PaperBroker()).run()
    with pytest.raises(ValueError, match="direction"):
        Engine([], SignalStrategy(ma_cross, 2), PaperBroker(), direction="sideways")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Engine([], SignalStrategy(ma_cross, 2), PaperBroker()).run().bars == 0


def test_daily_loss_kill_switch_blocks_entries_with_the_same_record_each_bar():
    t = pd.date_range("2024-01-02 09:30", periods=30, freq="1min", tz="UTC")
    price = np.r_[np.full(3, 100.0), np.linspace(100, 80, 5), np.full(22, 80.0)]
    bars = pd.DataFrame({"timestamp": t, "symbol": "AAA", "open": price, "high": price,
                         "low": price, "close": price, "volume": 1.0})

    def in_but_one_exit(b):  # an entry on every bar but the 7th, which exits
        close = atl.data.to_wide(b, "close")
        exit_ = pd.DataFrame((close.index == t[6])[:, None], index=close.index,
                             columns=close.columns)
        return ~exit_, exit_

    result = Engine(ReplayFeed(bars), SignalStrategy(in_but_one_exit, lookback=1),
                    PaperBroker(100.0), risk={"daily_loss": 0.07}).run()
    ev = result.events
    switch = ev[ev["detail"].str.contains("kill switch on")]
    assert switch["timestamp"].tolist() == [t[5]]  # 10% down at 90: over 7%
    assert result.fills["bar_time"].tolist() == [t[0], t[6]]  # the entry, the exit
    blocked = ev[(ev["kind"] == "risk_blocked") & ~ev["detail"].str.contains("switch on")]
    assert blocked["timestamp"].tolist() == list(t[7:])  # each entry after the exit
    assert (blocked["detail"] == "open_long: daily-loss kill switch is on for the day").all()


def test_order_quantity_reusing_its_scratch_state_sizes_as_a_fresh_kernel_state():
    from alphatrade_lab.backtest import kernels as nb
    from alphatrade_lab.live.orders import Intent
    from alphatrade_lab.live.sizing import order_quantity
    from alphatrade_lab.live.trades import KernelRecords

    rng = np.random.default_rng(7)
    intents = [i for i in Intent if i != Intent.NONE]
    for _ in range(500):  # in sequence: each call starts from what the last one left
        intent = intents[rng.integers(len(intents))]
        cash, price = float(rng.uniform(0, 1000)), float(rng.uniform(1, 100))
        pos = float(rng.choice([0.0, rng.uniform(0.1, 20), -rng.uniform(0.1, 20)]))
        debt = -pos * price if pos < 0 else 0.0
        kw = dict(fraction=float(rng.uniform(0.1, 1)), fees=float(rng.uniform(0, 0.01)),
                  fixed_fees=float(rng.uniform(0, 1)), slippage=float(rng.uniform(0, 0.01)))
        gran = float(rng.choice([np.nan, 1.0, 0.1]))
        cs, gs = nb.init_state_nb(1, 1, np.array([cash]))
        cs[0, nb.C_POS], cs[0, nb.C_DEBT] = pos, debt
        rec = KernelRecords(1, orders=True, trades=False)
        filled = nb.execute_action_nb(0, 0, int(intent), 0, price, kw["fees"],
                                      kw["fixed_fees"], kw["slippage"], kw["fraction"], gran,
                                      cs, gs, *rec.args(0))
        want = float(rec.orders[0, nb.O_SIZE]) if filled else 0.0
        got = order_quantity(intent, cash=cash, position=pos, price=price, debt=debt,
                             granularity=None if np.isnan(gran) else gran, **kw)
        assert got == want


@pytest.mark.parametrize("cash_sharing", [False, True])
def test_paper_equity_of_a_pool_and_book_positions_match_their_per_symbol_forms(
        bars, cash_sharing):
    broker = PaperBroker(100.0, fees=0.001, cash_sharing=cash_sharing)
    engine = Engine(ReplayFeed(bars), SignalStrategy(ma_cross, lookback=13), broker,
                    direction="both")
    engine.run()
    groups = broker.equity_by_group()
    for s in broker.symbols:
        assert broker.equity_of(s) == groups["portfolio" if cash_sharing else s]
    assert engine.book.positions() == {s: engine.book.position(s)
                                       for s in engine.book.symbols}
    assert any(engine.book.positions().values())


@pytest.mark.parametrize("chunk", [1, 7, 8192])
def test_bars_of_gives_every_row_in_time_order_across_chunk_edges(chunk):
    from alphatrade_lab.live.feeds import bars_of

    bars = atl.data.load_sample(["AAA", "BBB", "CCC"]).groupby("symbol").head(40)
    want = bars.sort_values(["timestamp", "symbol"], kind="stable")
    got = list(bars_of(bars, chunk=chunk))  # 7: a timestamp's 3 bars split by a chunk edge
    assert [b.timestamp for b in got] == list(want["timestamp"])
    assert [b.symbol for b in got] == list(want["symbol"])
    for c in ("open", "high", "low", "close", "volume"):
        assert [getattr(b, c) for b in got] == want[c].tolist()
