"""A backtest :class:`~alphatrade_lab.backtest.Portfolio` as plain frames: its trades, its
daily performance and a fingerprint of the prices it ran on.

These are the frames the lab store's ``trades`` and ``daily_performance`` tables take
(:meth:`alphatrade_lab.store.LabStore.record_backtest` writes them); they live beside
``Portfolio`` because they read its internals, so the store only ever receives frames.

Daily performance
-----------------
One row per UTC calendar day and per *portfolio*, computed from the equity curve
(``pf.equity``, the value at each bar's close):

* ``daily="columns"`` (default): one portfolio per equity column, i.e. per symbol when each
  column trades its own cash, or the single ``"portfolio"`` with ``cash_sharing``/weights;
* ``daily="total"``: the sum of all equity columns as one portfolio named ``"total"``
  (the book of all symbols' separate accounts);
* ``daily="both"``: both.

A bar belongs to the UTC date of its timestamp (its open time), so a day's last hourly
bar (23:00) closes at midnight and its equity ends that day. For each day:

=================  ==============================================================
starting_equity    the previous day's ending equity; the initial cash on the first day
ending_equity      equity at the close of the day's last bar
pnl, pnl_pct       ``ending - starting`` and ``pnl / starting``
trades_count       closed trades of the portfolio's columns whose exit falls that day
win_count          those with ``pnl > 0``
max_drawdown       the deepest drawdown during the day, ``min(V_t / max_{s<=t} V_s - 1)``
                   with the peak taken over the whole run so far (as ``pf.drawdown``;
                   a negative fraction, 0 on a day at a new high)
sharpe_ratio       ``mean(r) / std(r, ddof=1) * sqrt(A)`` over the day's bar returns
                   ``r = pf.returns`` (A = ``pf.periods_per_year``); NULL with fewer than 2 bars or
                   zero volatility
=================  ==============================================================

>>> import pandas as pd, alphatrade_lab as atl
>>> close = pd.DataFrame({"AAA": [10.0, 11.0, 12.0, 11.0]},
...                      index=pd.date_range("2024-01-01", periods=4, freq="12h", tz="UTC"))
>>> pf = atl.backtest.from_signals(close, close.index == close.index[0],
...                                close.index == close.index[2], fees=0.0)
>>> frames = portfolio_frames(pf)
>>> frames["trades"][["symbol", "side", "pnl", "status"]].to_dict("records")
[{'symbol': 'AAA', 'side': 'long', 'pnl': 20.0, 'status': 'closed'}]
>>> daily = frames["daily_performance"]
>>> [str(d) for d in daily["date"]], daily["ending_equity"].tolist()
(['2024-01-01', '2024-01-02'], [110.0, 120.0])
>>> daily["trades_count"].tolist()  # the trade exits on the second day
[0, 1]
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as nb
from alphatrade_lab.errors import DataError, location

if TYPE_CHECKING:
    from alphatrade_lab.backtest.portfolio import Portfolio

__all__ = ["DAILY_MODES", "daily_performance_frame", "fingerprint", "portfolio_frames",
           "trades_frame"]

DAILY_MODES = ("columns", "total", "both")


def _as_frame(x: pd.Series | pd.DataFrame, name: str) -> pd.DataFrame:
    return x.to_frame(x.name if x.name is not None else name) if isinstance(x, pd.Series) else x


def _close_frame(pf: Any) -> pd.DataFrame | None:
    close = getattr(pf, "_close", None)
    if close is None:
        return None
    return pd.DataFrame(close.values, index=close.index, columns=close.columns)


def fingerprint(obj: Any) -> str:
    """A short, stable hash of the data behind a result (a frame, series, or Portfolio).

    For a Portfolio it hashes the close prices it was run on (values, timestamps and
    symbols), so two runs on the same market share a fingerprint.

    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1.0, 2.0]})
    >>> fingerprint(a) == fingerprint(a.copy()), fingerprint(a) == fingerprint(a * 2)
    (True, False)
    """
    if not isinstance(obj, pd.Series | pd.DataFrame):
        obj = _close_frame(obj)
        if obj is None:
            raise DataError("fingerprint: expected a DataFrame, Series or Portfolio")
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    cols = [obj.name] if isinstance(obj, pd.Series) else list(obj.columns)
    h.update(json.dumps([str(c) for c in cols]).encode())
    return h.hexdigest()[:16]


def trades_frame(pf: Portfolio) -> pd.DataFrame:
    """``pf.trades`` in the store's ``trades`` columns (without run, strategy, model).

    ``symbol`` is the close column, ``side`` long/short, ``quantity`` the size, ``pnl_pct``
    the trade return and ``fees`` entry plus exit fees. An open trade keeps its unrealized
    pnl but has no exit: ``exit_time``/``exit_price`` are NULL and ``metadata`` holds the
    mark (``{"mark_time": ..., "mark_price": ...}``, the last close). Built from the
    kernels' trade records; the text columns are categorical (one value per symbol, side
    and status, so a million trades hold a few strings).
    """
    t, is_open = pf._trade_records()
    exit_bars = t[:, nb.T_EXIT_BAR].astype(np.int64)
    exit_time = pf._times(exit_bars)
    metadata = np.full(len(t), None, dtype=object)
    for i in np.flatnonzero(is_open):
        metadata[i] = {"mark_time": exit_time[i].isoformat(),
                       "mark_price": float(t[i, nb.T_EXIT_PRICE])}
    if isinstance(exit_time, pd.DatetimeIndex):
        exit_time = exit_time.where(~is_open)
    # two columns may share a text (1 and "1"): a category per distinct text
    symbols, symbol_codes = np.unique([str(c) for c in pf.columns], return_inverse=True)
    return pd.DataFrame({
        "symbol": pd.Categorical.from_codes(symbol_codes[t[:, nb.T_COL].astype(np.int64)],
                                            symbols),
        "side": pd.Categorical.from_codes((t[:, nb.T_DIR] < 0).astype(np.int8),
                                          ["long", "short"]),
        "quantity": t[:, nb.T_SIZE],
        "entry_time": pf._times(t[:, nb.T_ENTRY_BAR]),
        "exit_time": exit_time,
        "entry_price": t[:, nb.T_ENTRY_PRICE],
        "exit_price": np.where(is_open, np.nan, t[:, nb.T_EXIT_PRICE]),
        "pnl": t[:, nb.T_PNL],
        "pnl_pct": t[:, nb.T_RET],
        "fees": t[:, nb.T_ENTRY_FEES] + t[:, nb.T_EXIT_FEES],
        "status": pd.Categorical.from_codes(is_open.astype(np.int8), ["closed", "open"]),
        "metadata": metadata,
    })


def _daily_rows(eq: np.ndarray, init: np.ndarray, starts: np.ndarray, bars_per_year: float,
                trades: np.ndarray, wins: np.ndarray) -> dict[str, np.ndarray]:
    """Daily rows of equity curves ``eq`` (bars × portfolios) whose days begin at the bars
    ``starts``; ``trades``/``wins`` are the closed-trade counts (days × portfolios). Each
    column of the result is days × portfolios."""
    n = len(eq)
    ends = np.r_[starts[1:], n] - 1
    ending = eq[ends]
    starting = np.vstack([init[None, :], ending[:-1]])
    prev = np.vstack([init[None, :], eq[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = eq / prev - 1.0
        valid = ~np.isnan(rets)
        count = np.add.reduceat(valid, starts, axis=0)
        mean = np.add.reduceat(np.where(valid, rets, 0.0), starts, axis=0) / count
        day = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
        dev = np.where(valid, rets - mean[day], 0.0)
        std = np.sqrt(np.add.reduceat(dev * dev, starts, axis=0) / (count - 1))
        sharpe = np.where((count >= 2) & (std > 0), mean / std * np.sqrt(bars_per_year),
                          np.nan)
        drawdown = eq / np.maximum.accumulate(eq, axis=0) - 1.0
        pnl_pct = ending / starting - 1.0
    return {
        "starting_equity": starting, "ending_equity": ending, "pnl": ending - starting,
        "pnl_pct": pnl_pct, "trades_count": trades, "win_count": wins,
        "max_drawdown": np.minimum.reduceat(drawdown, starts, axis=0), "sharpe_ratio": sharpe,
    }


def daily_performance_frame(pf: Portfolio, daily: str = "columns") -> pd.DataFrame:
    """Daily performance rows of a Portfolio (see the module docstring for definitions).

    Returns the ``daily_performance`` columns except ``run_id``, sorted by portfolio and
    date. Computed for all portfolios at once from the equity array and the kernels'
    trade records (a closed trade counts for the group of its column, on the day of its
    exit bar).
    """
    if daily not in DAILY_MODES:
        raise DataError(f"daily_performance_frame: daily must be one of {DAILY_MODES}, "
                        f"got {daily!r}")
    eq = _as_frame(pf.equity, "portfolio")
    if not isinstance(eq.index, pd.DatetimeIndex):
        raise DataError("daily_performance_frame: the portfolio's index must be a DatetimeIndex "
                        "to group its equity by day")
    if len(eq) == 0:
        return pd.DataFrame(columns=["portfolio", "date"])
    values = eq.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        where = location("daily_performance_frame: equity", eq.columns[c], int(r),
                         label=eq.index[r])
        raise DataError(f"{where} is not finite")
    index = eq.index.tz_localize("UTC") if eq.index.tz is None else eq.index.tz_convert("UTC")
    days = index.normalize()
    new_day = np.r_[True, days[1:] != days[:-1]]
    starts = np.flatnonzero(new_day)
    day_of_bar = np.cumsum(new_day) - 1
    n_days, n_groups = len(starts), values.shape[1]

    t, is_open = pf._trade_records()
    closed = t[~is_open]
    group = np.searchsorted(pf._group_start, closed[:, nb.T_COL].astype(np.int64),
                            side="right") - 1
    key = day_of_bar[closed[:, nb.T_EXIT_BAR].astype(np.int64)] * n_groups + group
    size = n_days * n_groups
    trades = np.bincount(key, minlength=size).reshape(n_days, n_groups)
    wins = np.bincount(key, weights=closed[:, nb.T_PNL] > 0,
                       minlength=size).reshape(n_days, n_groups).astype(np.int64)
    init = np.asarray(pf.init_cash, dtype=np.float64).reshape(-1)
    bars_per_year = pf.periods_per_year
    parts = []
    if daily in ("columns", "both"):
        rows = _daily_rows(values, init, starts, bars_per_year, trades, wins)
        parts.append(pd.DataFrame({
            "portfolio": np.repeat([str(c) for c in eq.columns], n_days),
            "date": np.tile(days[starts].date, n_groups),
            **{k: v.T.reshape(-1) for k, v in rows.items()}}))
    if daily in ("total", "both"):
        rows = _daily_rows(values.sum(axis=1, keepdims=True), init.sum(keepdims=True), starts,
                           bars_per_year, trades.sum(axis=1, keepdims=True),
                           wins.sum(axis=1, keepdims=True))
        parts.append(pd.DataFrame({"portfolio": "total", "date": days[starts].date,
                                   **{k: v[:, 0] for k, v in rows.items()}}))
    return pd.concat(parts, ignore_index=True)


def portfolio_frames(pf: Portfolio, daily: str = "columns") -> dict[str, pd.DataFrame]:
    """The store frames of a Portfolio: ``{"trades": ..., "daily_performance": ...}``.

    ``trades`` is :func:`trades_frame`, ``daily_performance`` is
    :func:`daily_performance_frame` with ``daily`` = ``"columns"``, ``"total"`` or ``"both"``;
    neither has a ``run_id`` (the store adds it).
    """
    return {"trades": trades_frame(pf),
            "daily_performance": daily_performance_frame(pf, daily)}
