"""Specialised signal-simulation kernel for the common case (numpy and numba only).

:func:`simulate_signals_1col_nb` gives exactly the numbers of
:func:`~alphatrade_lab.backtest.kernels.simulate_signals_nb` when every cash
group holds one column, no stop is set and signals fill at the close
(``EXEC_CLOSE``). It keeps the column's position, cash and last close in local
variables, touches the state arrays only on bars whose signals lead to an
order (through the same :func:`execute_action_nb`), advances the running
statistics with the engine's one per-bar step, :func:`step_stats_nb`, and
fast-forwards them over stretches without a position, where the value cannot
change.

Instead of per-bar equity, cash and position arrays it can record the cash and
position after each fill (``fills``); :func:`expand_1col_nb` rebuilds the
per-bar arrays from them, bit for bit, when they are asked for.
"""

import numpy as np
from numba import njit, prange

from alphatrade_lab.backtest.kernels import (
    A_NONE,
    BOTH,
    C_POS,
    C_VAL,
    G_CASH,
    execute_action_nb,
    load_stats_nb,
    resolve_action_nb,
    step_stats_nb,
    store_stats_nb,
)

__all__ = ["F_CASH", "F_POS", "N_FILL", "count_true_nb", "expand_1col_nb",
           "simulate_signals_1col_nb"]

# Fill-state record fields (one row per order, aligned with the order records).
F_CASH, F_POS = 0, 1
N_FILL = 2


@njit(cache=True)
def _flat_run_end_nb(close, entries, exits, c, ce, cx, es, xs, i, n, direction):
    """First bar ``>= i`` where a flat column may open a position (a valid close, an
    entry without an exit, or with ``BOTH`` an exit without an entry), or ``n``."""
    both = direction == BOTH
    while i < n:
        e = entries[i * es, ce]
        x = exits[i * xs, cx]
        if (e != x) and (e or both) and not np.isnan(close[i, c]):
            return i
        i += 1
    return n


@njit(cache=True, parallel=True)
def simulate_signals_1col_nb(close, entries, exits, direction, fees, fixed_fees, slippage,
                             frac, gran, bar0, cstate, gstate, equity_out, cash_out, pos_out,
                             orders, o_start, o_count, o_cap, trades, t_start, t_count, t_cap,
                             fills):
    """:func:`~alphatrade_lab.backtest.kernels.simulate_signals_nb` for one column per
    cash group (group ``c`` is column ``c``), no stops and ``EXEC_CLOSE``.

    Arguments are those of ``simulate_signals_nb`` without ``open_``,
    ``group_start``, ``execution``, ``sl_stop`` and ``tp_stop``; the state
    arrays and outputs are advanced and filled in the same way. In addition,
    when ``fills`` (float64[m, N_FILL], rows as ``orders``) is not empty, each
    recorded order's row gets the cash and position right after the fill, from
    which :func:`expand_1col_nb` rebuilds the per-bar outputs.
    """
    n, k = close.shape
    rec_eq = equity_out.shape[0] > 0
    rec_cash = cash_out.shape[0] > 0
    rec_pos = pos_out.shape[0] > 0
    rec_fills = fills.shape[0] > 0
    es = np.int64(1 if entries.shape[0] > 1 else 0)
    xs = np.int64(1 if exits.shape[0] > 1 else 0)
    ec = np.int64(1 if entries.shape[1] > 1 else 0)
    xc = np.int64(1 if exits.shape[1] > 1 else 0)
    for cc in prange(k):
        c = np.int64(cc)
        g = c
        ce = c * ec
        cx = c * xc
        # The streaming statistics, kept in locals and advanced by step_stats_nb.
        (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
         n_exposed, last_bar) = load_stats_nb(gstate, g)
        pos = cstate[c, C_POS]
        val = cstate[c, C_VAL]
        cash = gstate[g, G_CASH]
        i = 0
        while i < n:
            if pos == 0:
                # Flat: the value is the cash until the next bar that may open a position.
                j = _flat_run_end_nb(close, entries, exits, c, ce, cx, es, xs, i, n,
                                     direction)
                if j > i:
                    for m in range(i, j):
                        price = close[m, c]
                        if not np.isnan(price):
                            val = price
                        if rec_eq:
                            equity_out[m, g] = cash
                        if rec_cash:
                            cash_out[m, g] = cash
                        if rec_pos:
                            pos_out[m, c] = pos
                    (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars,
                     dd_start, n_exposed, last_bar) = _step_flat_nb(
                        (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars,
                         dd_start, n_exposed, last_bar), bar0 + i, bar0 + j - 1, cash)
                    i = j
                    continue
            bar = bar0 + i
            price = close[i, c]
            if not np.isnan(price):
                val = price
                e = entries[i * es, ce]
                x = exits[i * xs, cx]
                if e != x:
                    action = resolve_action_nb(pos, e, x, direction)
                    if action != A_NONE:
                        if execute_action_nb(g, c, action, bar, price, fees[c], fixed_fees[c],
                                             slippage[c], frac[c], gran[c], cstate, gstate,
                                             orders, o_start, o_count, o_cap, trades, t_start,
                                             t_count, t_cap):
                            pos = cstate[c, C_POS]
                            cash = gstate[g, G_CASH]
                            if rec_fills and o_count[c] <= o_cap[c]:
                                row = o_start[c] + o_count[c] - 1
                                fills[row, F_CASH] = cash
                                fills[row, F_POS] = pos
            value = cash
            if pos != 0:
                value += pos * val
            (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
             n_exposed, last_bar) = step_stats_nb(
                (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
                 n_exposed, last_bar), bar, value, pos != 0)
            if rec_eq:
                equity_out[i, g] = value
            if rec_cash:
                cash_out[i, g] = cash
            if rec_pos:
                pos_out[i, c] = pos
            i += 1
        cstate[c, C_VAL] = val
        store_stats_nb(gstate, g, (prev, nbars, s1, s2, down2, peak, peak_bar, max_dd,
                                   max_dd_bars, dd_start, n_exposed, last_bar))


