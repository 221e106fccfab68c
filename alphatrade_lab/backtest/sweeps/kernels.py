"""Numba kernels of parameter sweeps: signals and simulation fused per combination.

Each combination runs the backtest engine's own fill rules
(:func:`alphatrade_lab.backtest.kernels.buy_nb` and ``sell_nb``) and streaming statistics
(:func:`~alphatrade_lab.backtest.kernels.step_stats_nb`) on one column, with its state
in local variables (array state costs reference counting on every call), and keeps
only the final state: nothing of size bars × combinations is allocated. MA crossovers
go further (:mod:`alphatrade_lab.backtest.sweeps.ma_kernels`): only the bars where a
signal is acted on run the engine's code; the bars between them take a few
instructions each.
Trading and statistics cover bars ``start:end``; earlier bars only warm up the
indicators, so an out-of-sample run sees exactly what a live one would.

Signal kernels (``*_signals_nb``) share one signature so that users can write their
own: ``f(close, params, entries, exits)`` fills the boolean arrays ``entries`` and
``exits`` (length of ``close``) from the 1-D ``close`` of one column and a float64
``params`` vector, using for bar ``i`` nothing after ``close[i]``.
"""

import numpy as np
from numba import njit, prange

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.features.kernels import rsi_1d_nb
from alphatrade_lab.signals.kernels import crossed_above_at_nb, crossed_below_at_nb


@njit(cache=True)
def prefix_sums_nb(a):
    """Per column (rows of the results): running sums of the non-NaN values and running
    NaN counts, each with a leading 0, and whether the column holds any NaN."""
    n, k = a.shape
    cs = np.zeros((k, n + 1))
    nc = np.zeros((k, n + 1))
    has_nan = np.zeros(k, dtype=np.bool_)
    for j in range(k):
        s = 0.0
        c = 0.0
        for i in range(n):
            if np.isnan(a[i, j]):
                c += 1.0
            else:
                s = s + a[i, j]
            cs[j, i + 1] = s
            nc[j, i + 1] = c
        has_nan[j] = c > 0
    return cs, nc, has_nan


@njit(cache=True, inline='always')
def window_mean_nb(cs, nc, i, w):
    """Mean of the ``w`` values ending at row ``i`` of one column's prefix sums; NaN if
    any is NaN or the window starts before the data. The same arithmetic as vectorbt's
    rolling mean (a difference of running sums), so the values are bit-identical."""
    if i + 1 < w:
        return np.nan
    if nc[i + 1] - nc[i + 1 - w] > 0:
        return np.nan
    return (cs[i + 1] - cs[i + 1 - w]) / w


@njit(cache=True, inline='always')
def order_nb(action, price, fees, fixed_fees, slippage, frac, cash, free, pos, debt):
    """Fill one signal action for a lone column, with the engine's buy and sell rules.

    The scalar twin of :func:`~alphatrade_lab.backtest.kernels.execute_action_nb`
    (which works on state arrays): returns ``(side, (filled, cash, free, pos, debt,
    size, price, fees_paid))``.
    """
    cash = backtest_nb._snap(cash)
    free = backtest_nb._snap(free)
    pos = backtest_nb._snap(pos)
    debt = backtest_nb._snap(debt)
    if action == backtest_nb.A_OPEN_LONG:
        return 1.0, backtest_nb.buy_nb(cash, free, pos, debt, np.inf, frac * cash, price, fees,
                             fixed_fees, slippage, False)
    if action == backtest_nb.A_TO_LONG:
        size = np.inf
        if frac < 1.0:
            adj = price * (1.0 + slippage)
            all_in = backtest_nb.add_nb(cash, -fixed_fees) / (1.0 + fees) / adj
            size = -pos + frac * max(all_in + pos, 0.0)
        return 1.0, backtest_nb.buy_nb(cash, free, pos, debt, size, cash, price, fees, fixed_fees,
                             slippage, False)
    if action == backtest_nb.A_CLOSE_SHORT:
        return 1.0, backtest_nb.buy_nb(cash, free, pos, debt, -pos, cash, price, fees, fixed_fees,
                             slippage, True)
    if action == backtest_nb.A_CLOSE_LONG:
        return -1.0, backtest_nb.sell_nb(cash, free, pos, debt, pos, 1.0, price, fees, fixed_fees,
                               slippage, True)
    return -1.0, backtest_nb.sell_nb(cash, free, pos, debt, np.inf, frac, price, fees, fixed_fees,
                           slippage, False)


