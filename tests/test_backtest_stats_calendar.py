"""Calendar-aware statistics against an independent implementation (empyrical-reloaded).

Three real-shaped calendars: a 24/7 crypto-like minute series, daily bars on NYSE
sessions (weekends and holidays absent) and hourly FX bars that pause from Friday
22:00 to Sunday 22:00 UTC. The annualisation factor is derived here by hand from the
timestamps, and every ratio is computed by empyrical from the portfolio's returns.
"""

from __future__ import annotations

import empyrical
import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from alphatrade_lab.backtest import from_signals, from_signals_chunked
from alphatrade_lab.errors import DataError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning:DeprecationWarning")

YEAR_NS = pd.Timedelta(days=365).value


def crypto_minutes() -> pd.DatetimeIndex:
    return pd.date_range("2024-03-01", periods=20_000, freq="1min", tz="UTC")


def nyse_days() -> pd.DatetimeIndex:
    sessions = xcals.get_calendar("XNYS", start="2015-01-01", end="2020-12-31").sessions
    return pd.DatetimeIndex(sessions).tz_localize("UTC")


def fx_hours() -> pd.DatetimeIndex:
    hours = pd.date_range("2023-01-01", "2024-06-30", freq="1h", tz="UTC")
    dow, hour = hours.day_of_week, hours.hour
    weekend = (dow == 5) | ((dow == 4) & (hour >= 22)) | ((dow == 6) & (hour < 22))
    return hours[~weekend]


CALENDARS = {"crypto_1min": crypto_minutes, "nyse_daily": nyse_days, "fx_hourly": fx_hours}


def market(index: pd.DatetimeIndex, seed: int) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(2e-4, 0.01, len(index)))),
                      index=index, name="X")
    entries = rng.random(len(index)) < 0.03
    exits = rng.random(len(index)) < 0.03
    return close, entries, exits


def hand_periods_per_year(index: pd.DatetimeIndex) -> float:
    span = index[-1].value - index[0].value
    return (len(index) - 1) * YEAR_NS / span


def hand_longest_drawdown(equity: pd.Series) -> pd.Timedelta:
    """Peak-to-recovery (or peak-to-end) of the drawdown spanning the most bars."""
    values = equity.to_numpy()
    best_len, best = 0, pd.Timedelta(0)
    peak_i = 0
    for i in range(1, len(values)):
        if values[i] >= values[peak_i]:
            if i - peak_i > 1 and i - peak_i > best_len:
                best_len, best = i - peak_i, equity.index[i] - equity.index[peak_i]
            peak_i = i
    if len(values) - 1 - peak_i > best_len:
        best = equity.index[-1] - equity.index[peak_i]
    return best


@pytest.fixture(params=list(CALENDARS), scope="module")
def case(request):
    index = CALENDARS[request.param]()
    close, entries, exits = market(index, seed=len(index))
    pf = from_signals(close, entries, exits, fees=0.001, direction="both")
    return request.param, index, close, entries, exits, pf


def test_periods_per_year_is_observed_from_the_timestamps(case):
    name, index, *_, pf = case
    A = hand_periods_per_year(index)
    assert pf.periods_per_year == pytest.approx(A, rel=1e-12)
    expected = {"crypto_1min": 525_600, "nyse_daily": 252, "fx_hourly": 6_200}[name]
    assert pf.periods_per_year == pytest.approx(expected, rel=0.02)


def test_ratios_match_empyrical(case):
    *_, pf = case
    stats, r = pf.stats(), pf.returns
    A = pf.periods_per_year
    assert stats["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r, annualization=A),
                                            rel=1e-9)
    assert stats["sortino"] == pytest.approx(
        empyrical.sortino_ratio(r, required_return=0.0, annualization=A), rel=1e-9)
    assert stats["annualized_volatility"] == pytest.approx(
        empyrical.annual_volatility(r, annualization=A), rel=1e-9)
    # empyrical counts n / A years; so does a given periods_per_year.
    by_count = pf.stats(periods_per_year=A)
    assert by_count["cagr"] == pytest.approx(empyrical.cagr(r, annualization=A), rel=1e-9)
    assert by_count["sharpe"] == pytest.approx(stats["sharpe"], rel=1e-12)
    # empyrical counts the value before the first bar as a peak; here the first bar is.
    mdd = empyrical.max_drawdown(r.iloc[1:])
    assert stats["max_drawdown"] == pytest.approx(mdd, rel=1e-12)
    assert by_count["calmar"] == pytest.approx(empyrical.cagr(r, annualization=A) / abs(mdd),
                                               rel=1e-9)


def test_cagr_uses_calendar_years(case):
    _, index, *_, pf = case
    stats = pf.stats()
    # From the first bar's open to the last bar's close (a bar is stamped at its open).
    years = (index[-1] - index[0] + pf.bar_length) / pd.Timedelta(days=365)
    end_over_init = pf.equity.iloc[-1] / pf.init_cash[0]
    assert stats["cagr"] == pytest.approx(end_over_init ** (1 / years) - 1, rel=1e-9)
    assert stats["calmar"] == pytest.approx(stats["cagr"] / abs(stats["max_drawdown"]),
                                            rel=1e-12)


