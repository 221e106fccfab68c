"""Signal and target-weight backtests: validate inputs, run the kernels, label the results.

Execution model (vectorbt's ``Portfolio.from_signals`` with ``accumulate=False``):

* A signal at bar ``t`` fills at bar ``t``'s close (``execution="close"``) or at
  bar ``t + 1``'s open (``execution="next_open"``). A buy fills at ``price * (1 +
  slippage)``, a sell at ``price * (1 - slippage)``; each fill pays ``fees *
  traded value + fixed_fees``.
* An entry spends ``size`` (a fraction, default all) of the available cash,
  fees included. A short entry sells the largest size whose proceeds, fees
  included, the free cash (cash not held as short collateral) can cover.
* ``direction="longonly"``: entries buy, exits sell the whole position.
  ``"shortonly"``: entries short, exits cover. ``"both"``: entries go long,
  exits go short, and an opposite signal reverses the position in one order.
  Repeated entries while in a position are ignored (no pyramiding).
* **Same bar entry and exit**: both are ignored (vectorbt's default
  ``upon_long_conflict = upon_short_conflict = upon_dir_conflict = "ignore"``).
* **NaN prices**: nothing fills at a NaN close (or, for ``next_open``, a NaN
  open: the pending order is dropped); the position keeps the last valid close
  as its value, so equity is carried.
* **Stops** (``sl_stop``/``tp_stop``, fractions of the entry's unslipped fill
  price): checked at each bar's close after the entry bar. A long exits when the
  close is at or below ``entry * (1 - sl_stop)`` or at or above ``entry * (1 +
  tp_stop)`` (mirrored for shorts). The exit fills at that close
  (``next_open``: at the next open) without slippage, like vectorbt's default
  ``stop_exit_price="stoplimit"``; it takes precedence over the bar's signals.
* **Size granularity** (``size_granularity``, vectorbt's option of that name):
  every order's size is rounded down to a multiple of it (1: whole shares), after
  the cash limit; a size that rounds to 0 places no order.
* Orders smaller than :data:`~alphatrade_lab.backtest.kernels.MIN_SIZE` shares are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphatrade_lab.backtest import kernels as nb
from alphatrade_lab.backtest._inputs import (
    Frame,
    as_prices,
    as_signal,
    cost_fraction,
    granularity,
    group_offsets,
    parse_direction,
    parse_execution,
    per_column,
)
from alphatrade_lab.backtest.kernels import (
    N_FILL,
    count_true_nb,
    expand_1col_nb,
    expand_column_nb,
    simulate_signals_1col_nb,
)
from alphatrade_lab.backtest.metrics import (
    basis_from_times,
    infer_bar_length,
    stats_from_state,
    time_basis,
)
from alphatrade_lab.backtest.portfolio import Portfolio
from alphatrade_lab.errors import DataError

__all__ = ["from_signals", "from_signals_chunked", "from_weights"]

Record = Literal["full", "summary"]
_EMPTY = np.empty((0, 0))
_NO_FILLS = np.empty((0, N_FILL))


def _init_cash(init_cash: float, n_groups: int) -> np.ndarray:
    value = float(init_cash)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"init_cash must be finite and > 0, got {init_cash!r}")
    return np.full(n_groups, value)


def _group_names(frame: Frame, cash_sharing: bool) -> pd.Index:
    return pd.Index(["portfolio"]) if cash_sharing else frame.columns


def _capacity(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cap = counts.astype(np.int64)
    start = np.zeros(len(cap), dtype=np.int64)
    np.cumsum(cap[:-1], out=start[1:])
    return start, cap


def _signal_counts(sig: np.ndarray, n: int, k: int) -> np.ndarray:
    counts = count_true_nb(sig) * (n if sig.shape[0] == 1 else 1)
    return np.broadcast_to(counts, (k,))


def _compact(buf: np.ndarray, start: np.ndarray, count: np.ndarray, cap: np.ndarray) -> np.ndarray:
    if (count > cap).any():
        raise RuntimeError("internal error: record buffer too small")
    count = count.astype(np.int64)
    total = int(count.sum())
    # Row r of the output is row start[c] + (r - offset[c]) of the buffer, for the column
    # c whose records it belongs to.
    offset = np.cumsum(count) - count
    rows = np.arange(total, dtype=np.int64) + np.repeat(start.astype(np.int64) - offset, count)
    return buf.take(rows, axis=0)


class _SignalParams:
    """Validated scalar/per-column parameters shared by the one-shot and chunked runs."""

    def __init__(self, k: int, *, fees, fixed_fees, slippage, size, size_granularity,
                 direction, execution, sl_stop, tp_stop):
        self.fees = cost_fraction(fees, "fees", k)
        self.fixed_fees = per_column(fixed_fees, "fixed_fees", k)
        self.slippage = cost_fraction(slippage, "slippage", k)
        frac = 1.0 if size is None else size
        self.frac = per_column(frac, "size", k, high=1.0)
        if (self.frac == 0).any():
            raise ValueError("size must be in (0, 1] (a fraction of the available cash), got 0")
        self.gran = granularity(size_granularity, k)
        self.sl_stop = per_column(np.nan if sl_stop is None else sl_stop, "sl_stop", k,
                                  allow_nan=True)
        self.tp_stop = per_column(np.nan if tp_stop is None else tp_stop, "tp_stop", k,
                                  allow_nan=True)
        self.direction = parse_direction(direction)
        self.execution = parse_execution(execution)
        self.use_stops = bool(np.isfinite(self.sl_stop).any() or np.isfinite(self.tp_stop).any())


def _use_fast_path(p: _SignalParams, group_start: np.ndarray, k: int) -> bool:
    """Whether :func:`simulate_signals_1col_nb` gives the numbers of the general kernel:
    one column per cash group, no stops, fills at the close."""
    return p.execution == nb.EXEC_CLOSE and not p.use_stops and len(group_start) == k + 1


def _simulate_signals(close: np.ndarray, e: np.ndarray, x: np.ndarray, open_: np.ndarray,
                      group_start: np.ndarray, p: _SignalParams, bar0: int, cstate: np.ndarray,
                      gstate: np.ndarray, equity: np.ndarray, cash: np.ndarray, pos: np.ndarray,
                      orders: np.ndarray, o_start: np.ndarray, o_count: np.ndarray,
                      o_cap: np.ndarray, trades: np.ndarray, t_start: np.ndarray,
                      t_count: np.ndarray, t_cap: np.ndarray,
                      fills: np.ndarray = _NO_FILLS) -> None:
    """Run the signal kernel, or its specialised twin when it gives the same numbers."""
    if _use_fast_path(p, group_start, close.shape[1]):
        simulate_signals_1col_nb(close, e, x, p.direction, p.fees, p.fixed_fees, p.slippage,
                                 p.frac, p.gran, bar0, cstate, gstate, equity, cash, pos, orders,
                                 o_start, o_count, o_cap, trades, t_start, t_count, t_cap,
                                 fills)
        return
    nb.simulate_signals_nb(close, e, x, open_, group_start, p.direction, p.execution, p.fees,
                          p.fixed_fees, p.slippage, p.frac, p.gran, p.sl_stop, p.tp_stop, bar0,
                          cstate,
                          gstate, equity, cash, pos, orders, o_start, o_count, o_cap, trades,
                          t_start, t_count, t_cap)


class _LazySeries:
    """Computes the equity, cash or positions (0, 1, 2) of a fast-path run when first
    asked, only the one asked for (a class rather than a closure, so that a Portfolio
    stays picklable)."""

    def __init__(self, close: np.ndarray, orders: np.ndarray, fills: np.ndarray,
                 count: np.ndarray, init_cash: np.ndarray):
        self.close, self.fills, self.count, self.init_cash = close, fills, count, init_cash
        self.order_bar = np.ascontiguousarray(orders[:, nb.O_BAR])

    def __call__(self, which: int) -> np.ndarray:
        n, k = self.close.shape
        start = np.zeros(k, dtype=np.int64)
        np.cumsum(self.count[:-1], out=start[1:])
        outs = [np.empty((n, k), order="F") if j == which else _EMPTY for j in range(3)]
        if k == 1:
            expand_column_nb(self.close, 0, self.order_bar, self.fills, 0, int(self.count[0]),
                             float(self.init_cash[0]), *outs)
        else:
            expand_1col_nb(self.close, self.order_bar, self.fills, start, self.count,
                           self.init_cash, *outs)
        return outs[which]


def _open_frame(open: Any, close: Frame, execution: int) -> np.ndarray:
    if execution != nb.EXEC_NEXT_OPEN:
        return _EMPTY
    if open is None:
        raise ValueError("execution='next_open' needs the open prices (open=...)")
    frame = as_prices(open, "open")
    if frame.values.shape != close.values.shape:
        raise DataError(f"open: shape {frame.values.shape} does not match close's "
                        f"{close.values.shape}")
    if close.kind != "array" and frame.kind != "array":
        if not frame.index.equals(close.index):
            raise DataError("open: index does not match close's")
        if close.kind == "frame" and not frame.columns.equals(close.columns):
            raise DataError("open: columns do not match close's")
    return frame.values


def from_signals(
    close: Any,
    entries: Any = None,
    exits: Any = None,
    *,
    init_cash: float = 100.0,
    fees: Any = 0.0,
    fixed_fees: Any = 0.0,
    slippage: Any = 0.0,
    size: Any = None,
    size_granularity: Any = None,
    direction: str = "longonly",
    execution: str = "close",
    open: Any = None,
    sl_stop: Any = None,
    tp_stop: Any = None,
    cash_sharing: bool = False,
    freq: Any = None,
    record: Record = "full",
) -> Portfolio | pd.DataFrame:
    """Backtest entry/exit signals (see the module docstring for the execution rules).

    Parameters
    ----------
    close
        Close prices: Series, DataFrame (timestamp × symbol) or 1-/2-D array of
        real numbers (not booleans). Labelled rows must be in strictly increasing
        time order (no duplicate timestamps) and column names unique.
    entries, exits
        Boolean signals broadcastable to ``close``: a scalar, a Series or 1-D
        array (applied to every column), a one-column array, or a frame/array of
        close's shape. Labelled inputs must share close's index, and a frame
        close's columns: a one-column frame is not broadcast onto a frame with
        other symbols.
    init_cash
        Starting cash of each column (or of the shared pool with ``cash_sharing``).
    fees, fixed_fees, slippage
        Fraction of traded value, fixed amount per fill, and price slippage
        fraction; a scalar or one value per column, all >= 0.
    size
        Fraction in (0, 1] of the available cash an entry uses (default: all).
    size_granularity
        Order sizes are rounded down to a multiple of this (1: whole shares);
        None or NaN: no rounding. A scalar or one value per column, finite and > 0.
    direction
        ``"longonly"``, ``"shortonly"`` or ``"both"``.
    execution, open
        ``"close"`` or ``"next_open"`` (which needs ``open``, same shape as close).
    sl_stop, tp_stop
        Stop-loss / take-profit as fractions of the entry price (None: off).
    cash_sharing
        One cash pool for all columns (processed left to right on each bar).
    freq
        Bar length, for an index without timestamps (statistics are annualised from the
        index's calendar: see :func:`alphatrade_lab.backtest.metrics.time_basis`;
        ``Portfolio.stats(periods_per_year=...)`` overrides it).
    record
        ``"full"``: a :class:`Portfolio`. ``"summary"``: only the stats frame
        (one row per column or group), without materialising the equity curve.

    Examples
    --------
    >>> import pandas as pd
    >>> close = pd.Series([10.0, 11.0, 12.0, 9.0],
    ...                   index=pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"))
    >>> pf = from_signals(close, close.index.day == 1, close.index.day == 3)
    >>> pf.equity.tolist()
    [100.0, 110.0, 120.0, 120.0]
    >>> round(pf.total_return, 4)
    0.2
    >>> pf = from_signals(close, close.index.day == 1, False, init_cash=105.0,
    ...                   size_granularity=1)   # whole shares: 105 / 10 -> 10
    >>> pf.orders["size"].tolist(), pf.cash.tolist()
    ([10.0], [5.0, 5.0, 5.0, 5.0])
    """
    frame = as_prices(close, "close")
    n, k = frame.values.shape
    e = as_signal(entries, "entries", frame)
    x = as_signal(exits, "exits", frame)
    p = _SignalParams(k, fees=fees, fixed_fees=fixed_fees, slippage=slippage, size=size,
                      size_granularity=size_granularity, direction=direction,
                      execution=execution, sl_stop=sl_stop, tp_stop=tp_stop)
    open_ = _open_frame(open, frame, p.execution)
    if record not in ("full", "summary"):
        raise ValueError(f"record must be 'full' or 'summary', got {record!r}")
    group_start = group_offsets(k, cash_sharing)
    n_groups = len(group_start) - 1
    cstate, gstate = nb.init_state_nb(k, n_groups, _init_cash(init_cash, n_groups))
    full = record == "full"
    # The fast path records each fill's cash and position instead of per-bar arrays;
    # the Portfolio rebuilds equity, cash and positions from them when first asked.
    lazy = full and _use_fast_path(p, group_start, k)
    fills = _NO_FILLS
    if full:
        counts = _signal_counts(e, n, k) + _signal_counts(x, n, k)
        counts = counts * (2 if p.use_stops else 1) + 1
        o_start, o_cap = _capacity(counts)
        orders = np.empty((int(o_cap.sum()), nb.N_ORDER))
        trades = np.empty((int(o_cap.sum()), nb.N_TRADE))
        if lazy:
            fills = np.empty((int(o_cap.sum()), N_FILL))
            equity = cash = pos = _EMPTY
        else:
            # Column-major, so that each group's thread writes contiguous memory.
            equity = np.empty((n, n_groups), order="F")
            cash = np.empty((n, n_groups), order="F")
            pos = np.empty((n, k), order="F")
    else:
        o_start = o_cap = np.zeros(k, dtype=np.int64)
        orders, trades = np.empty((0, nb.N_ORDER)), np.empty((0, nb.N_TRADE))
        equity = cash = pos = _EMPTY
    o_count = np.zeros(k, dtype=np.int64)
    t_count = np.zeros(k, dtype=np.int64)
    _simulate_signals(frame.values, e, x, open_, group_start, p, 0, cstate, gstate, equity,
                      cash, pos, orders, o_start, o_count, o_cap, trades, o_start, t_count, o_cap,
                      fills)
    names = _group_names(frame, cash_sharing)
    basis = time_basis(frame.index, freq=freq)
    stats = stats_from_state(cstate, gstate, group_start, names, basis)
    if not full:
        return stats
    order_records = _compact(orders, o_start, o_count, o_cap)
    init = gstate[:, nb.G_INIT].copy()
    series = None
    if lazy:
        series = _LazySeries(frame.values, order_records,
                             _compact(fills, o_start, o_count, o_cap), o_count, init)
    return Portfolio(close=frame, groups=names, group_start=group_start, equity=equity,
                     cash=cash, positions=pos, orders=order_records,
                     trades=_compact(trades, o_start, t_count, o_cap),
                     cstate=cstate, gstate=gstate, stats=stats, basis=basis,
                     init_cash=init, series=series)


def from_signals_chunked(
    chunks: Iterable[tuple],
    *,
    init_cash: float = 100.0,
    fees: Any = 0.0,
    fixed_fees: Any = 0.0,
    slippage: Any = 0.0,
    size: Any = None,
    size_granularity: Any = None,
    direction: str = "longonly",
    execution: str = "close",
    sl_stop: Any = None,
    tp_stop: Any = None,
    cash_sharing: bool = False,
    freq: Any = None,
    periods_per_year: float | None = None,
    year_freq: Any = None,
    calendar: str | None = None,
) -> pd.DataFrame:
    """:func:`from_signals` over bars that arrive in blocks of consecutive rows.

    Each chunk is ``(close, entries, exits)`` or ``(close, entries, exits,
    open)`` for the next rows (e.g. one Parquet row group at a time). Cash,
    positions, open trades, stops and pending ``next_open`` orders carry over
    chunk boundaries, so the result equals ``from_signals(..., record="summary")``
    on all rows at once, while memory stays bounded by the chunk size.
    ``periods_per_year``, ``year_freq`` and ``calendar`` are as in
    :meth:`Portfolio.stats`.

    Returns
    -------
    pandas.DataFrame
        The stats frame (one row per column or group); ``end_value`` is the final equity.

    Examples
    --------
    >>> import numpy as np
    >>> close = np.array([10.0, 11.0, 12.0, 9.0])
    >>> entries = np.array([True, False, False, False])
    >>> exits = np.array([False, False, True, False])
    >>> chunks = [(close[:2], entries[:2], exits[:2]), (close[2:], entries[2:], exits[2:])]
    >>> from_signals_chunked(chunks)["end_value"].tolist()
    [120.0]
    """
    state = None
    bar0 = 0
    last_ts = first_ts = None
    bar_length = None if freq is None else pd.Timedelta(freq)
    # Times of the bars the drawdown durations may need (peaks, recoveries, last bar).
    times: dict[int, int] = {}
    for j, chunk in enumerate(chunks):
        if not isinstance(chunk, tuple) or len(chunk) not in (3, 4):
            raise ValueError(f"chunk {j}: expected (close, entries, exits[, open]), got "
                             f"{type(chunk).__name__}")
        frame = as_prices(chunk[0], f"chunk {j} close")
        n, k = frame.values.shape
        if state is None:
            p = _SignalParams(k, fees=fees, fixed_fees=fixed_fees, slippage=slippage,
                              size=size, size_granularity=size_granularity,
                              direction=direction, execution=execution, sl_stop=sl_stop,
                              tp_stop=tp_stop)
            group_start = group_offsets(k, cash_sharing)
            n_groups = len(group_start) - 1
            state = nb.init_state_nb(k, n_groups, _init_cash(init_cash, n_groups))
            columns, kind = frame.columns, frame.kind
        elif k != len(columns) or (kind == "frame" and not frame.columns.equals(columns)):
            raise DataError(f"chunk {j}: columns {list(frame.columns)} differ from the first "
                            f"chunk's {list(columns)}")
        if isinstance(frame.index, pd.DatetimeIndex):
            if last_ts is not None and frame.index[0] <= last_ts:
                raise DataError(f"chunk {j}: starts at {frame.index[0]}, not after the "
                                f"previous chunk's last row {last_ts}")
            if bar_length is None:
                bar_length = infer_bar_length(frame.index)
            if first_ts is None:
                first_ts = frame.index[0]
            last_ts = frame.index[-1]
        e = as_signal(chunk[1], f"chunk {j} entries", frame)
        x = as_signal(chunk[2], f"chunk {j} exits", frame)
        open_ = _open_frame(chunk[3] if len(chunk) == 4 else None, frame, p.execution)
        zero = np.zeros(k, dtype=np.int64)
        cstate, gstate = state
        _simulate_signals(frame.values, e, x, open_, group_start, p, bar0, cstate, gstate,
                          _EMPTY, _EMPTY, _EMPTY, np.empty((0, nb.N_ORDER)), zero, zero.copy(),
                          zero, np.empty((0, nb.N_TRADE)), zero, zero.copy(), zero)
        if isinstance(frame.index, pd.DatetimeIndex):
            stamps = frame.index.as_unit("ns").asi8
            need = _duration_bars(gstate)
            times = {b: t for b, t in times.items() if b in need}
            times.update((b, int(stamps[b - bar0])) for b in need if bar0 <= b < bar0 + n)
        bar0 += n
    if state is None:
        raise ValueError("chunks is empty")
    cstate, gstate = state
    names = pd.Index(["portfolio"]) if cash_sharing else columns
    basis = basis_from_times(None if last_ts is None else times, bar0, bar_length,
                             first=None if first_ts is None else first_ts.value,
                             last=None if last_ts is None else last_ts.value,
                             periods_per_year=periods_per_year, year_freq=year_freq,
                             calendar=calendar)
    return stats_from_state(cstate, gstate, group_start, names, basis)


def _duration_bars(gstate: np.ndarray) -> set[int]:
    """The bars whose times a drawdown duration may need once the run ends."""
    g = gstate
    bars = np.concatenate([g[:, nb.G_PEAK_BAR], g[:, nb.G_DD_START],
                           g[:, nb.G_DD_START] + g[:, nb.G_MAX_DD_BARS], g[:, nb.G_LAST_BAR]])
    return {int(b) for b in bars if b >= 0} | {0}


def from_weights(
    close: Any,
    weights: Any,
    *,
    init_cash: float = 100.0,
    fees: Any = 0.0,
    slippage: Any = 0.0,
    size_granularity: Any = None,
    freq: Any = None,
    record: Record = "full",
) -> Portfolio | pd.DataFrame:
    """Rebalance a portfolio sharing one cash pool to target weights at each bar's close.

    At each row where some weight is given, every column with a weight is
    traded to ``weight * portfolio value / close`` shares (negative weights
    short); NaN weights (and NaN closes) keep the position. Sells go first;
    if the buys with fees and slippage cost more than the cash, all of that
    row's buys are scaled down by the same factor. Fees are ``fees * traded
    value``. With ``size_granularity``, each order's size (after that scaling)
    is rounded down to a multiple of it, so positions fall short of their
    targets by less than one unit.

    Parameters
    ----------
    close
        Close prices (DataFrame timestamp × symbol, or 2-D array).
    weights
        Target weights (real numbers), broadcastable to close as the signals of
        :func:`from_signals` are (labelled: same index and columns).
    init_cash, fees, slippage, size_granularity, freq, record
        As in :func:`from_signals`.

    Examples
    --------
    >>> import pandas as pd
    >>> close = pd.DataFrame({"a": [10.0, 20.0], "b": [10.0, 10.0]})
    >>> w = pd.DataFrame({"a": [0.5, float("nan")], "b": [0.5, float("nan")]})
    >>> from_weights(close, w).equity["portfolio"].tolist()
    [100.0, 150.0]
    """
    frame = as_prices(close, "close")
    n, k = frame.values.shape
    w = as_signal(weights, "weights", frame, dtype=float)
    fee_arr = cost_fraction(fees, "fees", k, stacklevel=3)
    slip_arr = cost_fraction(slippage, "slippage", k, stacklevel=3)
    gran = granularity(size_granularity, k)
    if record not in ("full", "summary"):
        raise ValueError(f"record must be 'full' or 'summary', got {record!r}")
    group_start = group_offsets(k, True)
    cstate, gstate = nb.init_state_nb(k, 1, _init_cash(init_cash, 1))
    full = record == "full"
    if full:
        counts = np.broadcast_to(nb.count_not_nan_nb(w) * (n if w.shape[0] == 1 else 1), (k,))
        o_start, o_cap = _capacity(counts + 1)
        orders = np.empty((int(o_cap.sum()), nb.N_ORDER))
        trades = np.empty((int(o_cap.sum()), nb.N_TRADE))
        equity, cash, pos = np.empty((n, 1)), np.empty((n, 1)), np.empty((n, k), order="F")
    else:
        o_start = o_cap = np.zeros(k, dtype=np.int64)
        orders, trades = np.empty((0, nb.N_ORDER)), np.empty((0, nb.N_TRADE))
        equity = cash = pos = _EMPTY
    o_count = np.zeros(k, dtype=np.int64)
    t_count = np.zeros(k, dtype=np.int64)
    nb.simulate_weights_nb(frame.values, w, group_start, fee_arr, slip_arr, gran, 0, cstate,
                          gstate, equity, cash, pos, orders, o_start, o_count, o_cap, trades,
                          o_start, t_count, o_cap)
    names = pd.Index(["portfolio"])
    basis = time_basis(frame.index, freq=freq)
    stats = stats_from_state(cstate, gstate, group_start, names, basis)
    if not full:
        return stats
    return Portfolio(close=frame, groups=names, group_start=group_start, equity=equity,
                     cash=cash, positions=pos,
                     orders=_compact(orders, o_start, o_count, o_cap),
                     trades=_compact(trades, o_start, t_count, o_cap),
                     cstate=cstate, gstate=gstate, stats=stats, basis=basis,
                     init_cash=gstate[:, nb.G_INIT].copy())
