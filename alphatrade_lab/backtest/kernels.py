"""Numba kernels of the backtest engine (plain arrays in, plain arrays out).

The simulation state is explicit: a float64 array with one row per column
(``cstate``, fields ``C_*``) and one with a row per cash group (``gstate``,
fields ``G_*``). Kernels read it, advance it over a block of consecutive bars
and write it back, so a long backtest can be run block by block and give the
same numbers as one pass over all bars.

2-D inputs are read "flexibly": an axis of length 1 is broadcast against the
other inputs without materialising the broadcast array.
"""

import numpy as np
from numba import njit, prange

# Column state fields.
C_POS = 0          # position (shares; negative when short)
C_DEBT = 1         # value borrowed by the short position, at its entry prices
C_VAL = 2          # last valid close, used to value the position
C_PEND_ENTRY = 3   # next_open: entry signal waiting for the next open
C_PEND_EXIT = 4    # next_open: exit signal waiting for the next open
C_PEND_STOP = 5    # next_open: stop exit waiting for the next open
C_STOP_REF = 6     # reference price of the stops (the entry's unslipped price)
C_TR_DIR = 7       # direction of the open trade: 1 long, -1 short, 0 none
C_TR_BAR = 8       # bar index of the open trade's entry
C_TR_SIZE = 9      # size of the open trade
C_TR_GROSS = 10    # sum of size * price of the open trade's entries
C_TR_FEES = 11     # entry fees of the open trade
N_CSTATE = 12

# Group (cash pool) state fields.
G_CASH = 0
G_FREE = 1         # cash not tied up as short collateral
G_INIT = 2         # initial value
G_PREV_V = 3       # value at the previous bar (initial value before the first bar)
G_NBARS = 4        # bars seen
G_SUM_R = 5        # sum of returns
G_SUM_R2 = 6       # sum of squared returns
G_DD_START = 7     # peak bar of the longest peak-to-recovery stretch
G_DOWN2 = 8        # sum of squared negative returns
G_PEAK = 9         # running peak value
G_PEAK_BAR = 10    # bar of the running peak
G_MAX_DD = 11      # most negative drawdown so far (value / peak - 1)
G_MAX_DD_BARS = 12  # longest peak-to-recovery stretch in bars
G_EXPOSED = 13     # bars that ended with a position
G_N_CLOSED = 14    # closed trades
G_N_WIN = 15
G_N_LOSS = 16
G_SUM_WIN = 17     # sum of pnl of winning closed trades
G_SUM_LOSS = 18    # sum of pnl of losing closed trades
G_N_ORDERS = 19
G_FEES = 20        # fees paid
G_LAST_BAR = 21    # index of the last bar seen
N_GSTATE = 22

# Order and trade record fields.
O_BAR, O_COL, O_SIDE, O_SIZE, O_PRICE, O_FEES = 0, 1, 2, 3, 4, 5
N_ORDER = 6
(T_COL, T_ENTRY_BAR, T_EXIT_BAR, T_ENTRY_PRICE, T_EXIT_PRICE, T_SIZE, T_DIR, T_PNL, T_RET,
 T_ENTRY_FEES, T_EXIT_FEES) = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
N_TRADE = 11

LONGONLY, SHORTONLY, BOTH = 0, 1, 2
EXEC_CLOSE, EXEC_NEXT_OPEN = 0, 1

# Orders smaller than this many shares are rejected (vectorbt's default min_size).
MIN_SIZE = 1e-8
_REL_TOL = 1e-9
_ABS_TOL = 1e-12

# Actions decided from signals.
A_NONE, A_OPEN_LONG, A_CLOSE_LONG, A_OPEN_SHORT, A_CLOSE_SHORT, A_TO_SHORT, A_TO_LONG = range(7)


@njit(cache=True)
def is_close_nb(a, b):
    """Whether two finite floats are equal up to a relative 1e-9 (absolute 1e-12)."""
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True)
def add_nb(a, b):
    """``a + b``, snapped to exactly 0 when the two cancel up to rounding."""
    if np.sign(a) != np.sign(b):
        if is_close_nb(abs(a), abs(b)):
            return 0.0
    elif is_close_nb(a + b, 0.0):
        return 0.0
    return a + b


@njit(cache=True)
def flex_nb(a, i, j):
    """``a[i, j]`` where an axis of length 1 is broadcast."""
    return a[i if a.shape[0] > 1 else 0, j if a.shape[1] > 1 else 0]


