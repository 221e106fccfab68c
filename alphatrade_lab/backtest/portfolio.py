"""The result of a backtest: labelled equity, positions, orders, trades, stats and a plot."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as nb
from alphatrade_lab.backtest.metrics import TimeBasis, basis_from_times, stats_from_state
from alphatrade_lab.errors import unknown_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from alphatrade_lab.backtest._inputs import Frame

__all__ = ["Portfolio"]


class Portfolio:
    """Labelled results of :func:`~alphatrade_lab.backtest.from_signals` or
    :func:`~alphatrade_lab.backtest.from_weights`.

    Per-column results (``positions``, ``orders``, ``trades``) use close's
    columns; per-portfolio results (``equity``, ``cash``, ``returns``, stats)
    use one column per cash group: each column on its own, or a single
    ``"portfolio"`` with ``cash_sharing`` / weights. A Series ``close`` gives
    Series and scalars instead of one-column frames.

    Examples
    --------
    >>> import numpy as np
    >>> import alphatrade_lab as atl
    >>> from alphatrade_lab.backtest import from_signals
    >>> close = atl.data.to_wide(atl.data.load_sample(["AAA"]), "close")["AAA"].iloc[:500]
    >>> pf = from_signals(close, np.arange(500) % 50 == 0, np.arange(500) % 50 == 25)
    >>> len(pf.trades), int(pf.stats()["trade_count"])
    (10, 10)
    """

    def __init__(self, *, close: Frame, groups: pd.Index, group_start: np.ndarray,
                 equity: np.ndarray | None, cash: np.ndarray | None,
                 positions: np.ndarray | None, orders: np.ndarray, trades: np.ndarray,
                 cstate: np.ndarray, gstate: np.ndarray, stats: pd.DataFrame,
                 basis: TimeBasis,
                 init_cash: np.ndarray,
                 series: Callable[[int], np.ndarray] | None = None):
        self._close = close
        self._groups = groups
        self._group_start = group_start
        # Per-bar equity, cash and positions, or (all None) a function that computes one
        # of them (0, 1, 2) on first use: asking for the equity does not build the others.
        self._series: list[np.ndarray | None] = [None, None, None]
        if series is None:
            if equity is None or cash is None or positions is None:
                raise ValueError("Portfolio: give equity, cash and positions, or series")
            self._series = [equity, cash, positions]
        self._make_series = series
        self._frames: list[pd.Series | pd.DataFrame | None] = [None, None, None]
        self._orders = orders
        self._closed_trades = trades
        self._sorted_trades: tuple[np.ndarray, np.ndarray] | None = None
        self._cstate = cstate
        self._gstate = gstate
        self.basis = basis
        self._stats = stats
        self.init_cash = init_cash
        self._single = close.kind == "series" and len(groups) == 1

    def _get_series(self, which: int) -> np.ndarray:
        out = self._series[which]
        if out is None:
            assert self._make_series is not None  # __init__ keeps one or the other
            out = self._series[which] = self._make_series(which)
        return out

    @property
    def _equity(self) -> np.ndarray:
        return self._get_series(0)

    @property
    def _cash(self) -> np.ndarray:
        return self._get_series(1)

    @property
    def _positions(self) -> np.ndarray:
        return self._get_series(2)

    # ----------------------------------------------------------- labelling helpers
    @property
    def index(self) -> pd.Index:
        return self._close.index

    @property
    def columns(self) -> pd.Index:
        return self._close.columns

    def _group_frame(self, values: np.ndarray, name: str) -> pd.Series | pd.DataFrame:
        """``values`` (bars × groups) labelled, without copying them: the caller hands
        over a fresh array, or keeps it unchanged (see :meth:`_labelled`)."""
        if self._single:
            label = self._close.name if self._close.name is not None else name
            return pd.Series(values[:, 0], index=self.index, name=label, copy=False)
        return pd.DataFrame(values, index=self.index, columns=self._groups, copy=False)

    def _labelled(self, which: int) -> pd.Series | pd.DataFrame:
        """Equity, cash or positions (0, 1, 2) labelled, sharing the portfolio's array.

        Each call returns a shallow copy of one cached object: pandas' copy-on-write
        copies the data before a user's assignment changes it, so the portfolio's own
        array is never written (and no 80 MB copy is made for 10,000,000 bars)."""
        out = self._frames[which]
        if out is None:
            values = self._get_series(which)
            if which < 2:
                out = self._group_frame(values, ("equity", "cash")[which])
            elif self._close.kind == "series":
                out = pd.Series(values[:, 0], index=self.index, name=self._close.name,
                                copy=False)
            else:
                out = pd.DataFrame(values, index=self.index, columns=self.columns, copy=False)
            self._frames[which] = out
        return out.copy(deep=False)

    def _group_scalar(self, values: pd.Series) -> Any:
        return float(values.iloc[0]) if self._single else values

    def _times(self, bars: np.ndarray) -> Any:
        return self.index[bars.astype(np.int64)]

    # ----------------------------------------------------------- time series
    @property
    def equity(self) -> pd.Series | pd.DataFrame:
        """Portfolio value (cash + positions at the last valid close) at each bar's close."""
        return self._labelled(0)

    @property
    def cash(self) -> pd.Series | pd.DataFrame:
        """Cash after each bar (includes the proceeds of short sales)."""
        return self._labelled(1)

    @property
    def returns(self) -> pd.Series | pd.DataFrame:
        """Bar returns of the equity; the first is relative to the initial cash."""
        eq = self._equity
        prev = np.vstack([self.init_cash[None, :], eq[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = (eq - prev) / prev
        return self._group_frame(rets, "returns")

    @property
    def positions(self) -> pd.Series | pd.DataFrame:
        """Position (shares, negative when short) of each column after each bar."""
        return self._labelled(2)

    @property
    def drawdown(self) -> pd.Series | pd.DataFrame:
        """Equity relative to its running peak, minus 1."""
        eq = self.equity
        return eq / eq.cummax() - 1.0

    # ----------------------------------------------------------- records
    @property
    def orders(self) -> pd.DataFrame:
        """Filled orders: column, timestamp, side, size, price (slippage included), fees."""
        o = self._orders
        return pd.DataFrame({
            "column": self.columns[o[:, nb.O_COL].astype(np.int64)],
            "timestamp": self._times(o[:, nb.O_BAR]),
            "side": np.where(o[:, nb.O_SIDE] > 0, "buy", "sell"),
            "size": o[:, nb.O_SIZE],
            "price": o[:, nb.O_PRICE],
            "fees": o[:, nb.O_FEES],
        })

    def _open_trades(self) -> np.ndarray:
        cs = self._cstate
        cols = np.flatnonzero((cs[:, nb.C_TR_DIR] != 0) & (cs[:, nb.C_TR_SIZE] > 0))
        out = np.empty((len(cols), nb.N_TRADE))
        last = len(self.index) - 1
        for r, c in enumerate(cols):
            size = cs[c, nb.C_TR_SIZE]
            entry_price = cs[c, nb.C_TR_GROSS] / size
            exit_price = cs[c, nb.C_VAL]
            sign = cs[c, nb.C_TR_DIR]
            pnl = sign * (size * exit_price - size * entry_price) - cs[c, nb.C_TR_FEES]
            out[r] = [c, cs[c, nb.C_TR_BAR], last, entry_price, exit_price, size, sign, pnl,
                      pnl / (size * entry_price), cs[c, nb.C_TR_FEES], 0.0]
        return out

    def _trade_records(self) -> tuple[np.ndarray, np.ndarray]:
        """The trade records (``T_*`` columns), closed then open, sorted by column and
        entry bar, and which of them are open (computed once; do not modify)."""
        if self._sorted_trades is None:
            closed = self._closed_trades
            op = self._open_trades()
            t = np.vstack([closed, op]) if len(op) else closed
            is_open = np.r_[np.zeros(len(closed), dtype=bool), np.ones(len(op), dtype=bool)]
            key = t[:, nb.T_COL] * (len(self.index) + 1) + t[:, nb.T_ENTRY_BAR]
            if len(t) and not (np.diff(key) >= 0).all():  # the kernels write them in order
                order = np.argsort(key, kind="stable")
                t, is_open = t[order], is_open[order]
            self._sorted_trades = (t, is_open)
        return self._sorted_trades

    @property
    def trades(self) -> pd.DataFrame:
        """Round trips, closed then open, one row per (partial) exit.

        Columns: column, direction (long/short), status (closed/open), entry and
        exit time and price (fill prices, slippage included; an open trade is
        valued at the last close), size, pnl (net of entry and exit fees),
        return (pnl / entry value), duration (exit - entry time; bars without
        a DatetimeIndex) and the fees. A reversal closes one trade and opens the
        next at the same fill, splitting its fees by size.
        """
        t, is_open = self._trade_records()
        status = np.where(is_open, "open", "closed").astype(object)
        entry, exit_ = self._times(t[:, nb.T_ENTRY_BAR]), self._times(t[:, nb.T_EXIT_BAR])
        if isinstance(self.index, pd.DatetimeIndex):
            duration = pd.TimedeltaIndex(exit_ - entry)
        else:
            duration = (t[:, nb.T_EXIT_BAR] - t[:, nb.T_ENTRY_BAR]).astype(np.int64)
        return pd.DataFrame({
            "column": self.columns[t[:, nb.T_COL].astype(np.int64)],
            "direction": np.where(t[:, nb.T_DIR] > 0, "long", "short"),
            "status": status,
            "entry_time": entry,
            "exit_time": exit_,
            "entry_price": t[:, nb.T_ENTRY_PRICE],
            "exit_price": t[:, nb.T_EXIT_PRICE],
            "size": t[:, nb.T_SIZE],
            "pnl": t[:, nb.T_PNL],
            "return": t[:, nb.T_RET],
            "duration": duration,
            "entry_fees": t[:, nb.T_ENTRY_FEES],
            "exit_fees": t[:, nb.T_EXIT_FEES],
        })

    # ----------------------------------------------------------- summary
    @property
    def total_return(self) -> float | pd.Series:
        """Final equity over initial cash, minus 1 (per group)."""
        return self._group_scalar(self._stats["total_return"])

    @property
    def final_value(self) -> float | pd.Series:
        """Equity after the last bar (per group)."""
        return self._group_scalar(self._stats["end_value"])

    @property
    def bar_length(self) -> pd.Timedelta | None:
        """The bar length (``freq``, or the most common gap between timestamps)."""
        return self.basis.bar_length

    @property
    def periods_per_year(self) -> float:
        """Bars per year used to annualise (observed from the index unless overridden)."""
        return self.basis.periods_per_year

    def stats(self, *, periods_per_year: float | None = None, year_freq: Any = None,
              calendar: str | None = None) -> pd.Series | pd.DataFrame:
        """Performance statistics, one row per group (a Series for a single Series input).

        Annualised from the data's calendar: CAGR and durations from the timestamps,
        volatility, Sharpe and Sortino from the observed bars per year. See
        :mod:`alphatrade_lab.backtest.metrics` for every formula.

        Parameters
        ----------
        periods_per_year, year_freq, calendar
            At most one, to annualise with a given number of bars per year (e.g. 252),
            with ``year_freq / bar length`` (vectorbt's convention, e.g. ``"365D"``) or
            with an ``exchange_calendars`` calendar (e.g. ``"XNYS"``).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from alphatrade_lab.backtest import from_signals
        >>> days = pd.bdate_range("2024-01-01", "2024-12-31", tz="UTC")  # 262 weekdays
        >>> close = pd.Series(np.linspace(100.0, 120.0, len(days)), index=days)
        >>> pf = from_signals(close, close.index == days[0], close.index == days[-1])
        >>> pf.periods_per_year, round(float(pf.stats()["cagr"]), 4)  # +20% in 366 days
        (261.0, 0.1994)
        >>> round(float(pf.stats(periods_per_year=252)["sharpe"] / pf.stats()["sharpe"]), 4)
        0.9826
        """
        stats = self._stats
        if periods_per_year is not None or year_freq is not None or calendar is not None:
            b = self.basis
            basis = basis_from_times(b.times, len(self.index), b.bar_length,
                                     periods_per_year=periods_per_year, year_freq=year_freq,
                                     calendar=calendar)
            stats = stats_from_state(self._cstate, self._gstate, self._group_start,
                                     self._groups, basis)
        return stats.iloc[0].rename(self._close.name) if self._single else stats.copy()

    def plot(self, column: Any = None) -> Figure:
        """Equity, drawdown and the close with trade entry/exit markers for one group.

        The figure is made without pyplot (no global state, works headless) and shows
        itself as a PNG when it is a notebook cell's result, with or without
        ``%matplotlib inline``; returns the Figure.
        """
        from alphatrade_lab._figure import NotebookFigure

        if column is not None and column not in self._groups:
            raise unknown_name("group", column, self._groups, "this portfolio")
        g = 0 if column is None else self._groups.get_loc(column)
        c0, c1 = self._group_start[g], self._group_start[g + 1]
        eq = pd.Series(self._equity[:, g], index=self.index)
        fig = NotebookFigure(figsize=(10, 7), layout="constrained")
        ax_eq, ax_dd, ax_px = fig.subplots(3, 1, sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1, 2]})
        ax_eq.plot(eq.index, eq.to_numpy(), color="tab:blue", lw=1)
        ax_eq.set_ylabel("equity")
        total = self._stats["total_return"].iloc[g]
        ax_eq.set_title(f"{self._groups[g]}: total return {total:.2%}")
        dd = eq / eq.cummax() - 1.0
        ax_dd.fill_between(dd.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.4)
        ax_dd.set_ylabel("drawdown")
        trades = self.trades
        for c in range(c0, c1):
            name = self.columns[c]
            ax_px.plot(self.index, self._close.values[:, c], lw=0.8, label=str(name))
            tc = trades[trades["column"] == name]
            long_ = tc["direction"] == "long"
            ax_px.scatter(tc.loc[long_, "entry_time"], tc.loc[long_, "entry_price"],
                          marker="^", color="tab:green", s=25, zorder=3)
            ax_px.scatter(tc.loc[~long_, "entry_time"], tc.loc[~long_, "entry_price"],
                          marker="v", color="tab:red", s=25, zorder=3)
            done = tc["status"] == "closed"
            ax_px.scatter(tc.loc[done, "exit_time"], tc.loc[done, "exit_price"],
                          marker="x", color="black", s=25, zorder=3)
        ax_px.set_ylabel("price")
        if c1 - c0 > 1:
            ax_px.legend(loc="upper left", fontsize="small")
        return fig

    def __repr__(self) -> str:
        return (f"Portfolio({len(self.index)} bars, {len(self.columns)} columns, "
                f"{len(self._groups)} groups, {len(self._orders)} orders)")
