"""Numba kernels of moving-average crossover sweeps: every (fast, slow) pair in one pass.

The averages of every window come from prefix sums shared by all pairs
(:func:`ma_prepare_nb`); each pair then runs the backtest engine's fill rules and
streaming statistics on one column (:func:`ma_pair_nb`), stepping bar by bar only
where a signal is acted on and running through the bars between signals in tight
loops. Results equal :func:`alphatrade_lab.backtest.from_signals` on the signals of
``atl.signals.crossed_above`` / ``crossed_below`` of the two averages.
"""

import numpy as np
from numba import njit, prange

from alphatrade_lab.backtest import kernels as backtest_nb
from alphatrade_lab.backtest.sweeps.kernels import (
    book_fill_nb,
    initial_nb,
    load_state_nb,
    order_nb,
    prefix_sums_nb,
    step_stats_fast_nb,
    store_state_nb,
    window_mean_nb,
)
from alphatrade_lab.signals.kernels import crossed_above_at_nb, crossed_below_at_nb

#: Bars per block of :func:`sweep_ma_pairs_nb`, and pairs stepped together through each:
#: a block of 16 pairs' averages, the column and its sums fit in a 1 MB L2 cache.
BAR_BLOCK = 2048
PAIR_GROUP = 16

@njit(cache=True)
def _acc_nb(hi, lo, x):
    """Add ``x`` to the compensated sum ``hi + lo`` (Knuth's two-sum)."""
    s = hi + x
    b = s - hi
    return s, lo + ((hi - (s - b)) + (x - b))


@njit(cache=True)
def return_sums_nb(col):
    """Compensated running sums of a column's bar returns ``r`` (from the last valid close;
    0 on a NaN bar), ``r**2`` and ``r**2`` where ``r < 0``: float64[n + 1, 6], the (high,
    low) parts of each, with a leading 0. A held all-in long position (no cash, value
    ``pos * close``) has these returns, so the sums over any stretch it is held cost two
    lookups (:func:`span_sum_nb`)."""
    n = col.shape[0]
    out = np.zeros((n + 1, 6))
    h1 = l1 = h2 = l2 = h3 = l3 = 0.0
    last = np.nan
    for t in range(n):
        c = col[t]
        if not np.isnan(c):
            if not np.isnan(last):
                r = (c - last) / last
                h1, l1 = _acc_nb(h1, l1, r)
                h2, l2 = _acc_nb(h2, l2, r * r)
                if r < 0:
                    h3, l3 = _acc_nb(h3, l3, r * r)
            last = c
        out[t + 1, 0], out[t + 1, 1] = h1, l1
        out[t + 1, 2], out[t + 1, 3] = h2, l2
        out[t + 1, 4], out[t + 1, 5] = h3, l3
    return out


@njit(cache=True)
def next_gap_nb(col):
    """For each bar, the first bar at or after it whose close is NaN (``n`` if none)."""
    n = col.shape[0]
    out = np.empty(n + 1, dtype=np.int64)
    nxt = n
    out[n] = n
    for t in range(n - 1, -1, -1):
        if np.isnan(col[t]):
            nxt = t
        out[t] = nxt
    return out


@njit(cache=True)
def span_sum_nb(hi_b, hi_a, lo_b, lo_a):
    """``(hi_b + lo_b) - (hi_a + lo_a)`` for two compensated running sums from
    :func:`return_sums_nb`: the sum over the bars between them, to about one rounding."""
    s = hi_b - hi_a
    bb = s - hi_b
    err = (hi_b - (s - bb)) + (-hi_a - bb)
    return s + (err + (lo_b - lo_a))


@njit(cache=True, parallel=True)
def ma_table_nb(close, windows, end):
    """Simple moving averages of every column for each window: float64[k, len(windows), end]."""
    k = close.shape[1]
    cs, nc, _ = prefix_sums_nb(close[:end])
    out = np.empty((k, windows.shape[0], end))
    for task in prange(k * windows.shape[0]):
        j = task // windows.shape[0]
        w = task - j * windows.shape[0]
        # Views taken once: a view made per cell costs reference counting per cell.
        csj = cs[j]
        ncj = nc[j]
        row = out[j, w]
        for i in range(end):
            row[i] = window_mean_nb(csj, ncj, i, windows[w])
    return out


