"""Hand-computed checks of execution rules, stops, weights, stats and the Portfolio API."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.backtest import STAT_NAMES, from_signals, from_weights

matplotlib.use("Agg")


def days(n):
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")


def signal(n, *bars):
    out = np.zeros(n, dtype=bool)
    out[list(bars)] = True
    return out


def test_next_open_fills_at_the_next_bars_open():
    close = pd.Series([10.0, 11.0, 12.0, 13.0, 14.0], index=days(5))
    open_ = pd.Series([9.5, 10.5, 11.5, 12.5, 13.5], index=days(5))
    pf = from_signals(close, signal(5, 0), signal(5, 2), execution="next_open", open=open_,
                      fees=0.01, slippage=0.02)
    buy_price = 10.5 * 1.02
    size = 100 / 1.01 / buy_price
    sell_price = 12.5 * 0.98
    cash_end = size * sell_price * 0.99
    expected = [100.0, size * 11.0, size * 12.0, cash_end, cash_end]
    np.testing.assert_allclose(pf.equity.to_numpy(), expected, rtol=1e-12)
    t = pf.trades.iloc[0]
    assert t["entry_time"] == close.index[1] and t["exit_time"] == close.index[3]
    assert t["entry_price"] == pytest.approx(buy_price)
    assert t["exit_price"] == pytest.approx(sell_price)
    assert t["pnl"] == pytest.approx(cash_end - 100.0)


@pytest.mark.slow
def test_stop_loss_exits_at_the_close_that_crosses_it_without_slippage():
    close = pd.Series([100.0, 95.0, 89.0, 92.0, 80.0], index=days(5))
    pf = from_signals(close, signal(5, 0), False, sl_stop=0.1, slippage=0.01)
    size = 100 / 101.0
    t = pf.trades
    assert len(t) == 1 and t["status"].iloc[0] == "closed"
    assert t["exit_time"].iloc[0] == close.index[2]
    assert t["exit_price"].iloc[0] == 89.0
    np.testing.assert_allclose(pf.equity.to_numpy()[2:], size * 89.0, rtol=1e-12)


def test_take_profit_and_short_stop():
    close = pd.Series([100.0, 105.0, 111.0, 120.0], index=days(4))
    pf = from_signals(close, signal(4, 0), False, tp_stop=0.1)
    assert pf.trades["exit_time"].iloc[0] == close.index[2]
    assert pf.final_value == pytest.approx(111.0)
    # Short at 100 with a 5% stop: 103 does not trigger, 106 does.
    close = pd.Series([100.0, 103.0, 106.0, 90.0], index=days(4))
    pf = from_signals(close, signal(4, 0), False, direction="shortonly", sl_stop=0.05)
    assert pf.trades["exit_time"].iloc[0] == close.index[2]
    # Short 1 share at 100 (cash 200), cover at 106: 200 - 106 = 94.
    assert pf.final_value == pytest.approx(94.0)


def test_stop_with_next_open_fills_at_the_following_open():
    close = pd.Series([100.0, 100.0, 85.0, 90.0, 95.0], index=days(5))
    open_ = pd.Series([100.0, 100.0, 98.0, 88.0, 94.0], index=days(5))
    pf = from_signals(close, signal(5, 0), False, execution="next_open", open=open_,
                      sl_stop=0.1)
    t = pf.trades.iloc[0]
    # Entry at bar 1's open (100); the close of bar 2 (85) crosses 90: exit at bar 3's open.
    assert t["entry_time"] == close.index[1] and t["exit_time"] == close.index[3]
    assert t["exit_price"] == 88.0
    assert pf.final_value == pytest.approx(88.0)


def test_reversal_in_both_closes_and_opens_in_one_order():
    close = pd.Series([10.0, 20.0, 10.0], index=days(3))
    pf = from_signals(close, signal(3, 0), signal(3, 1), direction="both")
    # Bar 1: sell the 10 long shares at 20 (cash 200), then short 200 / 20 = 10 shares.
    np.testing.assert_allclose(pf.positions.to_numpy(), [10.0, -10.0, -10.0])
    np.testing.assert_allclose(pf.equity.to_numpy(), [100.0, 200.0, 300.0])
    assert len(pf.orders) == 2
    t = pf.trades
    assert t["direction"].tolist() == ["long", "short"]
    assert t["pnl"].tolist() == pytest.approx([100.0, 100.0])
    assert t["status"].tolist() == ["closed", "open"]


def test_entry_and_exit_on_the_same_bar_are_ignored():
    close = pd.Series([10.0, 11.0, 12.0, 13.0], index=days(4))
    both = signal(4, 0)
    pf = from_signals(close, both, both)
    assert len(pf.orders) == 0
    # In a position, a conflicting bar neither exits nor re-enters.
    pf = from_signals(close, signal(4, 0, 2), signal(4, 2))
    assert len(pf.orders) == 1 and pf.positions.iloc[-1] > 0


def test_nan_prices_do_not_fill_and_carry_equity():
    close = pd.Series([np.nan, 10.0, np.nan, 12.0, np.nan, 8.0], index=days(6))
    pf = from_signals(close, signal(6, 0, 1), signal(6, 4))
    # The entry at the NaN bar 0 does not fill; bar 1 fills at 10. The exit at NaN bar 4 does not.
    assert pf.orders["timestamp"].tolist() == [close.index[1]]
    np.testing.assert_allclose(pf.equity.to_numpy(), [100, 100, 100, 120, 120, 80])


def test_from_weights_hand_computed_with_fees():
    close = pd.DataFrame({"a": [10.0, 10.0, 20.0], "b": [10.0, 10.0, 10.0]}, index=days(3))
    w = pd.DataFrame({"a": [0.5, np.nan, 0.0], "b": [0.5, np.nan, np.nan]}, index=days(3))
    pf = from_weights(close, w, fees=0.01)
    # Row 0: buys of 50 + 50 plus 1% fees exceed the 100 of cash: both scaled by 100 / 101.
    shares = 5 * 100 / 101
    v1 = 2 * shares * 10
    assert pf.equity.iloc[1, 0] == pytest.approx(v1)
    # Row 2: sell all of a at 20 with 1% fees; b is held.
    cash = shares * 20 * 0.99
    assert pf.equity.iloc[2, 0] == pytest.approx(cash + shares * 10)
    np.testing.assert_allclose(pf.positions.iloc[2].to_numpy(), [0.0, shares])
    assert pf.stats()["total_fees"].iloc[0] == pytest.approx(100 - 100 / 1.01 + shares * 0.2)


@pytest.fixture(scope="module")
def sample_pf(sample_bars):
    close = atl.data.to_wide(sample_bars, "close").iloc[:5000]
    fast, slow = close.rolling(10).mean(), close.rolling(40).mean()
    return from_signals(close, fast > slow, fast < slow, fees=0.001, direction="both")


@pytest.mark.slow
def test_stats_match_pandas_formulas_on_the_equity(sample_pf):
    pf = sample_pf
    eq = pf.equity
    rets = pf.returns
    pd.testing.assert_frame_equal(rets, eq.pct_change().fillna(eq.iloc[0] / 100 - 1))
    a = pd.Timedelta(days=365) / pd.Timedelta(minutes=1)
    s = pf.stats()
    np.testing.assert_allclose(s["sharpe"], rets.mean() / rets.std() * np.sqrt(a), rtol=1e-9)
    down = np.sqrt((rets.clip(upper=0) ** 2).mean()) * np.sqrt(a)
    np.testing.assert_allclose(s["sortino"], rets.mean() * a / down, rtol=1e-9)
    np.testing.assert_allclose(s["max_drawdown"], (eq / eq.cummax() - 1).min(), rtol=1e-12)
    np.testing.assert_allclose(s["total_return"], eq.iloc[-1] / 100 - 1, rtol=1e-12)
    years = (eq.index[-1] - eq.index[0] + pd.Timedelta(minutes=1)) / pd.Timedelta(days=365)
    np.testing.assert_allclose(s["cagr"], (eq.iloc[-1] / 100) ** (1 / years) - 1, rtol=1e-9)
    exposure = (pf.positions != 0).mean()
    np.testing.assert_allclose(s["exposure"], exposure, rtol=1e-12)
    closed = pf.trades[pf.trades["status"] == "closed"]
    by = closed.groupby("column")["pnl"]
    np.testing.assert_allclose(s["win_rate"], by.apply(lambda p: (p > 0).mean()), rtol=1e-12)
    np.testing.assert_allclose(s["expectancy"], by.mean(), rtol=1e-9)
    pf_ = by.apply(lambda p: p[p > 0].sum() / -p[p < 0].sum())
    np.testing.assert_allclose(s["profit_factor"], pf_, rtol=1e-9)
    # Longest peak-to-recovery stretch, measured on the equity directly.
    for col in eq.columns:
        v = eq[col].to_numpy()
        longest, peak_i = 0, 0
        for i in range(1, len(v)):
            if v[i] >= v[peak_i]:
                longest = max(longest, i - peak_i if i - peak_i > 1 else 0)
                peak_i = i
        longest = max(longest, len(v) - 1 - peak_i)
        assert s.loc[col, "max_drawdown_duration"] == pd.Timedelta(minutes=longest)


def test_portfolio_api(sample_pf):
    pf = sample_pf
    assert list(pf.stats().columns) == list(STAT_NAMES)
    t = pf.trades
    assert {"entry_time", "exit_time", "entry_price", "exit_price", "size", "direction", "pnl",
            "return", "duration"} <= set(t.columns)
    assert (t["duration"] == t["exit_time"] - t["entry_time"]).all()
    final_pos = pf.positions.iloc[-1]
    assert (t["status"] == "open").sum() == (final_pos != 0).sum()
    # Trade pnl adds up to the change in equity.
    np.testing.assert_allclose(t.groupby("column")["pnl"].sum(), pf.equity.iloc[-1] - 100,
                               rtol=1e-9)
    assert set(pf.orders["side"]) == {"buy", "sell"}
    np.testing.assert_allclose(pf.cash.iloc[-1] + (final_pos * pf._close.values[-1]).to_numpy(),
                               pf.equity.iloc[-1], rtol=1e-12)


@pytest.mark.slow
def test_summary_record_equals_full_stats(sample_pf, sample_bars):
    close = atl.data.to_wide(sample_bars, "close").iloc[:5000]
    fast, slow = close.rolling(10).mean(), close.rolling(40).mean()
    summary = from_signals(close, fast > slow, fast < slow, fees=0.001, direction="both",
                           record="summary")
    pd.testing.assert_frame_equal(summary, sample_pf.stats())


def test_plot_returns_a_figure(sample_pf):
    from matplotlib.figure import Figure

    fig = sample_pf.plot("BBB")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert len(fig.axes[2].collections) >= 1


def test_numpy_input_gives_unlabelled_results():
    close = np.array([[10.0, 5.0], [11.0, 6.0], [12.0, 4.0]])
    # A 1-D signal is one value per row, shared by all columns.
    pf = from_signals(close, np.array([[True, True], [False, False], [False, False]]),
                      np.array([False, True, False]))
    np.testing.assert_allclose(pf.equity.to_numpy(), [[100, 100], [110, 120], [110, 120]])
    assert list(pf.equity.columns) == [0, 1]
