"""Reproduction of backtesting.py's classic SMA(10)/SMA(20) crossover on GOOG daily 2004-2013.

``Backtest(GOOG, SmaCross, cash=10_000, commission=.002, exclusive_orders=True)``
is, in this library's terms, ``from_signals(..., direction="both",
execution="next_open", size_granularity=1, fees=0.002, init_cash=10_000)``:

* its orders fill at the next bar's open (``trade_on_close=False``);
* ``exclusive_orders`` closes the open trade first, so a crossover reverses the
  position in one step (our ``direction="both"``: entries go long, exits short);
* a relative order buys ``int(cash // (price * (1 + commission)))`` whole shares:
  our all-in entry sized with the fee, rounded down to whole shares;
* commission is charged on both fills, as our ``fees``;
* equity at each bar is cash plus the position at the bar's close (after that
  bar's open fills), and the trade still open at the end is valued at the last
  close without an exit commission, as ours.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

import alphatrade_lab as atl
from alphatrade_lab.backtest import from_signals

RTOL = 1e-9


class SmaCross(Strategy):
    n1, n2 = 10, 20

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.n1)
        self.sma2 = self.I(SMA, self.data.Close, self.n2)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


@pytest.fixture(scope="module")
def theirs():
    bt = Backtest(GOOG, SmaCross, cash=10_000, commission=.002, exclusive_orders=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Some trades remain open", UserWarning)
        return bt.run()


@pytest.fixture(scope="module")
def signals():
    close = GOOG["Close"]
    fast, slow = SMA(close, 10), SMA(close, 20)
    return fast, slow, atl.signals.crossed_above(fast, slow), atl.signals.crossed_below(fast, slow)


@pytest.fixture(scope="module")
def ours(signals):
    _, _, up, down = signals
    return from_signals(GOOG["Close"], up, down, open=GOOG["Open"], execution="next_open",
                        size_granularity=1, fees=0.002, init_cash=10_000, direction="both")


def test_crossovers_are_backtestingpy_crossovers_here(signals):
    # backtesting.lib.crossover(a, b) at bar t: a < b at t - 1 and a > b at t (strict);
    # atl.signals allows a tie at t - 1 (a <= b). The SMAs here never tie, so the
    # signals are the same.
    fast, slow, up, down = signals
    assert not (fast == slow).any()
    assert up.equals((fast.shift() < slow.shift()) & (fast > slow))
    assert down.equals((slow.shift() < fast.shift()) & (slow > fast))
    assert up.sum() == down.sum() == 47


@pytest.mark.slow
def test_equity_curve_matches(ours, theirs):
    eq = theirs["_equity_curve"]["Equity"]
    assert ours.equity.index.equals(eq.index)
    np.testing.assert_allclose(ours.equity.to_numpy(), eq.to_numpy(), rtol=RTOL, atol=0)
    assert ours.equity.iloc[-1] == pytest.approx(theirs["Equity Final [$]"], rel=RTOL)


def test_closed_trades_match(ours, theirs):
    bt = theirs["_trades"]
    mine = ours.trades[ours.trades["status"] == "closed"].reset_index(drop=True)
    assert len(mine) == len(bt) == theirs["# Trades"] == 93
    np.testing.assert_array_equal(mine["entry_time"].to_numpy(), bt["EntryTime"].to_numpy())
    np.testing.assert_array_equal(mine["exit_time"].to_numpy(), bt["ExitTime"].to_numpy())
    signed = np.where(mine["direction"] == "long", 1.0, -1.0) * mine["size"].to_numpy()
    np.testing.assert_array_equal(signed, bt["Size"].to_numpy(dtype=float))
    for col, their_col in [("entry_price", "EntryPrice"), ("exit_price", "ExitPrice"),
                           ("pnl", "PnL"), ("return", "ReturnPct")]:
        np.testing.assert_allclose(mine[col].to_numpy(), bt[their_col].to_numpy(), rtol=RTOL,
                                   err_msg=col)
    np.testing.assert_allclose((mine["entry_fees"] + mine["exit_fees"]).to_numpy(),
                               bt["Commission"].to_numpy(), rtol=RTOL)


def test_trade_left_open_at_the_end_matches(ours, theirs):
    (trade,) = theirs["_strategy"]._broker.trades
    mine = ours.trades[ours.trades["status"] == "open"]
    assert len(mine) == 1
    mine = mine.iloc[0]
    assert mine["entry_time"] == trade.entry_time
    assert (1 if mine["direction"] == "long" else -1) * mine["size"] == trade.size
    assert mine["entry_price"] == pytest.approx(trade.entry_price, rel=RTOL)
    # Both value it at the last close, before any exit commission.
    assert mine["exit_price"] == GOOG["Close"].iloc[-1]


def test_shared_statistics_match(ours, theirs):
    stats = ours.stats()
    assert stats["total_return"] == pytest.approx(theirs["Return [%]"] / 100, rel=RTOL)
    assert stats["max_drawdown"] == pytest.approx(theirs["Max. Drawdown [%]"] / 100, rel=RTOL)
    assert stats["win_rate"] == pytest.approx(theirs["Win Rate [%]"] / 100, rel=RTOL)
    assert stats["closed_trade_count"] == theirs["# Trades"]
    # Their commissions count closed trades only; ours also the open trade's entry fee.
    open_fees = ours.trades.loc[ours.trades["status"] == "open", "entry_fees"].sum()
    assert stats["total_fees"] - open_fees == pytest.approx(theirs["Commissions [$]"],
                                                            rel=RTOL)
    assert pd.Timestamp(theirs["Start"]) == ours.equity.index[0]
