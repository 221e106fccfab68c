"""Performance statistics of a backtest: every formula, in one place.

Every statistic is derived from a handful of running sums that the simulation
kernels keep per cash group (see :mod:`alphatrade_lab.backtest.kernels`), so
the full run, ``record="summary"``, a chunked run and a sweep report identical
numbers without storing the equity curve.

Time basis
----------
Statistics are annualised from the data's own calendar, not from an assumed
24/7 year (:func:`time_basis`). With ``n`` bars stamped ``t_0 .. t_{n-1}``:

* ``YEAR`` is 365 days; the **mean bar interval** is ``(t_{n-1} - t_0) / (n - 1)``.
* ``A``, the **bars per year**, is ``YEAR / mean bar interval``: 525,600 for 24/7
  minute bars, about 252 for daily bars of a stock exchange, about 6,200 for hourly
  FX bars that pause at weekends. Override it with ``periods_per_year=`` (e.g. 252),
  ``year_freq=`` (``A = year_freq / bar length``, vectorbt's convention; the bar
  length is ``freq`` or the most common gap) or ``calendar=`` (an
  ``exchange_calendars`` name such as ``"XNYS"``: its average sessions per calendar
  year over the data's years, times the observed bars per session).
* ``years``, for the CAGR, is **calendar time** from the first bar's open to the last
  bar's close: ``(t_{n-1} + bar length - t_0) / YEAR``, as a bar is stamped with its
  open time (8.54 years for the 2,148 daily GOOG bars of 2004-08-19 .. 2013-03-01,
  where a 24/7 count of bars gives 5.88). On a gap-free index this is ``n`` bar
  lengths, as vectorbt counts. With ``periods_per_year=`` or ``year_freq=`` the bar
  count convention of empyrical and vectorbt applies instead, ``years = n / A``; so
  does an index without timestamps.
* Durations are calendar time between bar timestamps (in bars when the index has
  no times and no ``freq`` is given).

Definitions
-----------
``r_t`` is the bar return ``V_t / V_{t-1} - 1``, with ``V_{-1}`` the initial cash.

========================  ==============================================================
total_return              ``V_end / V_init - 1``
cagr                      ``(V_end / V_init) ** (1 / years) - 1``
annualized_volatility     ``std(r, ddof=1) * sqrt(A)``
sharpe                    ``mean(r) / std(r, ddof=1) * sqrt(A)`` (risk-free rate 0)
sortino                   ``mean(r) * A / (sqrt(mean(min(r, 0) ** 2)) * sqrt(A))``
max_drawdown              ``min_t V_t / max_{s<=t} V_s - 1`` (a negative fraction; the
                          initial cash is not a peak)
max_drawdown_duration     the drawdown spanning the most bars, from its peak's bar to the
                          bar that regains the peak (or the last bar when none does),
                          measured as the time between those bars' timestamps
calmar                    ``cagr / |max_drawdown|``
win_rate                  winning / closed trades
profit_factor             gross profit / gross loss of closed trades
expectancy                average pnl of closed trades (as vectorbt: ``win_rate *
                          avg_win - loss_rate * |avg_loss|``)
exposure                  fraction of bars that end with a position
trade_count               closed plus open trades (as vectorbt's ``trades.count()``)
========================  ==============================================================

A Sharpe or Sortino ratio whose denominator is 0 (a column that never trades) is
NaN, where vectorbt gives ``inf``. ``tests/test_backtest_stats_calendar.py`` checks these
definitions against empyrical-reloaded on a 24/7 minute series, a daily NYSE series
and an hourly FX series with weekend gaps.

Differences from other libraries
--------------------------------
* **vectorbt** uses ``A = year_freq / freq`` (365 days by default) and ``n * freq``
  years: on a gap-free index its Sharpe, Sortino and volatility equal these; with
  ``year_freq="365D"`` all of its annualised statistics do (CAGR included).
* **empyrical / pyfolio** take ``A`` from a period name (252 for daily) and count
  ``n / A`` years: ``periods_per_year=252`` gives their numbers. Their drawdown counts
  the value before the first bar as a peak; here the first bar's value is the first peak.
* **backtesting.py** (0.6) resamples the equity to days and annualises with 252 days
  (365 when weekends trade). Its "Return (Ann.)" compounds the geometric-mean daily
  return, its volatility compounds the daily variance, and its Sharpe is their ratio,
  not the arithmetic ``mean / std`` (its Sortino and Calmar use that geometric return
  too); its CAGR counts years of 365.25 days from the first to the last timestamp
  (here 365 days, to the last bar's close). Both value a trade still open after the
  last bar at the last close without an exit fee, so the equity curves agree;
  backtesting.py leaves that trade out of its trade statistics (``# Trades``, win rate,
  ``Commissions``, exposure) unless ``finalize_trades=True``, while here it counts in
  ``trade_count``/``open_trade_count``, ``total_fees`` and ``exposure``. Its exposure
  counts the bars of closed trades, its profit factor and expectancy use trade returns
  in percent (here money pnl, as vectorbt). On GOOG SMA(10/20) the equity, the 93
  closed trades and the open trade agree exactly (``tests/test_backtest_backtestingpy.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as nb
from alphatrade_lab.data.calendar import YEAR, observed_bars_per_year
from alphatrade_lab.errors import DataError, unknown_name

__all__ = ["STAT_NAMES", "YEAR", "TimeBasis", "ann_factor", "basis_from_times",
           "infer_bar_length", "stats_from_state", "time_basis"]

STAT_NAMES: tuple[str, ...] = (
    "start_value", "end_value", "total_return", "cagr", "annualized_volatility", "sharpe",
    "sortino", "max_drawdown", "max_drawdown_duration", "calmar", "win_rate", "profit_factor",
    "expectancy", "exposure", "trade_count", "closed_trade_count", "open_trade_count",
    "order_count", "total_fees", "bars",
)


def infer_bar_length(index: pd.Index) -> pd.Timedelta | None:
    """The most common gap between consecutive timestamps (None without a DatetimeIndex).

    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> infer_bar_length(idx)
    Timedelta('0 days 01:00:00')
    """
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    if isinstance(index.freq, pd.tseries.offsets.Tick):
        # pandas keeps a fixed freq only while every gap equals it: no pass over the index
        return pd.Timedelta(index.freq)
    unit_ns = pd.Timedelta(1, unit=index.unit).value if hasattr(index, "unit") else 1
    diffs = np.diff(index.asi8)
    if diffs[0] > 0 and diffs.min() == diffs.max():
        return pd.Timedelta(int(diffs[0]) * unit_ns, unit="ns")
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        return None
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]) * unit_ns, unit="ns")


def ann_factor(bar_length: pd.Timedelta | None) -> float:
    """Bars per year of a gap-free index (365 days / bar length); NaN when unknown.

    >>> ann_factor(pd.Timedelta("1D"))
    365.0
    """
    if bar_length is None:
        return float("nan")
    return YEAR / bar_length


@dataclass(frozen=True)
class TimeBasis:
    """How a backtest's bars map to calendar time (see the module docstring).

    Attributes
    ----------
    periods_per_year
        ``A``, bars per year, for volatility, Sharpe and Sortino (NaN when unknown).
    span_years
        Years from the first bar's open to the last bar's close, for the CAGR (None:
        years are ``n / A``).
    times
        Bar timestamps as int64 UTC nanoseconds (durations), or None.
    bar_length
        The bar length (``freq`` or the most common gap), or None.
    """

    periods_per_year: float
    span_years: float | None
    times: np.ndarray | dict | None = field(repr=False)
    bar_length: pd.Timedelta | None

    def years(self, n_bars: np.ndarray) -> np.ndarray:
        """Years that ``n_bars`` bar returns (all the bars of the run) cover."""
        n_bars = np.asarray(n_bars, dtype=np.float64)
        if self.span_years is not None:
            return np.full(n_bars.shape, self.span_years)
        return n_bars / self.periods_per_year

    def durations(self, start: np.ndarray, end: np.ndarray) -> Any:
        """Time from bar ``start`` to bar ``end`` (arrays of bar numbers)."""
        start = np.asarray(start, dtype=np.float64)
        end = np.asarray(end, dtype=np.float64)
        if isinstance(self.times, dict):
            ns = np.array([self.times[int(e)] - self.times[int(s)]
                           for s, e in zip(start, end, strict=True)], dtype=np.int64)
            return pd.to_timedelta(ns, unit="ns")
        if self.times is not None and len(self.times):
            ns = self.times[end.astype(np.int64)] - self.times[start.astype(np.int64)]
            return pd.to_timedelta(ns, unit="ns")
        bars = end - start
        if self.bar_length is not None:
            return pd.to_timedelta(bars * self.bar_length.value, unit="ns")
        return bars


def _positive_number(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a positive number of bars per year, got {value!r}"
                        ) from None
    if not np.isfinite(out) or out <= 0:
        raise DataError(f"{name} must be a positive number of bars per year, got {value!r}")
    return out


def _positive_timedelta(value: Any, name: str) -> pd.Timedelta:
    try:
        out = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a time span such as '365D' or '1min', got {value!r}"
                        ) from None
    if pd.isna(out) or out <= pd.Timedelta(0):
        raise DataError(f"{name} must be a positive time span, got {value!r}")
    return out


def _calendar_periods(name: str, first: pd.Timestamp, last: pd.Timestamp, n: int) -> float:
    """Bars per year on an exchange calendar: its mean sessions per calendar year over the
    data's years, times the data's bars per session."""
    import exchange_calendars as xcals

    names = xcals.get_calendar_names(include_aliases=True)
    if name not in names:
        raise unknown_name("exchange calendar", name, sorted(names),
                           "exchange_calendars (calendar=)")
    first = first.tz_localize(None).normalize()
    last = last.tz_localize(None).normalize()
    y0, y1 = first.year, last.year
    with warnings.catch_warnings():
        # exchange_calendars 4.13 uses a pandas API that pandas 3.1 deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = xcals.get_calendar(name, start=f"{y0}-01-01", end=f"{y1}-12-31")
        n_year = len(cal.sessions_in_range(cal.first_session, cal.last_session))
        in_data = cal.sessions_in_range(max(cal.first_session, first),
                                        min(cal.last_session, last))
    if len(in_data) == 0:
        raise DataError(f"calendar={name!r}: no {name} session between the data's first bar "
                        f"({first.date()}) and last bar ({last.date()})")
    return n_year / (y1 - y0 + 1) * (n / len(in_data))


def time_basis(index: pd.Index, *, freq: Any = None, periods_per_year: Any = None,
               year_freq: Any = None, calendar: str | None = None) -> TimeBasis:
    """The time basis of statistics on bars stamped ``index`` (see the module docstring).

    Parameters
    ----------
    index
        The bars' index; a DatetimeIndex gives calendar-aware statistics (naive
        timestamps are read as UTC).
    freq
        Bar length, for an index without timestamps (and for ``year_freq``).
    periods_per_year, year_freq, calendar
        At most one: bars per year as a number, as ``year_freq / bar length``, or from
        an ``exchange_calendars`` calendar name. Default: observed from the index.

    Examples
    --------
    >>> days = pd.bdate_range("2024-01-01", "2024-12-31", tz="UTC")
    >>> time_basis(days).periods_per_year  # 262 weekdays over 365 days
    261.0
    >>> time_basis(days, calendar="XNYS").periods_per_year  # 252 sessions, 262/252 bars each
    262.0
    >>> time_basis(days, periods_per_year=252).periods_per_year
    252.0
    >>> time_basis(pd.RangeIndex(10), freq="1h").periods_per_year
    8760.0
    """
    times = None
    if isinstance(index, pd.DatetimeIndex) and len(index) > 0:
        times = index.as_unit("ns").asi8
    bar_len = (_positive_timedelta(freq, "freq") if freq is not None
               else infer_bar_length(index))
    return basis_from_times(times, len(index), bar_len, periods_per_year=periods_per_year,
                            year_freq=year_freq, calendar=calendar)


def basis_from_times(times: np.ndarray | dict | None, n: int, bar_len: pd.Timedelta | None,
                     *, first: int | None = None, last: int | None = None,
                     periods_per_year: Any = None, year_freq: Any = None,
                     calendar: str | None = None) -> TimeBasis:
    """:func:`time_basis` from ``n`` bars' int64 UTC nanosecond ``times`` (an array, or
    a mapping from bar number to time for the bars durations need, with ``first`` and
    ``last`` the first and last bars' times)."""
    given = [k for k, v in (("periods_per_year", periods_per_year), ("year_freq", year_freq),
                            ("calendar", calendar)) if v is not None]
    if len(given) > 1:
        raise DataError(f"give at most one of periods_per_year, year_freq and calendar "
                        f"(got {', '.join(given)})")
    if times is not None and first is None:
        first, last = int(times[0]), int(times[-1])
    # the first and last bars' times, when there are several bars spanning time
    ends = ((first, last) if times is not None and first is not None and last is not None
            and n > 1 and last > first else None)
    if periods_per_year is not None:
        A = _positive_number(periods_per_year, "periods_per_year")
    elif year_freq is not None:
        if bar_len is None:
            raise DataError("year_freq needs the bar length: pass freq= (e.g. freq='1D') or "
                            "an index of timestamps")
        A = _positive_timedelta(year_freq, "year_freq") / bar_len
    elif calendar is not None:
        if times is None:
            raise DataError("calendar= needs the bars' timestamps: give close a DatetimeIndex")
        A = _calendar_periods(str(calendar), pd.Timestamp(first, unit="ns"),
                              pd.Timestamp(last, unit="ns"), n)
    elif ends is not None:
        A = observed_bars_per_year(*ends, n)
    else:
        A = ann_factor(bar_len)
    by_count = periods_per_year is not None or year_freq is not None
    span_years = None
    if ends is not None and not by_count:
        first, last = ends
        span_years = (last - first + (bar_len.value if bar_len is not None else 0)) / YEAR.value
    return TimeBasis(periods_per_year=float(A), span_years=span_years, times=times,
                     bar_length=bar_len)


