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
    mark (``{"mark_time": ..., "mark_price": ...}``, the last close).
    """
    t = pf.trades
    is_open = (t["status"] == "open").to_numpy()
    exit_time = t["exit_time"].where(~is_open)
    exit_price = t["exit_price"].where(~is_open)
    metadata = np.full(len(t), None, dtype=object)
    for i in np.flatnonzero(is_open):
        metadata[i] = {"mark_time": t["exit_time"].iloc[i].isoformat(),
                       "mark_price": float(t["exit_price"].iloc[i])}
    return pd.DataFrame({
        "symbol": t["column"].astype(str).to_numpy(),
        "side": t["direction"].to_numpy(),
        "quantity": t["size"].to_numpy(),
        "entry_time": t["entry_time"],
        "exit_time": exit_time,
        "entry_price": t["entry_price"].to_numpy(),
        "exit_price": exit_price,
        "pnl": t["pnl"].to_numpy(),
        "pnl_pct": t["return"].to_numpy(),
        "fees": (t["entry_fees"] + t["exit_fees"]).to_numpy(),
        "status": t["status"].to_numpy(),
        "metadata": metadata,
    })


def _daily_one(eq: pd.Series, init: float, bars_per_year: float,
               exits: pd.Series) -> pd.DataFrame:
    """Daily rows of one equity curve; ``exits`` are closed-trade pnls indexed by exit time."""
    day = eq.index.normalize()
    prev = np.concatenate([[init], eq.to_numpy()[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = pd.Series(eq.to_numpy() / prev - 1.0, index=eq.index)
    dd = eq / eq.cummax() - 1.0
    g = eq.groupby(day, sort=True)
    ending = g.last()
    starting = ending.shift(1)
    starting.iloc[0] = init
    rg = rets.groupby(day, sort=True)
    mean, std, n = rg.mean(), rg.std(ddof=1), rg.count()
    sharpe = (mean / std * np.sqrt(bars_per_year)).where((n >= 2) & (std > 0))
    exit_day = exits.index.normalize()
    tc = exits.groupby(exit_day).size().reindex(ending.index, fill_value=0)
    wc = (exits > 0).groupby(exit_day).sum().reindex(ending.index, fill_value=0)
    return pd.DataFrame({
        "date": ending.index.date,
        "starting_equity": starting.to_numpy(),
        "ending_equity": ending.to_numpy(),
        "pnl": (ending - starting).to_numpy(),
        "pnl_pct": (ending / starting - 1.0).to_numpy(),
        "trades_count": tc.to_numpy().astype(np.int64),
        "win_count": wc.to_numpy().astype(np.int64),
        "max_drawdown": dd.groupby(day, sort=True).min().to_numpy(),
        "sharpe_ratio": sharpe.to_numpy(),
    })


def daily_performance_frame(pf: Portfolio, daily: str = "columns") -> pd.DataFrame:
    """Daily performance rows of a Portfolio (see the module docstring for definitions).

    Returns the ``daily_performance`` columns except ``run_id``, sorted by portfolio and
    date.
    """
    if daily not in DAILY_MODES:
        raise DataError(f"daily_performance_frame: daily must be one of {DAILY_MODES}, "
                        f"got {daily!r}")
    eq = _as_frame(pf.equity, "portfolio")
    if not isinstance(eq.index, pd.DatetimeIndex):
        raise DataError("daily_performance_frame: the portfolio's index must be a DatetimeIndex "
                        "to group its equity by day")
    if eq.index.tz is None:
        eq = eq.tz_localize("UTC")
    else:
        eq = eq.tz_convert("UTC")
    if len(eq) == 0:
        return pd.DataFrame(columns=["portfolio", "date"])
    bad = ~np.isfinite(eq.to_numpy())
    if bad.any():
        r, c = np.argwhere(bad)[0]
        where = location("daily_performance_frame: equity", eq.columns[c], int(r),
                         label=eq.index[r])
        raise DataError(f"{where} is not finite")
    bars_per_year = pf.periods_per_year
    init = np.asarray(pf.init_cash, dtype=np.float64).reshape(-1)
    trades = pf.trades
    closed = trades[trades["status"] == "closed"]
    exit_idx = pd.DatetimeIndex(closed["exit_time"])
    exit_idx = exit_idx.tz_localize("UTC") if exit_idx.tz is None else exit_idx.tz_convert("UTC")
    pnl = pd.Series(closed["pnl"].to_numpy(), index=exit_idx)
    symbols = closed["column"].astype(str).to_numpy()
    # each column on its own cash: a column's trades; a cash-sharing group: all trades
    per_column = [str(c) for c in eq.columns] == [str(c) for c in getattr(pf, "columns", [])]
    parts = []
    if daily in ("columns", "both"):
        for j, col in enumerate(eq.columns):
            exits = pnl[symbols == str(col)] if per_column else pnl
            part = _daily_one(eq.iloc[:, j], float(init[j]), bars_per_year, exits)
            part.insert(0, "portfolio", str(col))
            parts.append(part)
    if daily in ("total", "both"):
        part = _daily_one(eq.sum(axis=1), float(init.sum()), bars_per_year, pnl)
        part.insert(0, "portfolio", "total")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def portfolio_frames(pf: Portfolio, daily: str = "columns") -> dict[str, pd.DataFrame]:
    """The store frames of a Portfolio: ``{"trades": ..., "daily_performance": ...}``.

    ``trades`` is :func:`trades_frame`, ``daily_performance`` is
    :func:`daily_performance_frame` with ``daily`` = ``"columns"``, ``"total"`` or ``"both"``;
    neither has a ``run_id`` (the store adds it).
    """
    return {"trades": trades_frame(pf),
            "daily_performance": daily_performance_frame(pf, daily)}
