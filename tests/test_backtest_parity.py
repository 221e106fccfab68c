"""Parity of the backtest engine with vectorbt on random signals (20 columns × 3,000 bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import from_signals, from_weights

# Every test here runs vectorbt, the oracle; its first run in a process takes seconds.
pytestmark = pytest.mark.slow

N, K = 3000, 20
COSTS = {"fees": 0.001, "fixed_fees": 0.1, "slippage": 0.0005}
RTOL = 1e-9


@pytest.fixture(scope="module")
def market(random_market):
    close, open_, entries, exits = random_market(N, K, seed=42)
    # Force some same-bar entry/exit conflicts.
    exits.iloc[::97] = entries.iloc[::97].to_numpy()
    return close, open_, entries, exits


def assert_close(ours, theirs, what):
    a = np.asarray(ours, dtype=float).ravel()
    b = np.asarray(theirs, dtype=float).ravel()
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12, err_msg=what)


def compare(pf, vpf, check_stats=True):
    assert_close(pf.equity, vpf.value(), "equity")
    assert_close(pf.returns, vpf.returns(), "returns")
    stats = pf.stats(year_freq="365D")  # vectorbt's annualisation convention
    np.testing.assert_array_equal(np.atleast_1d(stats["trade_count"]),
                                  np.atleast_1d(vpf.trades.count()))
    assert np.atleast_1d(stats["trade_count"]).sum() > 100
    if not check_stats:
        return
    closed = vpf.trades.closed
    pairs = {
        "total_return": vpf.total_return(),
        "max_drawdown": vpf.max_drawdown(),
        "sharpe": vpf.sharpe_ratio(),
        "sortino": vpf.sortino_ratio(),
        "annualized_volatility": vpf.returns_acc.annualized_volatility(),
        "cagr": vpf.annualized_return(),
        "calmar": vpf.calmar_ratio(),
        "win_rate": closed.win_rate(),
        "profit_factor": closed.profit_factor(),
        "expectancy": closed.expectancy(),
        "total_fees": vpf.orders.fees.sum(),
        "order_count": vpf.orders.count(),
    }
    for name, theirs in pairs.items():
        theirs = np.atleast_1d(np.asarray(theirs, dtype=float))
        finite = np.isfinite(theirs)
        assert finite.any(), name
        assert_close(np.atleast_1d(stats[name])[finite], theirs[finite], name)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_from_signals_matches_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, direction=direction, freq="1min",
                                     **COSTS)
    compare(pf, vpf)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_trade_records_match_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, **COSTS)
    vt = vbt.Portfolio.from_signals(close, entries, exits, direction=direction, freq="1min",
                                    **COSTS).trades.records_readable
    ours = pf.trades
    assert len(ours) == len(vt)
    vt = vt.sort_values(["Column", "Entry Timestamp", "Exit Timestamp"], kind="stable")
    np.testing.assert_array_equal(ours["column"].to_numpy(), vt["Column"].to_numpy())
    np.testing.assert_array_equal(ours["entry_time"].to_numpy(), vt["Entry Timestamp"].to_numpy())
    np.testing.assert_array_equal(ours["exit_time"].to_numpy(), vt["Exit Timestamp"].to_numpy())
    np.testing.assert_array_equal(ours["direction"].str.lower(), vt["Direction"].str.lower())
    np.testing.assert_array_equal(ours["status"].str.lower(), vt["Status"].str.lower())
    for ours_col, their_col in [("size", "Size"), ("entry_price", "Avg Entry Price"),
                                ("exit_price", "Avg Exit Price"), ("pnl", "PnL"),
                                ("return", "Return"), ("entry_fees", "Entry Fees"),
                                ("exit_fees", "Exit Fees")]:
        assert_close(ours[ours_col], vt[their_col], ours_col)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_stops_match_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    kw = dict(direction=direction, sl_stop=0.02, tp_stop=0.03, **COSTS)
    pf = from_signals(close, entries, exits, **kw)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, freq="1min", **kw)
    compare(pf, vpf, check_stats=False)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_next_open_matches_vectorbt_on_shifted_signals(market, direction, vbt):
    close, open_, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, execution="next_open",
                      open=open_, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries.shift(1, fill_value=False),
                                     exits.shift(1, fill_value=False), price=open_,
                                     direction=direction, freq="1min", **COSTS)
    compare(pf, vpf, check_stats=False)


@pytest.mark.parametrize("direction", ["longonly", "shortonly", "both"])
def test_cash_sharing_matches_vectorbt(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, cash_sharing=True, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, direction=direction,
                                     cash_sharing=True, group_by=True, freq="1min", **COSTS)
    assert_close(pf.equity, vpf.value(), "equity")
    assert int(pf.stats()["trade_count"].iloc[0]) == int(vpf.trades.count().sum())


@pytest.mark.parametrize("direction", ["longonly", "shortonly"])
def test_size_fraction_matches_vectorbt_percent(market, direction, vbt):
    close, _, entries, exits = market
    pf = from_signals(close, entries, exits, direction=direction, size=0.5, **COSTS)
    vpf = vbt.Portfolio.from_signals(close, entries, exits, direction=direction, size=0.5,
                                     size_type="percent", freq="1min", **COSTS)
    compare(pf, vpf, check_stats=False)


def test_from_weights_matches_vectorbt_target_percent(market, vbt):
    close = market[0].iloc[:, :8]
    rng = np.random.default_rng(7)
    rows = rng.random(N) < 0.02
    # Weights sum to 0.95 so every buy is affordable (where the two cash rules coincide).
    w = pd.DataFrame(np.where(rows[:, None], 0.95 * rng.dirichlet(np.ones(8), N), np.nan),
                     index=close.index, columns=close.columns)
    pf = from_weights(close, w, fees=0.001, slippage=0.0005)
    vpf = vbt.Portfolio.from_orders(close, w, size_type="targetpercent", fees=0.001,
                                    slippage=0.0005, group_by=True, cash_sharing=True,
                                    call_seq="auto", freq="1min")
    assert_close(pf.equity, vpf.value(), "equity")
    assert int(pf.stats()["order_count"].iloc[0]) == len(vpf.orders.records)