@njit(cache=True)
def first_bad_price_nb(a):
    """(row, col) of the first value that is neither NaN nor finite and > 0, else (-1, -1)."""
    n, k = a.shape
    row, col = -1, -1
    for j in range(k):
        m = n if row < 0 else row
        # Branch-free check first (NaN compares false: x <= 0 or x == inf is "bad").
        bad = False
        for i in range(m):
            x = a[i, j]
            bad |= (x <= 0) | (x == np.inf)
        if not bad:
            continue
        for i in range(m):
            x = a[i, j]
            if not np.isnan(x) and not (np.isfinite(x) and x > 0):
                row, col = i, j
                break
    return row, col


@njit(cache=True)
def first_inf_nb(a):
    """(row, col) of the first infinite value, else (-1, -1)."""
    n, k = a.shape
    for i in range(n):
        for j in range(k):
            if np.isinf(a[i, j]):
                return i, j
    return -1, -1


@njit(cache=True)
def count_not_nan_nb(a):
    """Non-NaN values per column."""
    out = np.zeros(a.shape[1], dtype=np.int64)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not np.isnan(a[i, j]):
                out[j] += 1
    return out


@njit(cache=True)
def init_state_nb(n_cols, n_groups, init_cash):
    """Fresh column and group state for ``n_cols`` columns in ``n_groups`` cash pools."""
    cstate = np.zeros((n_cols, N_CSTATE))
    cstate[:, C_VAL] = np.nan
    cstate[:, C_STOP_REF] = np.nan
    cstate[:, C_TR_BAR] = -1.0
    gstate = np.zeros((n_groups, N_GSTATE))
    for g in range(n_groups):
        gstate[g, G_CASH] = init_cash[g]
        gstate[g, G_FREE] = init_cash[g]
        gstate[g, G_INIT] = init_cash[g]
        gstate[g, G_PREV_V] = init_cash[g]
        gstate[g, G_PEAK] = np.nan
        gstate[g, G_PEAK_BAR] = -1.0
        gstate[g, G_LAST_BAR] = -1.0
    return cstate, gstate


@njit(cache=True)
def resolve_action_nb(pos, entry, exit_, direction):
    """The action taken on a bar's signals given the current position.

    An entry and an exit on the same bar cancel out (vectorbt's default
    ``upon_*_conflict="ignore"``). In ``BOTH`` an exit is a short entry and an
    opposite signal reverses the position.
    """
    if entry and exit_:
        return A_NONE
    if direction == LONGONLY:
        if pos > 0 and exit_:
            return A_CLOSE_LONG
        if pos == 0 and entry:
            return A_OPEN_LONG
    elif direction == SHORTONLY:
        if pos < 0 and exit_:
            return A_CLOSE_SHORT
        if pos == 0 and entry:
            return A_OPEN_SHORT
    else:
        if pos > 0 and exit_:
            return A_TO_SHORT
        if pos < 0 and entry:
            return A_TO_LONG
        if pos == 0 and entry:
            return A_OPEN_LONG
        if pos == 0 and exit_:
            return A_OPEN_SHORT
    return A_NONE


@njit(cache=True)
def floor_to_nb(size, gran):
    """``size`` rounded down to a multiple of ``gran`` (NaN: no rounding).

    A quotient within the relative tolerance of a whole number counts as that
    number, so that float noise (99.99999999999 shares) does not lose a unit.
    """
    if np.isnan(gran) or np.isinf(size):
        return size
    q = size / gran
    whole = np.round(q)
    if not is_close_nb(q, whole):
        whole = np.floor(q)
    return whole * gran


@njit(cache=True)
def buy_nb(cash, free, pos, debt, size, cash_limit, price, fees, fixed_fees, slippage, covering,
           gran=np.nan):
    """Buy up to ``size`` shares spending at most ``cash_limit`` (fees included).

    ``size=inf`` spends all of ``cash_limit``. The size is rounded down to a
    multiple of ``gran`` (NaN: no rounding). Returns ``(filled, cash, free,
    pos, debt, fill_size, fill_price, fees_paid)``.
    """
    adj_price = price * (1.0 + slippage)
    if covering:
        if pos == 0:
            return False, cash, free, pos, debt, 0.0, 0.0, 0.0
        size = min(-pos, size)
    elif cash_limit <= 0:
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    size = floor_to_nb(size, gran)
    if size == 0:
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    req = size * adj_price
    req_fees = req * fees + fixed_fees
    total = req + req_fees
    if is_close_nb(total, cash_limit) or total < cash_limit:
        fill_size = size
        fees_paid = req_fees
        spent = total
    else:
        # Not enough cash: buy as much as cash_limit covers once fees are paid.
        max_req = add_nb(cash_limit, -fixed_fees) / (1.0 + fees)
        if max_req <= 0:
            return False, cash, free, pos, debt, 0.0, 0.0, 0.0
        fill_size = max_req / adj_price
        fees_paid = cash_limit - max_req
        spent = cash_limit
        if not np.isnan(gran):
            fill_size = floor_to_nb(fill_size, gran)
            fees_paid = fill_size * adj_price * fees + fixed_fees
            spent = fill_size * adj_price + fees_paid
    if fill_size < MIN_SIZE and not is_close_nb(fill_size, MIN_SIZE):
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    new_cash = add_nb(cash, -spent)
    new_pos = add_nb(pos, fill_size)
    if pos < 0:
        covered = fill_size if new_pos < 0 else -pos
        released = covered * (debt / -pos)
        new_debt = add_nb(debt, -released)
        new_free = add_nb(free + 2.0 * released, -spent)
    else:
        new_debt = debt
        new_free = add_nb(free, -spent)
    return True, new_cash, new_free, new_pos, new_debt, fill_size, adj_price, fees_paid


