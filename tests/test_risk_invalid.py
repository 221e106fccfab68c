"""Missing or invalid inputs never switch a risk limit off: a NaN or infinite equity, a
NaN pnl or position are reported as critical ``invalid_*`` breaches and leave the state
as it was; time going backwards is an error; an empty account is a 100%+ loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.risk import Limit, RiskLimits, RiskManager

ONLY_DD = {"daily_loss": None, "gross_exposure": None, "position_size": None,
           "consecutive_losses": None}


def names(breaches) -> list[tuple[str, str]]:
    return [(b.limit, b.severity) for b in breaches]


@pytest.mark.parametrize("bad", [float("nan"), None, np.float64("nan")])
def test_missing_first_equity_is_reported_and_does_not_poison_the_peak(bad):
    rm = RiskManager(RiskLimits(max_drawdown=0.5, **ONLY_DD))
    first = rm.update("2024-01-01 00:00", bad)
    assert names(first) == [("invalid_equity", "critical")]
    assert rm.update("2024-01-01 01:00", 100.0) == []
    (b,) = rm.update("2024-01-01 02:00", 20.0)
    assert (b.limit, b.value) == ("max_drawdown", pytest.approx(0.8))


def test_missing_equity_later_keeps_the_peak_and_is_reported_once_per_episode():
    rm = RiskManager(RiskLimits(max_drawdown=0.5, **ONLY_DD))
    rm.update("2024-01-01 00:00", 100.0)
    assert names(rm.update("2024-01-01 01:00", np.nan)) == [("invalid_equity", "critical")]
    assert rm.update("2024-01-01 02:00", np.nan) == []          # same episode
    (b,) = rm.update("2024-01-01 03:00", 40.0)
    assert b.limit == "max_drawdown" and b.value == pytest.approx(0.6)
    assert names(rm.update("2024-01-01 04:00", np.nan)) == [("invalid_equity", "critical")]


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_equity_does_not_pin_the_peak(bad):
    rm = RiskManager(RiskLimits(max_drawdown=0.5, **ONLY_DD))
    rm.update("2024-01-01 00:00", 100.0)
    assert names(rm.update("2024-01-01 01:00", bad)) == [("invalid_equity", "critical")]
    assert rm.update("2024-01-01 02:00", 90.0) == []           # 10% below 100, not 100%
    (b,) = rm.update("2024-01-01 03:00", 40.0)
    assert b.value == pytest.approx(0.6)


def test_zero_equity_on_the_first_update_is_a_breach_not_a_zero_division():
    rm = RiskManager(RiskLimits(max_drawdown=0.5, daily_loss=0.05, gross_exposure=None,
                                position_size=None, consecutive_losses=None))
    out = rm.update("2024-01-01 00:00", 0.0)
    assert sorted(names(out)) == [("daily_loss", "critical"), ("max_drawdown", "critical")]
    assert all(b.value == np.inf for b in out)


def test_equity_falling_to_zero_or_below_breaches_every_equity_limit():
    rm = RiskManager(RiskLimits(max_drawdown=0.5, daily_loss=0.05, gross_exposure=1.5,
                                position_size=1.0, consecutive_losses=None))
    rm.update("2024-01-01 00:00", 100.0, {"AAA": 50.0})
    out = rm.update("2024-01-01 01:00", -5.0, {"AAA": 50.0})
    got = {b.limit: b.value for b in out}
    assert set(got) == {"max_drawdown", "daily_loss", "gross_exposure", "position_size"}
    assert got["max_drawdown"] == pytest.approx(1.05) and got["position_size"] == np.inf


def test_time_going_backwards_is_an_error_and_keeps_the_daily_reference():
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=0.05, gross_exposure=None,
                                position_size=None, consecutive_losses=None))
    rm.update("2024-01-01 23:00", 100.0)
    rm.update("2024-01-02 01:00", 100.0)
    with pytest.raises(DataError, match=r"portfolio 'portfolio'.*2024-01-01 12:00.*before"):
        rm.update("2024-01-01 12:00", 99.0)
    (b,) = rm.update("2024-01-02 02:00", 94.0)                   # 6% below the day's start
    assert b.limit == "daily_loss" and b.value == pytest.approx(0.06)


@pytest.mark.parametrize("bad", ["abc", object()])
def test_non_numeric_equity_is_a_data_error(bad):
    with pytest.raises(DataError, match="equity"):
        RiskManager().update("2024-01-01", bad)


def test_missing_timestamp_is_a_data_error():
    with pytest.raises(DataError, match="timestamp"):
        RiskManager().update(None, 100.0)


def test_nan_pnl_does_not_reset_the_losing_streak():
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, consecutive_losses=2))
    rm.update("2024-01-01 00:00", 100.0, closed_trade_pnl=[-1.0, -1.0])
    out = rm.update("2024-01-01 01:00", 100.0, closed_trade_pnl=[np.nan, -1.0])
    assert names(out) == [("consecutive_losses", "critical"), ("invalid_pnl", "critical")] \
        or names(out) == [("invalid_pnl", "critical"), ("consecutive_losses", "critical")]
    assert [b.value for b in out if b.limit == "consecutive_losses"] == [3.0]


def test_nan_position_is_reported_and_missing_price_is_a_data_error():
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, gross_exposure=1.5,
                                position_size=1.0, consecutive_losses=None))
    out = rm.update("2024-01-01", 100.0, {"AAA": np.nan, "BBB": 10.0})
    assert [(b.limit, b.symbol) for b in out] == [("invalid_position", "AAA")]
    out = rm.update("2024-01-01 01:00", 100.0, {"AAA": 1.0, "BBB": 0.0},
                    prices={"AAA": np.nan, "BBB": np.nan})   # no price for a flat position: 0
    assert out == []                                        # the AAA episode goes on
    with pytest.raises(DataError, match="'CCC'"):
        rm.update("2024-01-01 02:00", 100.0, {"CCC": 1.0}, prices={"AAA": 1.0})


def test_start_equity_must_be_positive_and_finite():
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="start_equity"):
            RiskManager(start_equity=bad)


def test_invalid_equity_alert_says_so():
    rm = RiskManager()
    (b,) = rm.update("2024-01-01", np.nan)
    a = rm.alert_for(b)
    assert a.level.name == "CRITICAL" and a.title == "Risk Alert: invalid_equity"
    assert "not a finite number" in a.message and "nan" in a.message


@pytest.fixture()
def pf():
    close = atl.data.to_wide(atl.data.load_sample(["AAA", "BBB"]), "close").iloc[:400]
    n = len(close)
    return atl.backtest.from_signals(close, np.arange(n) % 40 == 0, np.arange(n) % 40 == 20,
                                     fees=0.001)


def test_evaluate_reports_nan_and_inf_equity_and_keeps_checking_around_them(pf):
    eq = pf._equity            # the portfolio's own per-bar array: corrupt it in place
    eq[0, 0] = np.nan
    eq[10:13, 0] = np.inf
    eq[200, 0] = 0.2 * np.nanmax(eq[1:200, 0][np.isfinite(eq[1:200, 0])])
    rm = RiskManager(RiskLimits(max_drawdown=Limit(0.5), daily_loss=None,
                                gross_exposure=None, position_size=None,
                                consecutive_losses=None))
    b = rm.evaluate(pf)
    inv = b[b["limit"] == "invalid_equity"]
    assert list(inv["timestamp"]) == [pf.equity.index[0], pf.equity.index[10]]
    assert list(inv["observations"]) == [1, 3] and (inv["portfolio"] == "AAA").all()
    assert (inv["severity"] == "critical").all()
    dd = b[(b["limit"] == "max_drawdown") & (b["portfolio"] == "AAA")]
    assert list(dd["timestamp"]) == [pf.equity.index[200]]
    assert dd["value"].iloc[0] == pytest.approx(0.8)


def test_evaluate_daily_reference_survives_a_day_of_nan_equity():
    idx = pd.date_range("2024-01-01", periods=6, freq="12h", tz="UTC")
    equity = pd.DataFrame({"p": [100.0, 100.0, np.nan, np.nan, 94.0, 94.0]}, index=idx)
    loss = atl.risk.limits.daily_loss(equity, 100.0)
    assert loss["p"].iloc[4] == pytest.approx(0.06)


def test_evaluate_streak_skips_nan_pnl():
    pnl = pd.Series([-1.0, -1.0, np.nan, -1.0, 2.0])
    assert atl.risk.limits.consecutive_losses(pnl).tolist() == [1, 2, 2, 3, 0]


def test_exposures_on_a_non_positive_equity_are_unbounded():
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    values = pd.DataFrame({"AAA": [50.0, 50.0, 0.0]}, index=idx)
    gross, top, _ = atl.risk.limits.exposures(values, pd.Series([100.0, -5.0, 0.0], index=idx))
    assert gross.tolist() == [0.5, np.inf, 0.0] and top.tolist() == [0.5, np.inf, 0.0]


def test_evaluate_refuses_an_unsorted_equity_index(pf):
    class Shuffled:
        def __getattr__(self, name):
            return getattr(pf, name)

        @property
        def equity(self):
            return pf.equity.iloc[::-1]

    with pytest.raises(DataError, match="time order"):
        RiskManager().evaluate(Shuffled())


def test_nan_position_is_reported_again_after_it_was_valid():
    rm = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None, consecutive_losses=None))
    assert len(rm.update("2024-01-01 00:00", 100.0, {"AAA": np.nan})) == 1
    assert rm.update("2024-01-01 01:00", 100.0, {"AAA": np.nan}) == []
    assert rm.update("2024-01-01 02:00", 100.0, {"AAA": 1.0}) == []
    assert [b.symbol for b in rm.update("2024-01-01 03:00", 100.0, {"AAA": np.nan})] == ["AAA"]


def test_evaluate_reports_nan_pnl_and_nan_positions(pf):
    trades = pf.trades.copy()
    trades.loc[trades.index[1], "pnl"] = np.nan
    positions = pf.positions.copy()
    held = np.flatnonzero(positions["BBB"].to_numpy() != 0)
    positions.iloc[held[0], 1] = np.nan

    class Corrupt:
        def __getattr__(self, name):
            return getattr(pf, name)

        trades = property(lambda self: trades)
        positions = property(lambda self: positions)

    b = RiskManager(RiskLimits(max_drawdown=None, daily_loss=None)).evaluate(Corrupt())
    (t,) = b[b["limit"] == "invalid_pnl"].itertuples()
    assert t.timestamp == trades["exit_time"].iloc[1] and t.portfolio == trades["column"].iloc[1]
    (p,) = b[b["limit"] == "invalid_position"].itertuples()
    assert p.symbol == "BBB" and p.timestamp == pf.equity.index[held[0]]