@njit(cache=True, inline="always")
def first_above_nb(a, b, i, stop, above):
    """The first ``j`` in ``i:stop`` where ``a[j] > b[j]`` is ``above`` (``stop`` if none).

    A plain loop: comparing blocks of bars without a branch (a count of hits per
    block) compiles to unrolled scalar compares here, not vector ones, and measured
    no faster.
    """
    j = i
    while j < stop and (a[j] > b[j]) != above:
        j += 1
    return j


@njit(cache=True, inline="always")
def next_cross_nb(a, b, i, stop):
    """The first bar ``j`` in ``i:stop`` where ``a`` crosses above ``b``
    (``crossed_above_at_nb(a[j - 1], b[j - 1], a[j], b[j])``), ``stop`` if none; ``a``
    and ``b`` hold no NaN in ``i - 1:stop``. A bar where ``a > b`` after one where
    ``a <= b`` is a cross, so: past the bars still above, then to the next above."""
    j = i
    if a[i - 1] > b[i - 1]:
        j = first_above_nb(a, b, i, stop, False) + 1
        if j > stop:
            return stop
    return first_above_nb(a, b, j, stop, True)


@njit(cache=True, inline="always")
def next_acted_nb(ma_fast, ma_slow, i, stop, want_up, want_dn):
    """The first bar in ``i:stop`` (``stop`` if none) where the fast average crosses above
    the slow one and ``want_up``, or below and ``want_dn`` (``atl.signals``' rules);
    the averages hold no NaN in ``i - 1:stop``."""
    if want_up and want_dn:
        j = i
        while j < stop:
            fp, sp, f, s = ma_fast[j - 1], ma_slow[j - 1], ma_fast[j], ma_slow[j]
            if crossed_above_at_nb(fp, sp, f, s) or crossed_below_at_nb(fp, sp, f, s):
                return j
            j += 1
        return stop
    if want_up:
        return next_cross_nb(ma_fast, ma_slow, i, stop)
    if want_dn:
        return next_cross_nb(ma_slow, ma_fast, i, stop)
    return stop


@njit(cache=True, inline="always")
def max_min_nb(col, i, j):
    """The largest and smallest of the NaN-free ``col[i:j]`` (``j > i``)."""
    mx = col[i]
    mn = col[i]
    for t in range(i + 1, j):
        c = col[t]
        mx = c if c > mx else mx
        mn = c if c < mn else mn
    return mx, mn


@njit(cache=True, inline="always")
def all_in_fill_nb(price, fees, slippage, cash, free, pos, book):
    """:func:`order_nb` for a long-only account that buys with all its cash, without fixed
    fees: the same arithmetic with the branches those settings cannot take left out
    (a third cheaper per order). ``pos == 0`` buys, ``pos > 0`` sells it all; returns
    the new ``(cash, free, pos, book)`` (unchanged when the order is rejected).

    Buying all of ``cash``: ``buy_nb``'s size is infinite, so its cash limit applies:
    ``cash / (1 + fees)`` is spent on shares and the rest on fees, leaving exactly 0.
    """
    cash = backtest_nb._snap(cash)
    free = backtest_nb._snap(free)
    if pos == 0:
        if cash <= 0:
            return cash, free, pos, book
        adj = price * (1.0 + slippage)
        max_req = cash / (1.0 + fees)
        if max_req <= 0:
            return cash, free, pos, book
        fill_size = max_req / adj
        if fill_size < backtest_nb.MIN_SIZE and not backtest_nb.is_close_nb(
                fill_size, backtest_nb.MIN_SIZE):
            return cash, free, pos, book
        fees_paid = cash - max_req
        free = backtest_nb.add_nb(free, -cash)
        return 0.0, free, fill_size, book_fill_nb(book, 1.0, fill_size, adj, fees_paid)
    pos = backtest_nb._snap(pos)
    if pos <= 0 or backtest_nb.is_close_nb(pos, 0.0):
        return cash, free, pos, book
    if pos < backtest_nb.MIN_SIZE and not backtest_nb.is_close_nb(pos, backtest_nb.MIN_SIZE):
        return cash, free, pos, book
    adj = price * (1.0 - slippage)
    gross = pos * adj
    fees_paid = gross * fees + 0.0
    net = backtest_nb.add_nb(gross, -fees_paid)
    if net < 0:
        return cash, free, pos, book
    return cash + net, free + net, 0.0, book_fill_nb(book, -1.0, pos, adj, fees_paid)