@njit(cache=True)
def sell_nb(cash, free, pos, debt, size, frac, price, fees, fixed_fees, slippage, closing,
            gran=np.nan):
    """Sell ``size`` shares of a long position (``closing``), or sell the long
    position plus ``frac`` of the largest short the free cash allows.

    The size is rounded down to a multiple of ``gran`` (NaN: no rounding).
    Returns ``(filled, cash, free, pos, debt, fill_size, fill_price, fees_paid)``.
    """
    adj_price = price * (1.0 - slippage)
    if closing:
        if pos == 0:
            return False, cash, free, pos, debt, 0.0, 0.0, 0.0
        size = min(pos, size)
    else:
        long_size = max(pos, 0.0)
        free_after = add_nb(free, long_size * adj_price * (1.0 - fees))
        if free_after <= 0:
            if pos <= 0:
                return False, cash, free, pos, debt, 0.0, 0.0, 0.0
            size = long_size
        else:
            max_short = add_nb(free_after, -fixed_fees) / (adj_price * (1.0 + fees))
            size = add_nb(long_size, frac * max_short) if frac < 1.0 else add_nb(long_size,
                                                                                  max_short)
            if size <= 0:
                return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    size = floor_to_nb(size, gran)
    if is_close_nb(size, 0.0):
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    if size < MIN_SIZE and not is_close_nb(size, MIN_SIZE):
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    gross = size * adj_price
    fees_paid = gross * fees + fixed_fees
    net = add_nb(gross, -fees_paid)
    if net < 0:
        return False, cash, free, pos, debt, 0.0, 0.0, 0.0
    new_cash = cash + net
    new_pos = add_nb(pos, -size)
    if new_pos < 0:
        shorted = size if pos < 0 else -new_pos
        short_value = shorted * adj_price
        new_debt = debt + short_value
        new_free = add_nb(free, add_nb(net, -2.0 * short_value))
    else:
        new_debt = debt
        new_free = free + net
    return True, new_cash, new_free, new_pos, new_debt, size, adj_price, fees_paid


@njit(cache=True)
def record_trade_nb(g, c, size, exit_bar, exit_price, exit_fees, entry_fees, cstate, gstate,
                    trades, t_start, t_count, t_cap):
    """Close ``size`` of column ``c``'s open trade; update the group's trade statistics."""
    direction = cstate[c, C_TR_DIR]
    entry_price = cstate[c, C_TR_GROSS] / cstate[c, C_TR_SIZE]
    entry_val = size * entry_price
    diff = add_nb(size * exit_price, -entry_val)
    if direction < 0 and diff != 0:
        diff = -diff
    pnl = diff - entry_fees - exit_fees
    ret = pnl / entry_val
    gstate[g, G_N_CLOSED] += 1
    if pnl > 0:
        gstate[g, G_N_WIN] += 1
        gstate[g, G_SUM_WIN] += pnl
    elif pnl < 0:
        gstate[g, G_N_LOSS] += 1
        gstate[g, G_SUM_LOSS] += pnl
    k = t_count[c]
    if k < t_cap[c]:
        row = t_start[c] + k
        trades[row, T_COL] = c
        trades[row, T_ENTRY_BAR] = cstate[c, C_TR_BAR]
        trades[row, T_EXIT_BAR] = exit_bar
        trades[row, T_ENTRY_PRICE] = entry_price
        trades[row, T_EXIT_PRICE] = exit_price
        trades[row, T_SIZE] = size
        trades[row, T_DIR] = direction
        trades[row, T_PNL] = pnl
        trades[row, T_RET] = ret
        trades[row, T_ENTRY_FEES] = entry_fees
        trades[row, T_EXIT_FEES] = exit_fees
    t_count[c] = k + 1