@njit(cache=True)
def _step_flat_nb(st, first, last, value):
    """:func:`step_stats_nb` applied to bars ``first..last`` that all end with the same
    ``value`` and no position."""
    st = step_stats_nb(st, first, value, False)
    if last == first:
        return st
    if not np.isfinite(value):
        for b in range(first + 1, last + 1):
            st = step_stats_nb(st, b, value, False)
        return st
    prev, nb, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start, n_exposed, _ = st
    # From the second bar on prev == value, so the return is +0.0 and adds nothing to
    # the sums; the peak, set or not by the first bar, moves only when value >= peak,
    # each bar right after the previous one (no recovery to count).
    if np.isnan(peak) or value >= peak:
        peak = value
        peak_bar = float(last)
    else:
        max_dd = min(max_dd, value / peak - 1.0)
    return (value, nb + (last - first), s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars,
            dd_start, n_exposed, float(last))


@njit(cache=True, parallel=True)
def expand_1col_nb(close, order_bar, fills, start, count, init_cash, equity_out, cash_out,
                   pos_out):
    """Per-bar equity, cash and positions of a fresh :func:`simulate_signals_1col_nb` run.

    ``order_bar`` and ``fills`` are the compacted order bars and fill states:
    column ``c``'s orders are rows ``start[c]:start[c] + count[c]``, in bar order.
    The value of each bar is computed as in the simulation (cash, plus position
    times the last valid close when in a position), so the results are identical.
    """
    n, k = close.shape
    for cc in prange(k):
        c = np.int64(cc)
        cash = init_cash[c]
        pos = 0.0
        val = np.nan
        r = start[c]
        r_end = r + count[c]
        nxt = np.int64(order_bar[r]) if r < r_end else n
        for i in range(n):
            price = close[i, c]
            if not np.isnan(price):
                val = price
            if i == nxt:
                cash = fills[r, F_CASH]
                pos = fills[r, F_POS]
                r += 1
                nxt = np.int64(order_bar[r]) if r < r_end else n
            value = cash
            if pos != 0:
                value += pos * val
            equity_out[i, c] = value
            cash_out[i, c] = cash
            pos_out[i, c] = pos


@njit(cache=True)
def count_true_nb(a):
    """True values per column of a 2-D boolean array (int64[k])."""
    n, k = a.shape
    out = np.zeros(k, dtype=np.int64)
    for j in range(k):
        m = 0
        for i in range(n):
            m += a[i, j]
        out[j] = m
    return out
