"""Round trips from fills, booked by the backtest kernel's own ``on_fill_nb``.

Whatever broker filled the orders, the engine's trades are computed from its fills with
the arithmetic that gives :attr:`Portfolio.trades`, so a paper replay's trades equal the
backtest's and a live run's differ only where its fills do.
"""

from __future__ import annotations

from array import array

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.live.orders import Fill

__all__ = ["KernelRecords", "TradeBook"]

_US = 1000  # the kernel keeps bar numbers as float64: microseconds since the epoch are exact


def _bar_number(ts: pd.Timestamp) -> float:
    return float(ts.value // _US)


class KernelRecords:
    """Record buffers for one kernel call on one of ``k`` columns: room for one order
    record (``orders=True``) and/or one trade record (``trades=True``), every column writing
    to row 0 (the caller reads the row after the call)."""

    def __init__(self, k: int, *, orders: bool, trades: bool):
        k = max(k, 1)
        self.orders = np.zeros((1, backtest_nb.N_ORDER))
        self.trades = np.zeros((1, backtest_nb.N_TRADE))
        self.start = np.zeros(k, dtype=np.int64)
        self.o_count = np.zeros(k, dtype=np.int64)
        self.t_count = np.zeros(k, dtype=np.int64)
        self.o_cap = np.full(k, int(orders), dtype=np.int64)
        self.t_cap = np.full(k, int(trades), dtype=np.int64)

    def args(self, c: int) -> tuple:
        """The kernel's record arguments (orders, o_start, o_count, o_cap, trades, t_start,
        t_count, t_cap), column ``c``'s counts reset."""
        self.o_count[c] = 0
        self.t_count[c] = 0
        return (self.orders, self.start, self.o_count, self.o_cap, self.trades, self.start,
                self.t_count, self.t_cap)


class TradeBook:
    """Open and closed trades per symbol, from fills in the order they happened."""

    def __init__(self) -> None:
        self.symbols: list[str] = []
        self._col: dict[str, int] = {}
        self.cstate = np.zeros((0, backtest_nb.N_CSTATE))
        self.gstate = np.zeros((0, backtest_nb.N_GSTATE))
        self.closed = array("d")  # closed trade records, N_TRADE numbers each (compact)
        self._rec = KernelRecords(1, orders=False, trades=True)

    def _column(self, symbol: str) -> int:
        c = self._col.get(symbol)
        if c is None:
            c = self._col[symbol] = len(self.symbols)
            self.symbols.append(symbol)
            cs, gs = backtest_nb.init_state_nb(1, 1, np.zeros(1))
            self.cstate = np.vstack([self.cstate, cs])
            self.gstate = np.vstack([self.gstate, gs])
            self._rec = KernelRecords(len(self.symbols), orders=False, trades=True)
        return c

    def add(self, fill: Fill, bar_time: pd.Timestamp) -> None:
        """Book ``fill`` (of the bar opened at ``bar_time``)."""
        c = self._column(fill.symbol)
        side = 1.0 if fill.side == "buy" else -1.0
        rec = self._rec
        backtest_nb.on_fill_nb(c, c, _bar_number(bar_time), side, fill.qty, fill.price,
                               fill.fees, self.cstate, self.gstate, *rec.args(c))
        if rec.t_count[c]:
            self.closed.extend(rec.trades[0])

    def mark(self, symbol: str, price: float) -> None:
        """Value ``symbol``'s open trade at ``price`` (the last close)."""
        c = self._column(symbol)  # first: it may grow the state arrays
        self.cstate[c, backtest_nb.C_VAL] = price

    def position(self, symbol: str) -> float:
        """Shares held by the fills so far (negative: short)."""
        c = self._col.get(symbol)
        if c is None:
            return 0.0
        return float(self.cstate[c, backtest_nb.C_TR_DIR] * self.cstate[c, backtest_nb.C_TR_SIZE])

    def positions(self) -> dict[str, float]:
        """:meth:`position` of every symbol, in one pass."""
        cs = self.cstate
        qty = (cs[:, backtest_nb.C_TR_DIR] * cs[:, backtest_nb.C_TR_SIZE]).tolist()
        return dict(zip(self.symbols, qty, strict=True))

    def frame(self, last_time: pd.Timestamp | None = None) -> pd.DataFrame:
        """The trades with :attr:`Portfolio.trades`' columns (``column`` is the symbol);
        open trades are valued at the last mark and end at ``last_time``."""
        closed = np.frombuffer(self.closed, dtype=np.float64).reshape(-1, backtest_nb.N_TRADE)
        rows: list[list[float]] = []
        cs = self.cstate
        last = _bar_number(last_time) if last_time is not None else np.nan
        for c in range(len(self.symbols)):
            size = cs[c, backtest_nb.C_TR_SIZE]
            if cs[c, backtest_nb.C_TR_DIR] == 0 or not size > 0:
                continue
            entry_price = cs[c, backtest_nb.C_TR_GROSS] / size
            exit_price = cs[c, backtest_nb.C_VAL]
            sign = cs[c, backtest_nb.C_TR_DIR]
            pnl = sign * (size * exit_price - size * entry_price) - cs[c, backtest_nb.C_TR_FEES]
            rows.append([c, cs[c, backtest_nb.C_TR_BAR], last, entry_price, exit_price, size,
                         sign, pnl, pnl / (size * entry_price), cs[c, backtest_nb.C_TR_FEES],
                         0.0])
        t = np.vstack([closed, np.asarray(rows, dtype=np.float64).reshape(-1,
                                                                           backtest_nb.N_TRADE)])
        flags = np.r_[np.zeros(len(closed), dtype=bool), np.ones(len(rows), dtype=bool)]
        # the backtest's order: by symbol (its column order: sorted), then entry bar
        rank = np.argsort(np.argsort(np.array(self.symbols, dtype=object))) if self.symbols \
            else np.zeros(0, dtype=np.int64)
        col = t[:, backtest_nb.T_COL].astype(np.int64)
        order = np.lexsort((t[:, backtest_nb.T_ENTRY_BAR], rank[col])) if len(t) else col
        t, flags, col = t[order], flags[order], col[order]

        def times(x: np.ndarray) -> pd.DatetimeIndex:
            ns = np.where(np.isnan(x), np.iinfo(np.int64).min, np.nan_to_num(x) * _US)
            return pd.DatetimeIndex(ns.astype(np.int64)).tz_localize("UTC")

        entry, exit_ = times(t[:, backtest_nb.T_ENTRY_BAR]), times(t[:, backtest_nb.T_EXIT_BAR])
        return pd.DataFrame({
            "column": pd.Index(np.array(self.symbols, dtype=object)[col], dtype=object),
            "direction": np.where(t[:, backtest_nb.T_DIR] > 0, "long", "short"),
            "status": np.where(flags, "open", "closed").astype(object),
            "entry_time": entry,
            "exit_time": exit_,
            "entry_price": t[:, backtest_nb.T_ENTRY_PRICE],
            "exit_price": t[:, backtest_nb.T_EXIT_PRICE],
            "size": t[:, backtest_nb.T_SIZE],
            "pnl": t[:, backtest_nb.T_PNL],
            "return": t[:, backtest_nb.T_RET],
            "duration": pd.TimedeltaIndex(exit_ - entry),
            "entry_fees": t[:, backtest_nb.T_ENTRY_FEES],
            "exit_fees": t[:, backtest_nb.T_EXIT_FEES],
        })