@njit(cache=True, inline="always")
def held_peaks_nb(col, i, j, start, pos, peak, peak_bar, max_dd, max_dd_bars, dd_start):
    """The peak and drawdown statistics after the bars ``i:j`` of an all-in long position
    (values ``pos * col[t] > 0``), as ``step_stats_nb`` moves them bar by bar.

    Branch-free, as new peaks and new lows come at random: the deepest episode is
    picked by cross-multiplying (``trough / peak < bt / bp``) and divided once at the
    end, which gives the same ``max_dd`` (division by a positive number is monotone).
    """
    trough = np.inf
    bt = np.inf
    bp = 1.0
    for t in range(i, j):
        value = pos * col[t]
        bar = float(t - start)
        rec = value >= peak
        better = rec and trough * bp < bt * peak
        bt = trough if better else bt
        bp = peak if better else bp
        gap = bar - peak_bar
        longer = rec and gap > 1 and gap > max_dd_bars
        dd_start = peak_bar if longer else dd_start
        max_dd_bars = gap if longer else max_dd_bars
        peak_bar = bar if rec else peak_bar
        trough = np.inf if rec else min(trough, value)
        peak = value if rec else peak
    if trough * bp < bt * peak:
        bt = trough
        bp = peak
    if bt < np.inf:
        max_dd = min(max_dd, bt / bp - 1.0)
    return peak, peak_bar, max_dd, max_dd_bars, dd_start