def stats_from_state(cstate: np.ndarray, gstate: np.ndarray, group_start: np.ndarray,
                     names: pd.Index, basis: TimeBasis, bar0: int = 0) -> pd.DataFrame:
    """One row of statistics per cash group from the kernels' final state.

    Parameters
    ----------
    cstate, gstate
        Column and group state after the last bar.
    group_start
        Column offsets of the groups.
    names
        Group labels (the index of the result).
    basis
        The time basis (:func:`time_basis`) of the bars the kernels stepped.
    bar0
        Position in ``basis.times`` of the kernels' bar 0.

    Examples
    --------
    >>> cs, gs = nb.init_state_nb(1, 1, np.array([100.0]))
    >>> nb.update_stats_nb(0, 0, 110.0, True, gs)
    >>> basis = time_basis(pd.RangeIndex(1))
    >>> stats_from_state(cs, gs, np.array([0, 1]), pd.Index(["a"]), basis)["total_return"]
    a    0.1
    Name: total_return, dtype: float64
    """
    g = gstate
    A = basis.periods_per_year
    init = g[:, nb.G_INIT]
    end = g[:, nb.G_PREV_V]
    n = g[:, nb.G_NBARS]
    with np.errstate(divide="ignore", invalid="ignore"):
        total_return = end / init - 1.0
        cagr = np.where(n > 0, (end / init) ** (1.0 / basis.years(n)) - 1.0, np.nan)
        mean = g[:, nb.G_SUM_R] / n
        # Sums of r and r**2 are accurate here because |mean(r)| << std(r) for bar returns.
        var = np.maximum(g[:, nb.G_SUM_R2] - g[:, nb.G_SUM_R] * mean, 0.0) / (n - 1)
        std = np.where(n > 1, np.sqrt(var), np.nan)
        vol = std * np.sqrt(A)
        sharpe = np.where((n > 1) & (std > 0), mean / std * np.sqrt(A), np.nan)
        down = np.sqrt(g[:, nb.G_DOWN2] / n) * np.sqrt(A)
        sortino = np.where((n > 1) & (down > 0), mean * A / down, np.nan)
        max_dd = g[:, nb.G_MAX_DD]
        calmar = np.where(max_dd != 0, cagr / np.abs(max_dd), np.nan)
        closed = g[:, nb.G_N_CLOSED]
        n_win = g[:, nb.G_N_WIN]
        n_loss = g[:, nb.G_N_LOSS]
        win_rate = n_win / closed
        has = closed > 0
        sum_win = np.where(has, g[:, nb.G_SUM_WIN], np.nan)
        sum_loss = np.where(has, g[:, nb.G_SUM_LOSS], np.nan)
        profit_factor = sum_win / np.abs(sum_loss)
        avg_win = np.where(n_win > 0, sum_win / n_win, np.where(has, 0.0, np.nan))
        avg_loss = np.where(n_loss > 0, sum_loss / n_loss, np.where(has, 0.0, np.nan))
        expectancy = win_rate * avg_win - (n_loss / closed) * np.abs(avg_loss)
        exposure = g[:, nb.G_EXPOSED] / n
    # The longest drawdown: the longest recovered one, or the one still open at the end.
    dd_bars = g[:, nb.G_MAX_DD_BARS]
    dd_start = g[:, nb.G_DD_START]
    has_peak = g[:, nb.G_PEAK_BAR] >= 0
    active = np.where(has_peak, g[:, nb.G_LAST_BAR] - g[:, nb.G_PEAK_BAR], 0.0)
    use_active = active > dd_bars
    start = np.where(use_active, g[:, nb.G_PEAK_BAR], dd_start)
    stop = np.where(use_active, g[:, nb.G_LAST_BAR], dd_start + dd_bars)
    none = np.maximum(active, dd_bars) <= 0
    start = np.where(none, 0.0, start) + bar0
    stop = np.where(none, 0.0, stop) + bar0
    dd_duration = basis.durations(start, stop)
    open_trades = np.zeros(len(g))
    is_open = (cstate[:, nb.C_TR_DIR] != 0) & (cstate[:, nb.C_TR_SIZE] > 0)
    for j in range(len(g)):
        open_trades[j] = is_open[group_start[j]:group_start[j + 1]].sum()
    out = pd.DataFrame({
        "start_value": init,
        "end_value": end,
        "total_return": total_return,
        "cagr": cagr,
        "annualized_volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "max_drawdown_duration": dd_duration,
        "calmar": calmar,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "expectancy": expectancy,
        "exposure": exposure,
        "trade_count": (closed + open_trades).astype(np.int64),
        "closed_trade_count": closed.astype(np.int64),
        "open_trade_count": open_trades.astype(np.int64),
        "order_count": g[:, nb.G_N_ORDERS].astype(np.int64),
        "total_fees": g[:, nb.G_FEES],
        "bars": n.astype(np.int64),
    }, index=names)
    return out
