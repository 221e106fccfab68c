"""Performance statistics of a backtest, computed from the kernels' streaming state.

Every statistic is derived from a handful of running sums that the simulation
kernels keep per cash group (see :mod:`alphatrade_lab.backtest.kernels`), so
the full run, ``record="summary"`` and a chunked run report identical numbers
without storing the equity curve.

Definitions (``r_t`` is the bar return ``V_t / V_{t-1} - 1`` with ``V_{-1}``
the initial cash; ``A`` the number of bars per year, 365 days divided by the
bar length):

========================  ==============================================================
total_return              ``V_end / V_init - 1``
cagr                      ``(V_end / V_init) ** (A / n_bars) - 1``
annualized_volatility     ``std(r, ddof=1) * sqrt(A)``
sharpe                    ``mean(r) / std(r, ddof=1) * sqrt(A)`` (risk-free rate 0)
sortino                   ``mean(r) * A / (sqrt(mean(min(r, 0) ** 2)) * sqrt(A))``
max_drawdown              ``min_t V_t / max_{s<=t} V_s - 1`` (a negative fraction; the
                          initial cash is not a peak)
max_drawdown_duration     longest time from a peak to the bar that regains it (or to the
                          last bar when it never does)
calmar                    ``cagr / |max_drawdown|``
win_rate                  winning / closed trades
profit_factor             gross profit / gross loss of closed trades
expectancy                average pnl of closed trades (as vectorbt: ``win_rate *
                          avg_win - loss_rate * |avg_loss|``)
exposure                  fraction of bars that end with a position
trade_count               closed plus open trades (as vectorbt's ``trades.count()``)
========================  ==============================================================

These match vectorbt's definitions (``Portfolio.stats`` with closed trades),
except on purpose where vectorbt returns ``inf`` for a Sharpe or Sortino ratio
whose denominator is 0 (e.g. a column that never trades): here it is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as K

__all__ = ["STAT_NAMES", "YEAR", "ann_factor", "infer_bar_length", "stats_from_state"]

YEAR = pd.Timedelta(days=365)

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
    """Bars per year (365 days / bar length); NaN when the bar length is unknown.

    >>> ann_factor(pd.Timedelta("1D"))
    365.0
    """
    if bar_length is None:
        return float("nan")
    return YEAR / bar_length


def stats_from_state(cstate: np.ndarray, gstate: np.ndarray, group_start: np.ndarray,
                     names: pd.Index, bar_length: pd.Timedelta | None) -> pd.DataFrame:
    """One row of statistics per cash group from the kernels' final state.

    Parameters
    ----------
    cstate, gstate
        Column and group state after the last bar.
    group_start
        Column offsets of the groups.
    names
        Group labels (the index of the result).
    bar_length
        Bar length used for annualization and durations (None: annualized
        statistics are NaN and the drawdown duration is in bars).

    Examples
    --------
    >>> cs, gs = K.init_state_nb(1, 1, np.array([100.0]))
    >>> K.update_stats_nb(0, 0, 110.0, True, gs)
    >>> stats_from_state(cs, gs, np.array([0, 1]), pd.Index(["a"]), None)["total_return"]
    a    0.1
    Name: total_return, dtype: float64
    """
    g = gstate
    A = ann_factor(bar_length)
    init = g[:, K.G_INIT]
    end = g[:, K.G_PREV_V]
    n = g[:, K.G_NBARS]
    with np.errstate(divide="ignore", invalid="ignore"):
        total_return = end / init - 1.0
        cagr = np.where(n > 0, (end / init) ** (A / n) - 1.0, np.nan)
        mean = g[:, K.G_SUM_R] / n
        # Sums of r and r**2 are accurate here because |mean(r)| << std(r) for bar returns.
        var = np.maximum(g[:, K.G_SUM_R2] - g[:, K.G_SUM_R] * mean, 0.0) / (n - 1)
        std = np.where(n > 1, np.sqrt(var), np.nan)
        vol = std * np.sqrt(A)
        sharpe = np.where((n > 1) & (std > 0), mean / std * np.sqrt(A), np.nan)
        down = np.sqrt(g[:, K.G_DOWN2] / n) * np.sqrt(A)
        sortino = np.where((n > 1) & (down > 0), mean * A / down, np.nan)
        max_dd = g[:, K.G_MAX_DD]
        calmar = np.where(max_dd != 0, cagr / np.abs(max_dd), np.nan)
        closed = g[:, K.G_N_CLOSED]
        n_win = g[:, K.G_N_WIN]
        n_loss = g[:, K.G_N_LOSS]
        win_rate = n_win / closed
        has = closed > 0
        sum_win = np.where(has, g[:, K.G_SUM_WIN], np.nan)
        sum_loss = np.where(has, g[:, K.G_SUM_LOSS], np.nan)
        profit_factor = sum_win / np.abs(sum_loss)
        avg_win = np.where(n_win > 0, sum_win / n_win, np.where(has, 0.0, np.nan))
        avg_loss = np.where(n_loss > 0, sum_loss / n_loss, np.where(has, 0.0, np.nan))
        expectancy = win_rate * avg_win - (n_loss / closed) * np.abs(avg_loss)
        exposure = g[:, K.G_EXPOSED] / n
    dd_bars = g[:, K.G_MAX_DD_BARS].copy()
    active = g[:, K.G_LAST_BAR] - g[:, K.G_PEAK_BAR]
    dd_bars = np.maximum(dd_bars, np.where(g[:, K.G_PEAK_BAR] >= 0, active, 0.0))
    open_trades = np.zeros(len(g))
    is_open = (cstate[:, K.C_TR_DIR] != 0) & (cstate[:, K.C_TR_SIZE] > 0)
    for j in range(len(g)):
        open_trades[j] = is_open[group_start[j]:group_start[j + 1]].sum()
    if bar_length is not None:
        dd_duration = pd.to_timedelta(dd_bars * bar_length.value, unit="ns")
    else:
        dd_duration = dd_bars
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
        "order_count": g[:, K.G_N_ORDERS].astype(np.int64),
        "total_fees": g[:, K.G_FEES],
        "bars": n.astype(np.int64),
    }, index=names)
    return out