@njit(cache=True)
def ma_pair_nb(col, sums, next_gap, ma_fast, ma_slow, warm, start, lo, hi, direction, fees,
               fixed_fees, slippage, frac, cstate, gstate, row):
    """Bars ``lo:hi`` of one MA-crossover backtest of one column, signals and portfolio
    in one pass, from and back to the state in row ``row`` of ``cstate``/``gstate``
    (:func:`~alphatrade_lab.backtest.sweeps.kernels.store_state_nb`).

    ``ma_fast``/``ma_slow`` are the two averages, ``warm`` the first bar where both
    can exist, ``start`` the first bar that trades (bars count from it in the
    statistics), ``sums`` and ``next_gap`` the column's :func:`return_sums_nb` and
    :func:`next_gap_nb`. Running ``start:end`` in consecutive pieces gives the same
    state as in one go, but for the all-in return sums, added once more per piece
    (about 1e-16 relative each).

    Crosses follow :func:`alphatrade_lab.signals.crossed_above` and ``crossed_below``.
    Bars are stepped one by one with the engine's rules while the previous bar has a
    NaN average. Once it has none, the averages stay valid up to the next NaN close,
    so the next bar whose signal the position acts on is looked up first
    (:func:`next_acted_nb`, a few instructions per bar) and the bars before it are
    run through in one go. Flat, only the counters move. Holding all in (long,
    ``cash == 0``: the returns are the close's), the return sums come from ``sums``
    (agreeing with the bar-by-bar sums to rounding, about 1e-15 relative) and the
    peak and drawdown from the stretch's highest and lowest close when it makes no
    new peak (:func:`held_peaks_nb` when it does); any other position is valued bar
    by bar as the engine does (``cash + pos * close``). Only signal bars fill
    orders, with the engine's own functions.

    Long only, a signal bar inside such a stretch (an entry when flat, an exit when
    long) is filled where the stretch loop stopped, with the same arithmetic as the
    one-bar step (:func:`all_in_fill_nb` when all cash goes in without fixed fees),
    and the stretch goes on from the next bar.

    The loops are written out here rather than called: a call taking arrays costs
    reference counting, and one passing the state tuples costs more than the bars.
    """
    account, book, stats = load_state_nb(cstate, gstate, row)
    cash, free, pos, debt, val = account
    slim = direction == backtest_nb.LONGONLY
    simple = slim and frac == 1.0 and fixed_fees == 0.0
    i = lo
    while i < hi:
        if i > start and not (np.isnan(ma_fast[i - 1]) or np.isnan(ma_slow[i - 1])):
            stop = min(hi, next_gap[i])
            none = backtest_nb.A_NONE
            while True:
                want_up = backtest_nb.resolve_action_nb(pos, True, False, direction) != none
                want_dn = backtest_nb.resolve_action_nb(pos, False, True, direction) != none
                (prev, n, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
                 n_exposed, last) = stats
                # The next bar whose signal the position acts on, found first; the bars
                # before it only need their values.
                j = next_acted_nb(ma_fast, ma_slow, i, stop, want_up, want_dn)
                if pos == 0:
                    if j > i and prev >= peak:
                        peak_bar = float(j - 1 - start)
                elif pos > 0 and cash == 0.0:
                    # All-in long: values are pos * close > 0. pos * c rounds monotonically
                    # in c, so the stretch's highest and lowest values are pos times its
                    # highest and lowest closes: without a new peak, only the deepest
                    # value counts (``min(v) / peak`` is ``min(v / peak)``, division by a
                    # positive number being monotone too).
                    if j > i:
                        c_max, c_min = max_min_nb(col, i, j)
                        if pos * c_max < peak:
                            max_dd = min(max_dd, pos * c_min / peak - 1.0)
                        else:
                            (peak, peak_bar, max_dd, max_dd_bars, dd_start) = held_peaks_nb(
                                col, i, j, start, pos, peak, peak_bar, max_dd, max_dd_bars,
                                dd_start)
                        n_exposed += j - i
                        prev = pos * col[j - 1]
                        # Indexed in place: a row view per stretch costs reference counting.
                        s1 += span_sum_nb(sums[j, 0], sums[i, 0], sums[j, 1], sums[i, 1])
                        s2 += span_sum_nb(sums[j, 2], sums[i, 2], sums[j, 3], sums[i, 3])
                        down2 += span_sum_nb(sums[j, 4], sums[i, 4], sums[j, 5], sums[i, 5])
                else:
                    trough = np.inf
                    for t in range(i, j):
                        value = cash + pos * col[t]
                        r = ((value - prev) / prev if prev > 0
                             else backtest_nb.bar_return_nb(value, prev))
                        if r < 0:
                            down2 += r * r
                        s1 += r
                        s2 += r * r
                        prev = value
                        if value >= peak:
                            if trough < peak:
                                max_dd = min(max_dd, trough / peak - 1.0)
                                trough = np.inf
                            bar = float(t - start)
                            if peak_bar < bar - 1 and bar - peak_bar > max_dd_bars:
                                max_dd_bars = bar - peak_bar
                                dd_start = peak_bar
                            peak = value
                            peak_bar = bar
                        elif value < trough:
                            trough = value
                    if trough < peak:
                        max_dd = min(max_dd, trough / peak - 1.0)
                    n_exposed += j - i
                if j > i:
                    n += j - i
                    last = float(j - 1 - start)
                stats = (prev, n, s1, s2, down2, peak, peak_bar, max_dd, max_dd_bars, dd_start,
                         n_exposed, last)
                if j >= stop or not slim:
                    break
                # Bar j: a valid close and averages, and a signal that a long-only account
                # acts on (an entry when flat, an exit when long): filled here exactly as
                # the one-bar step below would, and the stretch goes on.
                price = col[j]
                val = price
                if simple:
                    cash, free, pos, book = all_in_fill_nb(price, fees, slippage, cash, free,
                                                           pos, book)
                else:
                    action = (backtest_nb.A_OPEN_LONG if pos == 0
                              else backtest_nb.A_CLOSE_LONG)
                    side, res = order_nb(action, price, fees, fixed_fees, slippage, frac, cash,
                                         free, pos, debt)
                    if res[0]:
                        cash, free, pos, debt = res[1], res[2], res[3], res[4]
                        book = book_fill_nb(book, side, res[5], res[6], res[7])
                value = cash
                if pos != 0:
                    value += pos * val
                stats = step_stats_fast_nb(stats, j - start, value, pos != 0)
                i = j + 1
                if i >= stop:
                    break
            if j >= hi or i >= hi:
                if j > i:
                    val = col[j - 1]
                break
            if i <= j:
                # Back to one bar at a time, with the state the skipped bars left.
                if j > i:
                    val = col[j - 1]
                i = j
            else:
                continue
        if i > warm:
            e = crossed_above_at_nb(ma_fast[i - 1], ma_slow[i - 1], ma_fast[i], ma_slow[i])
            x = crossed_below_at_nb(ma_fast[i - 1], ma_slow[i - 1], ma_fast[i], ma_slow[i])
        else:
            e = x = False
        price = col[i]
        if not np.isnan(price):
            val = price
            if e or x:
                action = backtest_nb.resolve_action_nb(pos, e, x, direction)
                if action != backtest_nb.A_NONE:
                    side, res = order_nb(action, price, fees, fixed_fees, slippage, frac,
                                         cash, free, pos, debt)
                    if res[0]:
                        cash, free, pos, debt = res[1], res[2], res[3], res[4]
                        book = book_fill_nb(book, side, res[5], res[6], res[7])
        value = cash
        if pos != 0:
            value += pos * val
        stats = step_stats_fast_nb(stats, i - start, value, pos != 0)
        i += 1
    store_state_nb(cstate, gstate, row, (cash, free, pos, debt, val), book, stats,
                   gstate[row, backtest_nb.G_INIT])