@njit(cache=True)
def on_fill_nb(g, c, bar, side, size, price, fees_paid, cstate, gstate,
               orders, o_start, o_count, o_cap, trades, t_start, t_count, t_cap):
    """Book a filled order: order record, open-trade bookkeeping and closed trades."""
    gstate[g, G_N_ORDERS] += 1
    gstate[g, G_FEES] += fees_paid
    k = o_count[c]
    if k < o_cap[c]:
        row = o_start[c] + k
        orders[row, O_BAR] = bar
        orders[row, O_COL] = c
        orders[row, O_SIDE] = side
        orders[row, O_SIZE] = size
        orders[row, O_PRICE] = price
        orders[row, O_FEES] = fees_paid
    o_count[c] = k + 1
    if cstate[c, C_TR_DIR] == 0:
        cstate[c, C_TR_DIR] = side
        cstate[c, C_TR_BAR] = bar
        cstate[c, C_TR_SIZE] = 0.0
        cstate[c, C_TR_GROSS] = 0.0
        cstate[c, C_TR_FEES] = 0.0
    if side == cstate[c, C_TR_DIR]:
        cstate[c, C_TR_SIZE] += size
        cstate[c, C_TR_GROSS] += size * price
        cstate[c, C_TR_FEES] += fees_paid
        return
    open_size = cstate[c, C_TR_SIZE]
    if is_close_nb(size, open_size) or size < open_size:
        # The order closes the trade, or part of it.
        done = is_close_nb(size, open_size)
        closed = open_size if done else size
        entry_fees = closed / open_size * cstate[c, C_TR_FEES]
        record_trade_nb(g, c, closed, bar, price, fees_paid, entry_fees, cstate, gstate,
                        trades, t_start, t_count, t_cap)
        if done:
            cstate[c, C_TR_DIR] = 0
            cstate[c, C_TR_BAR] = -1.0
            cstate[c, C_TR_SIZE] = 0.0
            cstate[c, C_TR_GROSS] = 0.0
            cstate[c, C_TR_FEES] = 0.0
        else:
            keep = (open_size - size) / open_size
            cstate[c, C_TR_SIZE] *= keep
            cstate[c, C_TR_GROSS] *= keep
            cstate[c, C_TR_FEES] *= keep
    else:
        # The order reverses the position: close the trade, open one the other way.
        exit_fees = open_size / size * fees_paid
        record_trade_nb(g, c, open_size, bar, price, exit_fees, cstate[c, C_TR_FEES], cstate,
                        gstate, trades, t_start, t_count, t_cap)
        cstate[c, C_TR_DIR] = side
        cstate[c, C_TR_BAR] = bar
        cstate[c, C_TR_SIZE] = size - open_size
        cstate[c, C_TR_GROSS] = (size - open_size) * price
        cstate[c, C_TR_FEES] = fees_paid - exit_fees


@njit(cache=True)
def _snap(x):
    return 0.0 if abs(x) <= _ABS_TOL else x


@njit(cache=True)
def execute_action_nb(g, c, action, bar, price, fees, fixed_fees, slippage, frac, gran, cstate,
                      gstate, orders, o_start, o_count, o_cap, trades, t_start, t_count, t_cap):
    """Execute one signal action at ``price`` for column ``c`` of cash group ``g``.

    Order sizes are rounded down to a multiple of ``gran`` (NaN: no rounding).
    Returns True when an order was filled.
    """
    cash = _snap(gstate[g, G_CASH])
    free = _snap(gstate[g, G_FREE])
    pos = _snap(cstate[c, C_POS])
    debt = _snap(cstate[c, C_DEBT])
    if action == A_OPEN_LONG:
        res = buy_nb(cash, free, pos, debt, np.inf, frac * cash, price, fees, fixed_fees,
                     slippage, False, gran)
        side = 1.0
    elif action == A_TO_LONG:
        size = np.inf
        if frac < 1.0:
            # Cover the short, then buy `frac` of what the remaining cash allows.
            adj = price * (1.0 + slippage)
            all_in = add_nb(cash, -fixed_fees) / (1.0 + fees) / adj
            size = -pos + frac * max(all_in + pos, 0.0)
        res = buy_nb(cash, free, pos, debt, size, cash, price, fees, fixed_fees, slippage, False,
                     gran)
        side = 1.0
    elif action == A_CLOSE_SHORT:
        res = buy_nb(cash, free, pos, debt, -pos, cash, price, fees, fixed_fees, slippage, True,
                     gran)
        side = 1.0
    elif action == A_CLOSE_LONG:
        res = sell_nb(cash, free, pos, debt, pos, 1.0, price, fees, fixed_fees, slippage, True,
                      gran)
        side = -1.0
    elif action == A_OPEN_SHORT or action == A_TO_SHORT:
        res = sell_nb(cash, free, pos, debt, np.inf, frac, price, fees, fixed_fees, slippage,
                      False, gran)
        side = -1.0
    else:
        return False
    filled, cash, free, pos, debt, fill_size, fill_price, fees_paid = res
    if not filled:
        return False
    old_pos = cstate[c, C_POS]
    gstate[g, G_CASH] = cash
    gstate[g, G_FREE] = free
    cstate[c, C_POS] = pos
    cstate[c, C_DEBT] = debt
    if pos == 0:
        cstate[c, C_STOP_REF] = np.nan
    elif old_pos == 0 or np.sign(pos) != np.sign(old_pos):
        cstate[c, C_STOP_REF] = price
    on_fill_nb(g, c, bar, side, fill_size, fill_price, fees_paid, cstate, gstate,
               orders, o_start, o_count, o_cap, trades, t_start, t_count, t_cap)
    return True