@njit(cache=True, inline='always')
def _close_part(book, size, exit_price, exit_fees, entry_fees):
    """Book the closing of ``size`` of the open trade (as ``record_trade_nb``)."""
    (tr_dir, tr_size, tr_gross, tr_fees, n_closed, n_win, n_loss, sum_win, sum_loss,
     n_orders, total_fees) = book
    entry_val = size * (tr_gross / tr_size)
    diff = backtest_nb.add_nb(size * exit_price, -entry_val)
    if tr_dir < 0 and diff != 0:
        diff = -diff
    pnl = diff - entry_fees - exit_fees
    n_closed += 1.0
    if pnl > 0:
        n_win += 1.0
        sum_win += pnl
    elif pnl < 0:
        n_loss += 1.0
        sum_loss += pnl
    return (tr_dir, tr_size, tr_gross, tr_fees, n_closed, n_win, n_loss, sum_win, sum_loss,
            n_orders, total_fees)


@njit(cache=True, inline='always')
def book_fill_nb(book, side, size, price, fees_paid):
    """Trade bookkeeping of one fill (the scalar twin of ``on_fill_nb``).

    ``book`` is ``(trade direction, trade size, trade gross entry value, trade entry
    fees, closed, wins, losses, sum of wins, sum of losses, orders, fees)``.
    """
    (tr_dir, tr_size, tr_gross, tr_fees, n_closed, n_win, n_loss, sum_win, sum_loss,
     n_orders, total_fees) = book
    n_orders += 1.0
    total_fees += fees_paid
    if tr_dir == 0:
        tr_dir, tr_size, tr_gross, tr_fees = side, 0.0, 0.0, 0.0
    if side == tr_dir:
        return (tr_dir, tr_size + size, tr_gross + size * price, tr_fees + fees_paid, n_closed,
                n_win, n_loss, sum_win, sum_loss, n_orders, total_fees)
    book = (tr_dir, tr_size, tr_gross, tr_fees, n_closed, n_win, n_loss, sum_win, sum_loss,
            n_orders, total_fees)
    open_size = tr_size
    if backtest_nb.is_close_nb(size, open_size) or size < open_size:
        done = backtest_nb.is_close_nb(size, open_size)
        closed = open_size if done else size
        book = _close_part(book, closed, price, fees_paid, closed / open_size * tr_fees)
        if done:
            return (0.0, 0.0, 0.0, 0.0) + book[4:]
        keep = (open_size - size) / open_size
        return (tr_dir, tr_size * keep, tr_gross * keep, tr_fees * keep) + book[4:]
    exit_fees = open_size / size * fees_paid
    book = _close_part(book, open_size, price, exit_fees, tr_fees)
    rest = size - open_size
    return (side, rest, rest * price, fees_paid - exit_fees) + book[4:]