@njit(cache=True, parallel=True)
def ma_prepare_nb(close, windows, end):
    """What every MA pair of a sweep shares, computed once: the columns of ``close[:end]``
    (rows), their moving averages for each of ``windows`` (:func:`ma_table_nb`), and
    each column's :func:`return_sums_nb` and :func:`next_gap_nb`."""
    k = close.shape[1]
    cols = np.ascontiguousarray(close[:end].T)
    table = ma_table_nb(close, windows, end)
    sums = np.empty((k, end + 1, 6))
    gaps = np.empty((k, end + 1), dtype=np.int64)
    for j in prange(k):
        sums[j] = return_sums_nb(cols[j])
        gaps[j] = next_gap_nb(cols[j])
    return cols, table, sums, gaps


@njit(cache=True)
def spread_stride_nb(n):
    """A stride coprime to ``n`` near ``0.618 n`` (1 for ``n <= 2``): ``q -> (q * stride) %
    n`` permutes ``range(n)``, and any run of consecutive ``q`` lands evenly spread."""
    stride = max(1, int(0.6180339887 * n))
    while True:
        a, b = stride, n
        while b:
            a, b = b, a % b
        if a == 1:
            return stride
        stride += 1


@njit(cache=True, parallel=True)
def sweep_ma_pairs_nb(cols, table, sums, gaps, windows, fast, slow, start, end, direction,
                      fees, fixed_fees, slippage, frac, init_cash):
    """Moving-average crossover backtests for every (fast, slow) pair and column.

    Long entry when the ``fast``-bar simple moving average of the close crosses above
    the ``slow`` one, exit (or short entry) when it crosses below. Each pair's signals
    and portfolio run in a single pass over the bars (:func:`ma_pair_nb`), in blocks of
    :data:`BAR_BLOCK` bars that up to :data:`PAIR_GROUP` pairs of a column take in turn.

    Parameters
    ----------
    cols, table, sums, gaps
        What :func:`ma_prepare_nb` returned for ``windows``.
    windows : int64[w]
        Sorted windows, holding every ``fast`` and ``slow``.
    fast, slow : int64[m]
        The windows of the m pairs.
    start, end : int
        Bars that trade and count in the statistics.
    direction : int
    fees, fixed_fees, slippage, frac, init_cash : float

    Returns
    -------
    cstate : float64[m * k, N_CSTATE]
    gstate : float64[m * k, N_GSTATE]
        Final state of pair ``p`` and column ``j`` in row ``p * k + j``.
    """
    k = cols.shape[0]
    m = fast.shape[0]
    fi = np.searchsorted(windows, fast)
    si = np.searchsorted(windows, slow)
    c_out = np.zeros((m * k, backtest_nb.N_CSTATE))
    g_out = np.zeros((m * k, backtest_nb.N_GSTATE))
    # Tasks are runs of up to `group` consecutive pairs on one column, stepped together
    # through blocks of BAR_BLOCK bars: what a block reads of the column, its sums and
    # the pairs' averages then stays in the core's cache while each pair runs it, where
    # pair after pair over all the bars would fetch them from memory every time. Groups
    # shrink to leave at least 32 tasks (8 per thread on 4 cores; numba's thread count
    # read here would keep the kernel out of the cache).
    group = max(1, min(PAIR_GROUP, (m * k) // 32))
    n_groups = (m + group - 1) // group
    n_tasks = n_groups * k
    # Iteration q runs task (q * stride) % n_tasks: the cost of a pair falls with its
    # windows (fewer crosses, so fewer orders), and the contiguous blocks of iterations
    # that the threads get would otherwise leave one thread with most of the orders.
    stride = spread_stride_nb(n_tasks)
    for q in prange(n_tasks):
        task = (q * stride) % n_tasks
        gr = task // k
        j = task - gr * k
        p0 = gr * group
        p1 = min(m, p0 + group)
        for p in range(p0, p1):
            account, book, stats = initial_nb(init_cash)
            store_state_nb(c_out, g_out, p * k + j, account, book, stats, init_cash)
        for lo in range(start, end, BAR_BLOCK):
            hi = min(end, lo + BAR_BLOCK)
            for p in range(p0, p1):
                ma_pair_nb(cols[j], sums[j], gaps[j], table[j, fi[p]], table[j, si[p]],
                           max(fast[p], slow[p]) - 1, start, lo, hi, direction, fees,
                           fixed_fees, slippage, frac, c_out, g_out, p * k + j)
    return c_out, g_out