@njit(cache=True)
def stop_hit_nb(pos, ref, close, sl, tp):
    """Whether the close crosses the stop-loss or take-profit level around ``ref``."""
    if pos == 0 or np.isnan(ref) or np.isnan(close):
        return False
    if pos > 0:
        return (sl == sl and close <= ref * (1.0 - sl)) or (tp == tp and close >= ref * (1.0 + tp))
    return (sl == sl and close >= ref * (1.0 + sl)) or (tp == tp and close <= ref * (1.0 - tp))


@njit(cache=True)
def load_stats_nb(gstate, g):
    """The streaming statistics of group ``g`` as a tuple (kept in registers by the kernels)."""
    return (gstate[g, G_PREV_V], gstate[g, G_NBARS], gstate[g, G_SUM_R], gstate[g, G_SUM_R2],
            gstate[g, G_DOWN2], gstate[g, G_PEAK], gstate[g, G_PEAK_BAR], gstate[g, G_MAX_DD],
            gstate[g, G_MAX_DD_BARS], gstate[g, G_DD_START], gstate[g, G_EXPOSED],
            gstate[g, G_LAST_BAR])


@njit(cache=True)
def store_stats_nb(gstate, g, st):
    """Write back a tuple from :func:`load_stats_nb`."""
    (gstate[g, G_PREV_V], gstate[g, G_NBARS], gstate[g, G_SUM_R], gstate[g, G_SUM_R2],
     gstate[g, G_DOWN2], gstate[g, G_PEAK], gstate[g, G_PEAK_BAR], gstate[g, G_MAX_DD],
     gstate[g, G_MAX_DD_BARS], gstate[g, G_DD_START], gstate[g, G_EXPOSED],
     gstate[g, G_LAST_BAR]) = st


@njit(cache=True, inline="never")
def bar_return_nb(value, prev):
    """The return of a bar from ``prev`` to ``value``, for any ``prev`` (a negative value
    flips the sign, a zero gives 0 or an infinite return).

    Kept out of line: with the rare branches inlined, loops that step the statistics
    every bar run several times slower.
    """
    if prev == 0:
        return 0.0 if value == 0 else np.inf * np.sign(value)
    r = (value - prev) / prev
    if prev < 0:
        r = -r
    return r


@njit(cache=True)
def step_stats_nb(st, bar, value, exposed):
    """Advance the streaming return, drawdown and exposure statistics by one bar."""
    prev, n, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start, n_exposed, _ = st
    r = (value - prev) / prev if prev > 0 else bar_return_nb(value, prev)
    if r < 0:
        down2 += r * r
    if np.isnan(peak) or value >= peak:
        if not np.isnan(peak) and peak_bar < bar - 1:
            # Recovered from a drawdown that began after the peak bar.
            if bar - peak_bar > max_dd_bars:
                max_dd_bars = bar - peak_bar
                dd_start = peak_bar
        peak = value
        peak_bar = float(bar)
    else:
        max_dd = min(max_dd, value / peak - 1.0)
    if exposed:
        n_exposed += 1.0
    return (value, n + 1.0, s1 + r, s2 + r * r, down2, peak, peak_bar, max_dd, max_dd_bars,
            dd_start, n_exposed, float(bar))