@njit(cache=True)
def initial_nb(init_cash):
    """Fresh state of a lone column: (account, trade book, streaming statistics).

    The account is ``(cash, free cash, position, short debt, last valid close)``; the
    book as in :func:`book_fill_nb`; the statistics as ``load_stats_nb`` returns them.
    """
    account = (init_cash, init_cash, 0.0, 0.0, np.nan)
    book = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    stats = (init_cash, 0.0, 0.0, 0.0, 0.0, np.nan, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    return account, book, stats


@njit(cache=True)
def bar_nb(bar, price, entry, exit_, account, book, stats, direction, fees, fixed_fees,
           slippage, frac):
    """Advance a lone column by one bar: fill its signals at the close, then value it.

    The same order of operations as ``simulate_signals_nb`` for a one-column group
    with ``execution="close"`` and no stops. Returns the new (account, book, stats).
    """
    cash, free, pos, debt, val = account
    if not np.isnan(price):
        val = price
        if entry or exit_:
            action = backtest_nb.resolve_action_nb(pos, entry, exit_, direction)
            if action != backtest_nb.A_NONE:
                side, res = order_nb(action, price, fees, fixed_fees, slippage, frac, cash,
                                     free, pos, debt)
                if res[0]:
                    cash, free, pos, debt = res[1], res[2], res[3], res[4]
                    book = book_fill_nb(book, side, res[5], res[6], res[7])
    value = cash
    if pos != 0:
        value += pos * val
    stats = step_stats_fast_nb(stats, bar, value, pos != 0)
    return (cash, free, pos, debt, val), book, stats


@njit(cache=True, inline='always')
def step_stats_fast_nb(stats, bar, value, exposed):
    """``step_stats_nb``, short-cut for the common bar whose value did not change.

    With ``value`` equal to the previous value the return is 0 (the sums stay), a
    value at its peak moves the peak's bar and one below it leaves the drawdown as
    the previous bar set it, so only the counters move; the result is identical.
    """
    (prev, n, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start, n_exposed,
     _) = stats
    if value != prev or n == 0:
        return backtest_nb.step_stats_nb(stats, bar, value, exposed)
    if value >= peak:
        peak_bar = float(bar)
    if exposed:
        n_exposed += 1.0
    return (prev, n + 1.0, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
            n_exposed, float(bar))


@njit(cache=True)
def store_state_nb(cstate, gstate, row, account, book, stats, init_cash):
    """Write a lone column's (account, book, stats) into row ``row`` of the column and
    group state arrays that ``metrics.stats_from_state`` reads (other fields untouched)."""
    cstate[row, backtest_nb.C_POS] = account[2]
    cstate[row, backtest_nb.C_DEBT] = account[3]
    cstate[row, backtest_nb.C_VAL] = account[4]
    cstate[row, backtest_nb.C_TR_DIR] = book[0]
    cstate[row, backtest_nb.C_TR_SIZE] = book[1]
    cstate[row, backtest_nb.C_TR_GROSS] = book[2]
    cstate[row, backtest_nb.C_TR_FEES] = book[3]
    gstate[row, backtest_nb.G_CASH] = account[0]
    gstate[row, backtest_nb.G_FREE] = account[1]
    gstate[row, backtest_nb.G_INIT] = init_cash
    gstate[row, backtest_nb.G_N_CLOSED] = book[4]
    gstate[row, backtest_nb.G_N_WIN] = book[5]
    gstate[row, backtest_nb.G_N_LOSS] = book[6]
    gstate[row, backtest_nb.G_SUM_WIN] = book[7]
    gstate[row, backtest_nb.G_SUM_LOSS] = book[8]
    gstate[row, backtest_nb.G_N_ORDERS] = book[9]
    gstate[row, backtest_nb.G_FEES] = book[10]
    backtest_nb.store_stats_nb(gstate, row, stats)


@njit(cache=True)
def load_state_nb(cstate, gstate, row):
    """The (account, book, stats) that :func:`store_state_nb` wrote into row ``row``."""
    c = cstate[row]
    g = gstate[row]
    account = (g[backtest_nb.G_CASH], g[backtest_nb.G_FREE], c[backtest_nb.C_POS],
               c[backtest_nb.C_DEBT], c[backtest_nb.C_VAL])
    book = (c[backtest_nb.C_TR_DIR], c[backtest_nb.C_TR_SIZE], c[backtest_nb.C_TR_GROSS],
            c[backtest_nb.C_TR_FEES], g[backtest_nb.G_N_CLOSED], g[backtest_nb.G_N_WIN],
            g[backtest_nb.G_N_LOSS], g[backtest_nb.G_SUM_WIN], g[backtest_nb.G_SUM_LOSS],
            g[backtest_nb.G_N_ORDERS], g[backtest_nb.G_FEES])
    return account, book, backtest_nb.load_stats_nb(gstate, row)


@njit(cache=True)
def final_state_nb(account, book, stats, init_cash):
    """The column and group state rows that ``metrics.stats_from_state`` reads."""
    cs = np.zeros((1, backtest_nb.N_CSTATE))
    gs = np.zeros((1, backtest_nb.N_GSTATE))
    store_state_nb(cs, gs, 0, account, book, stats, init_cash)
    return cs[0], gs[0]


@njit(cache=True)
def simulate_column_nb(close, entries, exits, start, end, direction, fees, fixed_fees,
                       slippage, frac, init_cash):
    """One column's backtest over bars ``start:end`` with fills at the close, no stops.

    Gives the same numbers as ``simulate_signals_nb`` on that column and those bars,
    with all state in local variables. Returns ``(cstate_row, gstate_row)``.
    """
    account, book, stats = initial_nb(init_cash)
    for i in range(start, end):
        account, book, stats = bar_nb(i - start, close[i], entries[i], exits[i], account, book,
                                      stats, direction, fees, fixed_fees, slippage, frac)
    return final_state_nb(account, book, stats, init_cash)


def make_sweep_kernel(signals_nb):
    """A parallel sweep kernel for the signal kernel ``signals_nb`` (compiled on first use).

    The kernel is ``sweep_nb(close, params, start, end, direction, fees, fixed_fees,
    slippage, frac, init_cash)`` with ``close`` float64[n, k] and ``params``
    float64[m, n_params], and returns what :func:`sweep_ma_pairs_nb` does. Each task keeps
    one column's signals in two boolean arrays of the column's length.
    """

    @njit(parallel=True)
    def sweep_nb(close, params, start, end, direction, fees, fixed_fees, slippage, frac,
                 init_cash):
        k = close.shape[1]
        m = params.shape[0]
        c_out = np.empty((m * k, backtest_nb.N_CSTATE))
        g_out = np.empty((m * k, backtest_nb.N_GSTATE))
        for task in prange(m * k):
            p = task // k
            j = task - p * k
            col = np.ascontiguousarray(close[:end, j])
            entries = np.zeros(end, dtype=np.bool_)
            exits = np.zeros(end, dtype=np.bool_)
            signals_nb(col, params[p], entries, exits)
            c_out[task], g_out[task] = simulate_column_nb(
                col, entries, exits, start, end, direction, fees, fixed_fees, slippage, frac,
                init_cash)
        return c_out, g_out

    return sweep_nb


# Built-in signal kernels --------------------------------------------------------------


@njit(cache=True)
def ma_cross_signals_nb(close, params, entries, exits):
    """params = (fast, slow): the fast SMA crossing above / below the slow SMA
    (``atl.signals.crossed_above`` and ``crossed_below``)."""
    wf = int(params[0])
    ws = int(params[1])
    cs, nc, _ = prefix_sums_nb(close.reshape((close.shape[0], 1)))
    fp = sp = np.nan
    for i in range(close.shape[0]):
        f = window_mean_nb(cs[0], nc[0], i, wf)
        s = window_mean_nb(cs[0], nc[0], i, ws)
        entries[i] = crossed_above_at_nb(fp, sp, f, s)
        exits[i] = crossed_below_at_nb(fp, sp, f, s)
        fp, sp = f, s


@njit(cache=True)
def rsi_reversal_signals_nb(close, params, entries, exits):
    """params = (window, lower, upper): buy when Wilder's RSI crosses below ``lower``
    (oversold), sell when it crosses above ``upper``.

    The RSI is the ``rsi_{w}`` feature's (:func:`alphatrade_lab.features.kernels.rsi_1d_nb`:
    NaN at a NaN close, which the averages skip) and the crossings are
    ``atl.signals.crossed_below(rsi, lower)`` and ``crossed_above(rsi, upper)``.
    """
    w = int(params[0])
    lower = params[1]
    upper = params[2]
    rsi = np.empty(close.shape[0])
    rsi_1d_nb(close, w, rsi)
    for i in range(close.shape[0]):
        if i == 0:
            entries[i] = exits[i] = False
            continue
        entries[i] = crossed_below_at_nb(rsi[i - 1], lower, rsi[i], lower)
        exits[i] = crossed_above_at_nb(rsi[i - 1], upper, rsi[i], upper)


@njit(cache=True)
def bollinger_reversion_signals_nb(close, params, entries, exits):
    """params = (window, k): buy when the close falls below the lower band (mean - k
    std, sample std of the last ``window`` closes), sell when it rises above the mean.
    Windows holding a NaN give no signal."""
    w = int(params[0])
    kk = params[1]
    n = close.shape[0]
    for i in range(n):
        entries[i] = False
        exits[i] = False
        if i + 1 < w:
            continue
        s = 0.0
        bad = False
        for t in range(i + 1 - w, i + 1):
            if np.isnan(close[t]):
                bad = True
                break
            s += close[t]
        if bad:
            continue
        mean = s / w
        ss = 0.0
        for t in range(i + 1 - w, i + 1):
            ss += (close[t] - mean) ** 2
        std = np.sqrt(ss / (w - 1))
        entries[i] = close[i] < mean - kk * std
        exits[i] = close[i] > mean


@njit(cache=True)
def donchian_breakout_signals_nb(close, params, entries, exits):
    """params = (window,): buy when the close breaks above the highest close of the
    previous ``window`` bars, sell when it breaks below their lowest. Channels holding
    a NaN give no signal."""
    w = int(params[0])
    n = close.shape[0]
    for i in range(n):
        entries[i] = False
        exits[i] = False
        if i < w or np.isnan(close[i]):
            continue
        hi = -np.inf
        lo = np.inf
        bad = False
        for t in range(i - w, i):
            c = close[t]
            if np.isnan(c):
                bad = True
                break
            hi = max(hi, c)
            lo = min(lo, c)
        if bad:
            continue
        entries[i] = close[i] > hi
        exits[i] = close[i] < lo