def test_drawdown_duration_is_calendar_time(case):
    *_, pf = case
    assert pf.stats()["max_drawdown_duration"] == hand_longest_drawdown(pf.equity)


def test_summary_and_chunked_runs_report_the_same_statistics(case):
    _, index, close, entries, exits, pf = case
    kw = dict(fees=0.001, direction="both")
    summary = from_signals(close, entries, exits, record="summary", **kw).iloc[0]
    cuts = np.sort(np.random.default_rng(0).choice(np.arange(1, len(index)), 7, replace=False))
    bounds = [0, *cuts, len(index)]
    chunks = [(close.iloc[a:b], entries[a:b], exits[a:b])
              for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    chunked = from_signals_chunked(chunks, **kw).iloc[0]
    full = pf.stats()
    for got in (summary, chunked):
        assert got["max_drawdown_duration"] == full["max_drawdown_duration"]
        for key in ("cagr", "sharpe", "sortino", "annualized_volatility", "calmar"):
            assert got[key] == pytest.approx(full[key], rel=1e-12), key


def test_overrides_rescale_the_annualised_statistics(case):
    name, index, *_, pf = case
    base = pf.stats()
    given = pf.stats(periods_per_year=252)
    scale = np.sqrt(252 / pf.periods_per_year)
    assert given["sharpe"] == pytest.approx(base["sharpe"] * scale, rel=1e-12)
    assert given["annualized_volatility"] == pytest.approx(
        base["annualized_volatility"] * scale, rel=1e-12)
    # A given bar count per year also counts years as bars / A (empyrical's convention).
    assert given["cagr"] == pytest.approx(
        (1 + base["total_return"]) ** (252 / len(index)) - 1, rel=1e-9)
    vbt_like = pf.stats(year_freq="365D")
    assert vbt_like["sharpe"] == pytest.approx(
        base["sharpe"] * np.sqrt((pd.Timedelta("365D") / pf.bar_length) / pf.periods_per_year),
        rel=1e-12)
    if name == "nyse_daily":
        nyse = pf.stats(calendar="XNYS")
        sessions = len(xcals.get_calendar("XNYS", start="2015-01-01", end="2020-12-31").sessions)
        assert nyse["sharpe"] == pytest.approx(
            base["sharpe"] * np.sqrt(sessions / 6 / pf.periods_per_year), rel=1e-12)


def test_bad_time_basis_options_are_refused():
    close, entries, exits = market(nyse_days()[:300], seed=1)
    pf = from_signals(close, entries, exits)
    with pytest.raises(DataError, match="at most one"):
        pf.stats(periods_per_year=252, calendar="XNYS")
    with pytest.raises(UnknownNameError, match="did you mean 'XNYS'"):
        pf.stats(calendar="xnys")
    with pytest.raises(DataError, match="positive"):
        pf.stats(periods_per_year=0)
    with pytest.raises(DataError, match="time span"):
        pf.stats(year_freq="a year")


def test_goog_daily_cagr_counts_calendar_years():
    from backtesting.test import GOOG

    close = GOOG["Close"].tz_localize("UTC")
    entries = np.zeros(len(close), dtype=bool)
    entries[0] = True
    pf = from_signals(close, entries, np.zeros(len(close), dtype=bool))
    years = float(pf.basis.years(len(close)))
    assert years == pytest.approx((3116 + 1) / 365)  # 8.54, not 2,148 bars / 365 = 5.88
    assert pf.periods_per_year == pytest.approx(251.5, abs=0.1)


def test_summarize_annualises_with_the_observed_trading_days():
    from alphatrade_lab.data import summarize, synthetic, to_wide

    bars = synthetic(n_symbols=1, calendar="XNYS", freq="1D", days=730)
    close = to_wide(bars, "close").iloc[:, 0]
    days = (close.index[-1] - close.index[0]).days
    per_year = (len(close) - 1) * 365 / days
    assert per_year == pytest.approx(252, abs=2)
    expected = np.log(close).diff().std() * np.sqrt(per_year)
    assert summarize(bars)["annual_vol"].iloc[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("freq", ["1min", "15min", "1h", "1D", "7s"])
def test_a_fixed_freq_index_gives_the_bar_length_its_gaps_give(freq):
    """The shortcut for an index with a fixed ``freq`` agrees with the gaps themselves."""
    from alphatrade_lab.backtest.metrics import infer_bar_length

    idx = pd.date_range("2024-01-01", periods=500, freq=freq, tz="UTC")
    plain = pd.DatetimeIndex(list(idx))  # the same times, no freq
    assert idx.freq is not None and plain.freq is None
    assert infer_bar_length(idx) == infer_bar_length(plain) == pd.Timedelta(freq)
    assert infer_bar_length(idx[::3]) == infer_bar_length(pd.DatetimeIndex(list(idx[::3])))