@njit(cache=True)
def update_stats_nb(g, bar, value, exposed, gstate):
    """:func:`step_stats_nb` on the state stored in ``gstate``."""
    store_stats_nb(gstate, g, step_stats_nb(load_stats_nb(gstate, g), bar, value, exposed))


@njit(cache=True, parallel=True)
def simulate_signals_nb(close, entries, exits, open_, group_start, direction, execution,
                        fees, fixed_fees, slippage, frac, gran, sl_stop, tp_stop, bar0,
                        cstate, gstate, equity_out, cash_out, pos_out,
                        orders, o_start, o_count, o_cap, trades, t_start, t_count, t_cap):
    """Simulate signal trading over a block of bars, advancing ``cstate``/``gstate`` in place.

    Parameters
    ----------
    close : float64[n, k]
        Close prices (NaN: no bar; no fill, the position keeps its last value).
    entries, exits : bool[n or 1, k or 1]
        Signals, decided at the bar's close.
    open_ : float64[n, k] or float64[0, 0]
        Open prices; needed for ``execution == EXEC_NEXT_OPEN``.
    group_start : int64[n_groups + 1]
        Columns ``group_start[g]:group_start[g + 1]`` share group ``g``'s cash.
    direction, execution : int
        ``LONGONLY``/``SHORTONLY``/``BOTH`` and ``EXEC_CLOSE``/``EXEC_NEXT_OPEN``.
    fees, fixed_fees, slippage, frac, gran, sl_stop, tp_stop : float64[k]
        Per-column costs, the fraction of available cash per entry, the size
        granularity (orders are rounded down to a multiple; NaN: none) and the
        stop fractions (NaN: no stop).
    bar0 : int
        Global index of the block's first bar (order, trade and drawdown bars are global).
    cstate, gstate : float64[k, N_CSTATE], float64[n_groups, N_GSTATE]
        State, updated in place.
    equity_out, cash_out : float64[n, n_groups] or [0, 0]
        Filled per bar when non-empty.
    pos_out : float64[n, k] or [0, 0]
        Positions per bar when non-empty.
    orders, trades : float64[m, N_ORDER], float64[m2, N_TRADE]
        Record buffers; column ``c`` writes rows ``o_start[c]`` to ``o_start[c] + o_cap[c]``.
    o_count, t_count : int64[k]
        Records written per column, updated in place (may exceed the capacity:
        the caller checks).
    """
    n = close.shape[0]
    n_groups = group_start.shape[0] - 1
    rec_eq = equity_out.shape[0] > 0
    rec_cash = cash_out.shape[0] > 0
    rec_pos = pos_out.shape[0] > 0
    for g in prange(n_groups):
        c0 = group_start[g]
        c1 = group_start[g + 1]
        st = load_stats_nb(gstate, g)
        for i in range(n):
            bar = bar0 + i
            if execution == EXEC_NEXT_OPEN:
                for c in range(c0, c1):
                    pe = cstate[c, C_PEND_ENTRY] != 0
                    px = cstate[c, C_PEND_EXIT] != 0
                    ps = cstate[c, C_PEND_STOP] != 0
                    cstate[c, C_PEND_ENTRY] = 0.0
                    cstate[c, C_PEND_EXIT] = 0.0
                    cstate[c, C_PEND_STOP] = 0.0
                    price = open_[i, c]
                    if not (pe or px or ps) or np.isnan(price):
                        continue
                    pos = cstate[c, C_POS]
                    if ps:
                        action = A_CLOSE_LONG if pos > 0 else (A_CLOSE_SHORT if pos < 0
                                                               else A_NONE)
                        slip = 0.0
                    else:
                        action = resolve_action_nb(pos, pe, px, direction)
                        slip = slippage[c]
                    execute_action_nb(g, c, action, bar, price, fees[c], fixed_fees[c], slip,
                                      frac[c], gran[c], cstate, gstate, orders, o_start, o_count,
                                      o_cap, trades, t_start, t_count, t_cap)
            for c in range(c0, c1):
                price = close[i, c]
                if not np.isnan(price):
                    cstate[c, C_VAL] = price
                pos = cstate[c, C_POS]
                hit = stop_hit_nb(pos, cstate[c, C_STOP_REF], price, sl_stop[c], tp_stop[c])
                e = flex_nb(entries, i, c)
                x = flex_nb(exits, i, c)
                if execution == EXEC_NEXT_OPEN:
                    if hit:
                        cstate[c, C_PEND_STOP] = 1.0
                    else:
                        cstate[c, C_PEND_ENTRY] = 1.0 if e else 0.0
                        cstate[c, C_PEND_EXIT] = 1.0 if x else 0.0
                    continue
                if np.isnan(price):
                    continue
                if hit:
                    action = A_CLOSE_LONG if pos > 0 else A_CLOSE_SHORT
                    slip = 0.0
                elif e or x:
                    action = resolve_action_nb(pos, e, x, direction)
                    slip = slippage[c]
                else:
                    continue
                if action != A_NONE:
                    execute_action_nb(g, c, action, bar, price, fees[c], fixed_fees[c], slip,
                                      frac[c], gran[c], cstate, gstate, orders, o_start, o_count,
                                      o_cap, trades, t_start, t_count, t_cap)
            value = gstate[g, G_CASH]
            exposed = False
            for c in range(c0, c1):
                pos = cstate[c, C_POS]
                if pos != 0:
                    value += pos * cstate[c, C_VAL]
                    exposed = True
                if rec_pos:
                    pos_out[i, c] = pos
            st = step_stats_nb(st, bar, value, exposed)
            if rec_eq:
                equity_out[i, g] = value
            if rec_cash:
                cash_out[i, g] = gstate[g, G_CASH]
        store_stats_nb(gstate, g, st)


@njit(cache=True, parallel=True)
def simulate_weights_nb(close, weights, group_start, fees, slippage, gran, bar0, cstate,
                        gstate, equity_out, cash_out, pos_out, orders, o_start, o_count, o_cap,
                        trades, t_start, t_count, t_cap):
    """Rebalance each cash group to target weights at the close of each bar.

    ``weights[i, c]`` is column ``c``'s target fraction of the group's value at
    bar ``i``'s close (negative: short); NaN keeps the current position, as
    does a NaN close. Sells are executed before buys; when the buys (with fees
    and slippage) cost more than the cash available, all of the bar's buys are
    scaled down by the same factor. Each order's size is rounded down to a
    multiple of ``gran[c]`` (NaN: no rounding), after that scaling. Other
    arguments are as in :func:`simulate_signals_nb`.
    """
    n = close.shape[0]
    n_groups = group_start.shape[0] - 1
    rec_eq = equity_out.shape[0] > 0
    rec_cash = cash_out.shape[0] > 0
    rec_pos = pos_out.shape[0] > 0
    for g in prange(n_groups):
        c0 = group_start[g]
        c1 = group_start[g + 1]
        delta = np.zeros(c1 - c0)
        st = load_stats_nb(gstate, g)
        for i in range(n):
            bar = bar0 + i
            value = gstate[g, G_CASH]
            any_target = False
            for c in range(c0, c1):
                price = close[i, c]
                if not np.isnan(price):
                    cstate[c, C_VAL] = price
                if cstate[c, C_POS] != 0:
                    value += cstate[c, C_POS] * cstate[c, C_VAL]
                if not np.isnan(flex_nb(weights, i, c)) and not np.isnan(price):
                    any_target = True
            if any_target:
                for c in range(c0, c1):
                    w = flex_nb(weights, i, c)
                    price = close[i, c]
                    delta[c - c0] = 0.0
                    if np.isnan(w) or np.isnan(price):
                        continue
                    target = w * value / price
                    if not is_close_nb(target, cstate[c, C_POS]):
                        d = target - cstate[c, C_POS]
                        delta[c - c0] = np.sign(d) * floor_to_nb(abs(d), gran[c])
                for c in range(c0, c1):
                    d = delta[c - c0]
                    if d < 0:
                        adj = close[i, c] * (1.0 - slippage[c])
                        paid = -d * adj * fees[c]
                        gstate[g, G_CASH] += -d * adj - paid
                        cstate[c, C_POS] = add_nb(cstate[c, C_POS], d)
                        on_fill_nb(g, c, bar, -1.0, -d, adj, paid, cstate, gstate, orders,
                                   o_start, o_count, o_cap, trades, t_start, t_count, t_cap)
                cost = 0.0
                for c in range(c0, c1):
                    d = delta[c - c0]
                    if d > 0:
                        cost += d * close[i, c] * (1.0 + slippage[c]) * (1.0 + fees[c])
                cash = gstate[g, G_CASH]
                scale = 1.0
                if cost > cash and not is_close_nb(cost, cash):
                    scale = max(cash, 0.0) / cost
                for c in range(c0, c1):
                    d = delta[c - c0]
                    if d > 0 and scale < 1.0:
                        d = floor_to_nb(d * scale, gran[c])
                    if d > 0 and d >= MIN_SIZE:
                        adj = close[i, c] * (1.0 + slippage[c])
                        paid = d * adj * fees[c]
                        gstate[g, G_CASH] = add_nb(gstate[g, G_CASH], -(d * adj + paid))
                        cstate[c, C_POS] = add_nb(cstate[c, C_POS], d)
                        on_fill_nb(g, c, bar, 1.0, d, adj, paid, cstate, gstate, orders,
                                   o_start, o_count, o_cap, trades, t_start, t_count, t_cap)
            value = gstate[g, G_CASH]
            exposed = False
            for c in range(c0, c1):
                pos = cstate[c, C_POS]
                if pos != 0:
                    value += pos * cstate[c, C_VAL]
                    exposed = True
                if rec_pos:
                    pos_out[i, c] = pos
            st = step_stats_nb(st, bar, value, exposed)
            if rec_eq:
                equity_out[i, g] = value
            if rec_cash:
                cash_out[i, g] = gstate[g, G_CASH]
        store_stats_nb(gstate, g, st)


# ---------------------------------------------------------------- one-column fast path
# Specialised signal-simulation kernel for the common case (numpy and numba only).
#
# :func:`simulate_signals_1col_nb` gives exactly the numbers of
# :func:`~alphatrade_lab.backtest.kernels.simulate_signals_nb` when every cash
# group holds one column, no stop is set and signals fill at the close
# (``EXEC_CLOSE``). It keeps the column's position, cash and last close in local
# variables, touches the state arrays only on bars whose signals lead to an
# order (through the same :func:`execute_action_nb`), advances the running
# statistics with the engine's one per-bar step, :func:`step_stats_nb`, and
# fast-forwards them over stretches without a position, where the value cannot
# change.
#
# Instead of per-bar equity, cash and position arrays it can record the cash and
# position after each fill (``fills``); :func:`expand_1col_nb` rebuilds the
# per-bar arrays from them, bit for bit, when they are asked for.

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


@njit(cache=True)
def expand_column_nb(close, c, order_bar, fills, r, r_end, init_cash, equity_out, cash_out,
                     pos_out):
    """:func:`expand_1col_nb` for column ``c`` alone, whose orders are rows ``r:r_end``
    (serial: called directly for a single column, where a parallel region only adds
    a spinning thread).

    Runs from one order to the next: flat, every bar's value is the cash (a plain
    fill); in a position, ``cash + pos * last valid close``. An order fills at a valid
    close, so the last valid close is known from each order's bar on."""
    n = close.shape[0]
    rec_eq, rec_cash, rec_pos = equity_out.shape[0] > 0, cash_out.shape[0] > 0, pos_out.shape[0] > 0
    cash = init_cash
    pos = 0.0
    val = np.nan
    i = 0
    while i < n:
        nxt = min(np.int64(order_bar[r]), n) if r < r_end else n
        if rec_eq:
            if pos == 0:
                for t in range(i, nxt):
                    equity_out[t, c] = cash
            else:
                for t in range(i, nxt):
                    price = close[t, c]
                    if not np.isnan(price):
                        val = price
                    equity_out[t, c] = cash + pos * val
        if rec_cash:
            for t in range(i, nxt):
                cash_out[t, c] = cash
        if rec_pos:
            for t in range(i, nxt):
                pos_out[t, c] = pos
        if nxt >= n:
            break
        price = close[nxt, c]
        if not np.isnan(price):
            val = price
        cash = fills[r, F_CASH]
        pos = fills[r, F_POS]
        r += 1
        if rec_eq:
            value = cash
            if pos != 0:
                value += pos * val
            equity_out[nxt, c] = value
        if rec_cash:
            cash_out[nxt, c] = cash
        if rec_pos:
            pos_out[nxt, c] = pos
        i = nxt + 1


@njit(cache=True, parallel=True)
def expand_1col_nb(close, order_bar, fills, start, count, init_cash, equity_out, cash_out,
                   pos_out):
    """Per-bar equity, cash and positions of a fresh :func:`simulate_signals_1col_nb` run
    (an output of shape (0, 0) is not filled).

    ``order_bar`` and ``fills`` are the compacted order bars and fill states:
    column ``c``'s orders are rows ``start[c]:start[c] + count[c]``, in bar order.
    The value of each bar is computed as in the simulation (cash, plus position
    times the last valid close when in a position), so the results are identical.
    Each column is :func:`expand_column_nb`.
    """
    k = close.shape[1]
    for cc in prange(k):
        c = np.int64(cc)
        expand_column_nb(close, c, order_bar, fills, start[c], start[c] + count[c], init_cash[c],
                         equity_out, cash_out, pos_out)


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
