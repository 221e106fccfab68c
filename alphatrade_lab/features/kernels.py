"""Numba kernels for features (plain arrays in, plain arrays out).

Every kernel works on whole long-form arrays split into groups (one per symbol):
``starts[g]`` and ``ends[g]`` are the first and one-past-last row of group g, and
rows of a group are in time order. Windows never cross a group boundary, and a
value at row i only uses rows ``<= i`` of its own group. Groups run in parallel.

Windows are *full* windows: a rolling value is NaN until the group has ``window``
valid (non-NaN) inputs in the window.
"""

import numpy as np
from numba import njit, prange

# ---------------------------------------------------------------------------
# Group boundaries and returns
# ---------------------------------------------------------------------------


@njit(cache=True)
def group_bounds_nb(codes):
    """First and one-past-last row of each run of equal ``codes`` (int64[n]).

    Returns ``starts, ends`` (int64[g]).
    """
    n = codes.shape[0]
    count = 0
    for i in range(n):
        if i == 0 or codes[i] != codes[i - 1]:
            count += 1
    starts = np.empty(count, dtype=np.int64)
    ends = np.empty(count, dtype=np.int64)
    g = -1
    for i in range(n):
        if i == 0 or codes[i] != codes[i - 1]:
            g += 1
            starts[g] = i
            if g > 0:
                ends[g - 1] = i
    if count > 0:
        ends[count - 1] = n
    return starts, ends


@njit(cache=True)
def _log_return_1d(close, horizon, out):
    n = close.shape[0]
    for i in range(min(horizon, n)):
        out[i] = np.nan
    for i in range(horizon, n):
        out[i] = np.log(close[i]) - np.log(close[i - horizon])


@njit(cache=True, parallel=True)
def log_return_nb(close, starts, ends, horizon):
    """``log(close[i]) - log(close[i - horizon])`` within each group; NaN for the first rows."""
    out = np.empty(close.shape[0])
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _log_return_1d(close[a:b], horizon, out[a:b])
    return out


@njit(cache=True, parallel=True)
def pct_change_nb(x, starts, ends):
    """``x[i] / x[i - 1] - 1`` within each group; NaN on each group's first row."""
    out = np.full(x.shape[0], np.nan)
    for g in prange(starts.shape[0]):
        for i in range(starts[g] + 1, ends[g]):
            out[i] = x[i] / x[i - 1] - 1.0
    return out


# ---------------------------------------------------------------------------
# Rolling moments
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _row_stats(xi, c, s1, s2, s3, w, den, k_skew, undefined, flat, want_std, want_z,
               want_skew):
    """Mean, m2, m3, std, z and skew of one row of :func:`_window_1d` from the sums
    ``s1, s2, s3`` of ``x - c`` over its window (scalars only: a helper taking the output
    arrays would cost a reference count per array and row); std, z and skew are NaN
    unless wanted."""
    if undefined:
        mu_i, v, t3 = np.nan, np.nan, np.nan
    elif flat:
        mu_i, v, t3 = xi, 0.0, 0.0
    else:
        mu = s1 / w
        mu_i = c + mu
        v = s2 - w * mu * mu
        v = v if v > 0.0 else 0.0
        t3 = s3 - 3.0 * mu * s2 + 2.0 * w * mu * mu * mu
    std, z, skew = np.nan, np.nan, np.nan
    if want_std or want_z:
        var = v / den if den > 0 else np.nan
        std = np.sqrt(var)
        if want_z and var > 0.0:
            z = (xi - mu_i) / std
    if want_skew and v > 0.0:
        skew = k_skew * t3 / (v * np.sqrt(v))
    return mu_i, v, t3, std, z, skew


@njit(cache=True)
def _window_1d(x, window, ddof, mean, m2, m3, std, z, skew):
    """Rolling statistics of one group's ``x`` over full windows of ``window`` rows, each
    written only into the outputs that are not empty (``np.empty(0)`` skips one):

    ``mean``; ``m2``/``m3`` the sums of squared/cubed deviations from it; ``std`` =
    ``sqrt(m2 / (window - ddof))``; ``z`` = ``(x - mean) / std``, NaN where the std is 0
    (never inf); ``skew`` the bias-corrected G1 ``window * sqrt(window - 1) / (window - 2)
    * m3 / m2**1.5``, NaN when ``window < 3`` or the variance is 0. All are NaN until a
    full window of non-NaN values is available.

    Sliding sums of ``x - c`` are kept with a shift ``c`` that is reset to the current
    value every ``window`` rows (the sums are then recomputed from the window), so no
    cancellation builds up on large levels such as prices and the result does not depend
    on where the data ends. A window whose values are all equal gets exactly 0 for
    ``m2``/``m3``. One pass serves every output, so the features that share a window
    (``ma_dist_20`` and ``bb_pctb_20``, ``vol_60`` and ``skew_60``) compute it once. An
    ``x`` without NaN after its first row takes :func:`_window_dense_1d` (same bits).
    """
    n = x.shape[0]
    if n == 0:
        return
    dense = True
    for i in range(1, n):
        if np.isnan(x[i]):
            dense = False
            break
    if dense:
        _window_dense_1d(x, window, ddof, mean, m2, m3, std, z, skew)
        return
    w = float(window)
    want_mean, want_m2, want_m3 = mean.shape[0] > 0, m2.shape[0] > 0, m3.shape[0] > 0
    want_std, want_z, want_skew = std.shape[0] > 0, z.shape[0] > 0, skew.shape[0] > 0
    third = want_m3 or want_skew
    den = float(window - ddof)
    k_skew = w * np.sqrt(w - 1.0) / (w - 2.0) if window >= 3 else np.nan
    c = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    nans = 0  # NaNs inside the current window
    same = 0  # length of the run of equal values ending at i
    since = 0  # rows since the last re-anchoring (re-anchor when it reaches window)
    prev = np.nan
    for i in range(n):
        xi = x[i]
        xi_nan = np.isnan(xi)
        if xi_nan:
            nans += 1
            same = 0
        elif xi == prev:
            same += 1
        else:
            same = 1
        prev = xi
        out_nan = False
        xo = 0.0
        if i >= window:
            xo = x[i - window]
            out_nan = np.isnan(xo)
            if out_nan:
                nans -= 1
        if since == 0 and not xi_nan:
            # Re-anchor: recompute the sums of the window ending at i around c = x[i].
            c = xi
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            lo = i - window + 1 if i - window + 1 > 0 else 0
            for j in range(lo, i + 1):
                xj = x[j]
                if not np.isnan(xj):
                    d = xj - c
                    s1 += d
                    s2 += d * d
                    if third:
                        s3 += d * d * d
        else:
            if not xi_nan:
                d = xi - c
                s1 += d
                s2 += d * d
                if third:
                    s3 += d * d * d
            if i >= window and not out_nan:
                d = xo - c
                s1 -= d
                s2 -= d * d
                if third:
                    s3 -= d * d * d
        since += 1
        if since == window:
            since = 0
        r_mean, r_m2, r_m3, r_std, r_z, r_skew = _row_stats(
            xi, c, s1, s2, s3, w, den, k_skew, i + 1 < window or nans > 0, same >= window,
            want_std, want_z, want_skew)
        if want_mean:
            mean[i] = r_mean
        if want_m2:
            m2[i] = r_m2
        if want_m3:
            m3[i] = r_m3
        if want_std:
            std[i] = r_std
        if want_z:
            z[i] = r_z
        if want_skew:
            skew[i] = r_skew


@njit(cache=True)
def _window_dense_1d(x, window, ddof, mean, m2, m3, std, z, skew):
    """:func:`_window_1d` of an ``x`` with no NaN after its first row (prices, volumes,
    1-bar returns), with the same arithmetic and so the same bits, and a third faster:
    without NaNs the re-anchoring rows are 0, window, 2 window, ... (window, 2 window, ...
    when ``x[0]`` is NaN), so each block of rows between two of them is a plain loop."""
    n = x.shape[0]
    w = float(window)
    want_mean, want_m2, want_m3 = mean.shape[0] > 0, m2.shape[0] > 0, m3.shape[0] > 0
    want_std, want_z, want_skew = std.shape[0] > 0, z.shape[0] > 0, skew.shape[0] > 0
    third = want_m3 or want_skew
    den = float(window - ddof)
    k_skew = w * np.sqrt(w - 1.0) / (w - 2.0) if window >= 3 else np.nan
    first = window - 1 + (1 if np.isnan(x[0]) else 0)  # first row with a full window
    same = 0  # length of the run of equal values ending at i
    prev = np.nan
    for a in range(0, n, window):
        c = x[a]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for j in range(a - window + 1 if a > 0 else 0, a + 1):
            d = x[j] - c
            s1 += d
            s2 += d * d
            if third:
                s3 += d * d * d
        for i in range(a, min(a + window, n)):
            xi = x[i]
            same = same + 1 if xi == prev else 1
            prev = xi
            if i > a:
                d = xi - c
                s1 += d
                s2 += d * d
                if third:
                    s3 += d * d * d
                if i >= window:
                    d = x[i - window] - c
                    s1 -= d
                    s2 -= d * d
                    if third:
                        s3 -= d * d * d
            r_mean, r_m2, r_m3, r_std, r_z, r_skew = _row_stats(
                xi, c, s1, s2, s3, w, den, k_skew, i < first, same >= window, want_std, want_z,
                want_skew)
            if want_mean:
                mean[i] = r_mean
            if want_m2:
                m2[i] = r_m2
            if want_m3:
                m3[i] = r_m3
            if want_std:
                std[i] = r_std
            if want_z:
                z[i] = r_z
            if want_skew:
                skew[i] = r_skew


@njit(cache=True, parallel=True)
def rolling_moments_nb(x, starts, ends, window, third):
    """Rolling mean, sum of squared deviations and (if ``third``) of cubed deviations.

    Parameters
    ----------
    x : float64[n]
    starts, ends : int64[g]
        Group boundaries.
    window : int
        Number of rows per window (>= 1).
    third : bool
        Also compute the sum of cubed deviations (else ``m3`` is left NaN).

    Returns
    -------
    mean, m2, m3 : float64[n]
        NaN until a full window of non-NaN values is available.
    """
    n = x.shape[0]
    mean = np.empty(n)
    m2 = np.empty(n)
    m3 = np.full(n, np.nan)
    none = np.empty(0)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _window_1d(x[a:b], window, 0, mean[a:b], m2[a:b], m3[a:b] if third else none, none,
                   none, none)
    return mean, m2, m3


@njit(cache=True, parallel=True)
def rolling_mean_nb(x, starts, ends, window):
    """Rolling mean over full windows within each group."""
    out = np.empty(x.shape[0])
    none = np.empty(0)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _window_1d(x[a:b], window, 0, out[a:b], none, none, none, none, none)
    return out


@njit(cache=True, parallel=True)
def rolling_std_nb(x, starts, ends, window, ddof):
    """Rolling standard deviation (``ddof=1``: sample, ``ddof=0``: population)."""
    out = np.empty(x.shape[0])
    none = np.empty(0)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _window_1d(x[a:b], window, ddof, none, none, none, out[a:b], none, none)
    return out


@njit(cache=True, parallel=True)
def rolling_zscore_nb(x, starts, ends, window, ddof):
    """``(x - rolling mean) / rolling std``; NaN where the std is 0 (never inf)."""
    out = np.empty(x.shape[0])
    none = np.empty(0)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _window_1d(x[a:b], window, ddof, none, none, none, none, out[a:b], none)
    return out


@njit(cache=True, parallel=True)
def rolling_skew_nb(x, starts, ends, window):
    """Bias-corrected rolling skewness (the adjusted Fisher-Pearson G1, as pandas).

    ``G1 = n * sqrt(n - 1) / (n - 2) * m3 / m2**1.5`` with ``m2``/``m3`` the sums of
    squared/cubed deviations of the ``n = window`` values. NaN when ``window < 3``
    or the window has zero variance.
    """
    out = np.empty(x.shape[0])
    none = np.empty(0)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _window_1d(x[a:b], window, 0, none, none, none, none, none, out[a:b])
    return out


# ---------------------------------------------------------------------------
# Exponential and Wilder smoothing, RSI, MACD, ATR
# ---------------------------------------------------------------------------


@njit(cache=True)
def _wilder_1d(x, window, first, out):
    """Wilder's smoothing of ``x[first:]``: SMA seed of the first ``window`` values, then
    ``avg = avg + (x - avg) / window``; NaN before the seed. ``out`` may be ``x``."""
    n = x.shape[0]
    seed = first + window - 1
    avg = np.nan
    if n > seed:
        s = 0.0
        for j in range(first, first + window):
            s += x[j]
        avg = s / window
    for i in range(min(seed, n)):
        out[i] = np.nan
    if n <= seed:
        return out
    out[seed] = avg
    for i in range(seed + 1, n):
        avg = avg + (x[i] - avg) / window
        out[i] = avg
    return out


@njit(cache=True, inline="always")
def rsi_value_nb(avg_gain, avg_loss):
    """RSI from Wilder's average gain and loss: ``100 * gain / (gain + loss)`` (=
    ``100 - 100 / (1 + RS)``), 100 with only gains; 50 when both are 0 (no move in the
    averages, so neither side leads; ``ta`` fills this 0/0 with 50 too); NaN if either
    is NaN."""
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0  # exactly 100: 100 * g / g may round
    return 100.0 * avg_gain / (avg_gain + avg_loss)


@njit(cache=True)
def rsi_1d_nb(close, window, out):
    """Wilder's RSI of one series into ``out``: the library's one RSI (features, sweeps
    and the streaming scorer's step use it or :func:`rsi_value_nb`).

    Changes ``d`` between consecutive valid closes; average gain and loss seeded with
    the mean of the first ``window`` changes (``sum / window``), then ``avg += (x -
    avg) / window``, so the first value is at the row of the ``window``-th change. A
    NaN close gives NaN and is skipped: the next change is from the last valid close,
    as for a symbol whose long-form bars lack that row.
    """
    prev = np.nan
    k = 0
    s_gain = 0.0
    s_loss = 0.0
    avg_gain = np.nan
    avg_loss = np.nan
    for i in range(close.shape[0]):
        c = close[i]
        out[i] = np.nan
        if np.isnan(c):
            continue
        if not np.isnan(prev):
            d = c - prev
            gain = d if d > 0 else 0.0
            loss = -d if d < 0 else 0.0
            k += 1
            if k <= window:
                s_gain += gain
                s_loss += loss
                if k == window:
                    avg_gain = s_gain / window
                    avg_loss = s_loss / window
            else:
                avg_gain = avg_gain + (gain - avg_gain) / window
                avg_loss = avg_loss + (loss - avg_loss) / window
        prev = c
        if k >= window:
            out[i] = rsi_value_nb(avg_gain, avg_loss)


@njit(cache=True, parallel=True)
def rsi_nb(close, starts, ends, window):
    """Wilder's RSI in [0, 100] per group (:func:`rsi_1d_nb`): first value at a group's
    row ``window``; 50 while prices have not moved since the group's start."""
    out = np.empty(close.shape[0])
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        rsi_1d_nb(close[a:b], window, out[a:b])
    return out


@njit(cache=True)
def _macd_1d(close, fast, slow, signal, line, sig, hist):
    af = 2.0 / (fast + 1.0)
    as_ = 2.0 / (slow + 1.0)
    ag = 2.0 / (signal + 1.0)
    m = close.shape[0]
    ef = 0.0
    es = 0.0
    s = 0.0
    for k in range(m):
        if k == 0:
            ef = close[0]
            es = close[0]
        else:
            ef = af * close[k] + (1.0 - af) * ef
            es = as_ * close[k] + (1.0 - as_) * es
        v = ef - es
        s = v if k == 0 else ag * v + (1.0 - ag) * s
        line[k] = v if k >= slow - 1 else np.nan
        if k >= slow + signal - 2:
            sig[k] = s
            hist[k] = v - s
        else:
            sig[k] = np.nan
            hist[k] = np.nan


@njit(cache=True, parallel=True)
def macd_nb(close, starts, ends, fast, slow, signal):
    """MACD line, signal line and histogram.

    ``macd = EMA_fast(close) - EMA_slow(close)`` with ``alpha = 2 / (span + 1)`` EMAs
    started at each group's first close (pandas ``ewm(span, adjust=False)``);
    ``signal = EMA_signal(macd)`` likewise. Warm-up rows are NaN: the first
    ``slow - 1`` rows of a group for ``macd`` and the first ``slow + signal - 2``
    for ``signal`` and the histogram.
    """
    n = close.shape[0]
    line = np.empty(n)
    sig = np.empty(n)
    hist = np.empty(n)
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _macd_1d(close[a:b], fast, slow, signal, line[a:b], sig[a:b], hist[a:b])
    return line, sig, hist


@njit(cache=True)
def _atr_1d(high, low, close, window, out, tr):
    m = close.shape[0]
    if m == 0:
        return
    tr[0] = 0.0
    for i in range(1, m):
        pc = close[i - 1]
        tr[i] = max(high[i] - low[i], abs(high[i] - pc), abs(low[i] - pc))
    _wilder_1d(tr, window, 1, out)


@njit(cache=True, parallel=True)
def atr_nb(high, low, close, starts, ends, window):
    """Wilder's Average True Range (in price units).

    ``TR = max(high - low, |high - prev close|, |low - prev close|)`` from each group's
    second row (the first has no previous close); ATR is Wilder-smoothed with an SMA
    seed of the first ``window`` true ranges, so the first value is at row ``window``.
    """
    out = np.empty(close.shape[0])
    for g in prange(starts.shape[0]):
        a, b = starts[g], ends[g]
        _atr_1d(high[a:b], low[a:b], close[a:b], window, out[a:b], np.empty(b - a))
    return out


# ---------------------------------------------------------------------------
# All technical features in one pass
# ---------------------------------------------------------------------------


# Tasks of technical_nb: one per group and kind (a close window per distinct window).
_RETURNS, _CLOSE_WINDOW, _VOLUME_Z, _RSI, _MACD, _ATR = 0, 1, 2, 3, 4, 5
# Rough cost of each kind in ns a row (one thread), to spread the tasks over the threads
# (_RETURNS: logs, returns, hl_range, and the vol/skew windows of the 1-bar return).
_COST = (8.0, 5.0, 6.5, 5.0, 1.8, 5.6)


@njit(cache=True)
def _row_of(windows, w, first):
    """``first`` + the position of ``w`` in ``windows``, or -1 if absent."""
    for j in range(windows.shape[0]):
        if windows[j] == w:
            return first + j
    return -1


@njit(cache=True)
def _spread_nb(cost, bins):
    """Bin of each task so the bins' total costs are close (largest task first, each to
    the least loaded bin): int64[t]."""
    load = np.zeros(bins)
    out = np.empty(cost.shape[0], dtype=np.int64)
    for t in np.argsort(-cost):
        b = np.argmin(load)
        out[t] = b
        load[b] += cost[t]
    return out


@njit(cache=True, parallel=True)
def technical_nb(close, high, low, volume, starts, ends, horizons, vol_windows, ma_windows,
                 rsi_window, macd_fast, macd_slow, macd_signal, atr_window, bb_window, bb_k,
                 volume_window, skew_window, out, work, threads):
    """Every technical feature of :func:`alphatrade_lab.features.technical` into ``out``
    (float64[k, n], C order) with rows in ``FeatureSpec.feature_names`` order: ``ret_{h}``
    per horizon, ``vol_{w}``, ``ma_dist_{w}``, rsi, macd, macd_signal, macd_hist, atr,
    bb %b, volume z-score, hl_range, skew. ``work`` (float64[2, n]) receives the log
    close and the 1-bar log return; ``threads`` is ``numba.get_num_threads()`` (in the
    kernel it would keep numba from caching it). Returns ``out``.

    The caller allocates both (numpy's allocator; the first touch of a fresh numba
    buffer of this size costs more than the features). One pass per group and rolling
    window serves every feature of that window; the tasks of all groups are spread
    over the threads by their cost, so a few symbols still use every core, in a single
    parallel region (on a busy machine each region can wait milliseconds for a thread).
    """
    nh, nv, nm = horizons.shape[0], vol_windows.shape[0], ma_windows.shape[0]
    r_vol, r_ma = nh, nh + nv
    r_rsi = r_ma + nm
    r_atr, r_bb, r_vz, r_hl, r_skew = r_rsi + 4, r_rsi + 5, r_rsi + 6, r_rsi + 7, r_rsi + 8
    # Distinct windows: of close (moving averages, Bollinger) and of r1 (vol, skew).
    cw = np.unique(np.append(ma_windows, bb_window))
    rw = np.unique(np.append(vol_windows, skew_window))
    kinds = np.concatenate((np.array([_RETURNS, _VOLUME_Z, _RSI, _MACD, _ATR]),
                            np.full(cw.shape[0], _CLOSE_WINDOW)))
    params = np.concatenate((np.zeros(5, dtype=np.int64), cw))
    nk, ng = kinds.shape[0], starts.shape[0]
    cost = np.empty(nk * ng)
    for t in range(nk * ng):
        g = t // nk
        cost[t] = _COST[kinds[t % nk]] * (ends[g] - starts[g])
    bin_of = _spread_nb(cost, threads)
    none = np.empty(0)

    for b in prange(threads):
        for t in range(nk * ng):
            if bin_of[t] != b:
                continue
            g, kind, w = t // nk, kinds[t % nk], params[t % nk]
            a, e = starts[g], ends[g]
            m = e - a
            c = close[a:e]
            if kind == _RETURNS:
                lc, r1 = work[0, a:e], work[1, a:e]
                for i in range(m):
                    lc[i] = np.log(c[i])
                    r1[i] = lc[i] - lc[i - 1] if i > 0 else np.nan
                for j in range(nh):
                    o = out[j, a:e]
                    hz = horizons[j]
                    for i in range(m):
                        o[i] = lc[i] - lc[i - hz] if i >= hz else np.nan
                o = out[r_hl, a:e]
                for i in range(m):
                    o[i] = (high[a + i] - low[a + i]) / c[i]
                for w in rw:
                    r = _row_of(vol_windows, w, r_vol)
                    _window_1d(r1, w, 1, none, none, none, out[r, a:e] if r >= 0 else none,
                               none, out[r_skew, a:e] if w == skew_window else none)
            elif kind == _CLOSE_WINDOW:
                r = _row_of(ma_windows, w, r_ma)
                ma = out[r, a:e] if r >= 0 else none
                bb = out[r_bb, a:e] if w == bb_window else none
                _window_1d(c, w, 0, ma, none, none, none, bb, none)
                for i in range(ma.shape[0]):
                    ma[i] = c[i] / ma[i] - 1.0
                for i in range(bb.shape[0]):
                    bb[i] = 0.5 + bb[i] / (2.0 * bb_k)
            elif kind == _VOLUME_Z:
                _window_1d(volume[a:e], volume_window, 1, none, none, none, none,
                           out[r_vz, a:e], none)
            elif kind == _RSI:
                rsi_1d_nb(c, rsi_window, out[r_rsi, a:e])
            elif kind == _MACD:
                _macd_1d(c, macd_fast, macd_slow, macd_signal, out[r_rsi + 1, a:e],
                         out[r_rsi + 2, a:e], out[r_rsi + 3, a:e])
            else:
                o = out[r_atr, a:e]
                _atr_1d(high[a:e], low[a:e], c, atr_window, o, o)
    return out


# ---------------------------------------------------------------------------
# Filling NaN and as-of joins
# ---------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def ffill_nb(x, starts, ends):
    """Forward-fill ``x`` (float64[n]) within groups, never backwards.

    Returns the filled copy; leading NaNs of a group stay NaN.
    """
    out = x.copy()
    for g in prange(starts.shape[0]):
        last = np.nan
        for i in range(starts[g], ends[g]):
            if np.isnan(out[i]):
                out[i] = last
            else:
                last = out[i]
    return out


@njit(cache=True, parallel=True)
def expanding_mean_fill_nb(x, starts, ends):
    """Fill NaNs of ``x`` (float64[n]) with the mean of the group's earlier non-NaN values.

    Rows with no earlier value stay NaN. Filled values do not enter later means.
    """
    out = x.copy()
    for g in prange(starts.shape[0]):
        s = 0.0
        k = 0
        for i in range(starts[g], ends[g]):
            v = x[i]
            if np.isnan(v):
                if k > 0:
                    out[i] = s / k
            else:
                s += v
                k += 1
    return out


@njit(cache=True, parallel=True)
def asof_index_nb(t, starts, ends, ht, hstarts, hends):
    """For each row i of group g, the last row j of higher group g with ``ht[j] <= t[i]``.

    ``t`` and ``ht`` are int64 times sorted within groups; group g of the rows pairs
    with group g of the higher rows (an empty higher group has ``hstarts == hends``).
    Returns int64[n], -1 where no such row exists.
    """
    out = np.full(t.shape[0], -1, dtype=np.int64)
    for g in prange(starts.shape[0]):
        j = hstarts[g] - 1
        for i in range(starts[g], ends[g]):
            while j + 1 < hends[g] and ht[j + 1] <= t[i]:
                j += 1
            if j >= hstarts[g]:
                out[i] = j
    return out


# ---------------------------------------------------------------------------
# Cross-asset graphs (rows are the union time grid, columns the symbols)
# ---------------------------------------------------------------------------


@njit(cache=True)
def grid_returns_nb(logc, grid_row, starts, ends, n_rows):
    """1-bar log returns of each group on a shared time grid: float64[n_rows, n_groups].

    ``grid_row[i]`` is the grid row of bar i (increasing within a group). Between two
    bars of a group at grid rows p < q, row q gets ``logc[q] - logc[p]`` and rows p+1..q-1
    get 0 (no new price); rows up to and including a group's first bar are NaN, rows
    after its last bar 0.
    """
    n_groups = starts.shape[0]
    out = np.full((n_rows, n_groups), np.nan)
    for g in range(n_groups):
        a, b = starts[g], ends[g]
        if b <= a:
            continue
        for i in range(a + 1, b):
            p, q = grid_row[i - 1], grid_row[i]
            for k in range(p + 1, q):
                out[k, g] = 0.0
            out[q, g] = logc[i] - logc[i - 1]
        for k in range(grid_row[b - 1] + 1, n_rows):
            out[k, g] = 0.0
    return out


@njit(cache=True)
def _invert_nb(m, out):
    """Gauss-Jordan inverse of the square ``m`` into ``out``; False if (near) singular."""
    n = m.shape[0]
    a = m.copy()
    for i in range(n):
        for j in range(n):
            out[i, j] = 1.0 if i == j else 0.0
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if abs(a[p, c]) < 1e-12:
            return False
        if p != c:
            for j in range(n):
                a[c, j], a[p, j] = a[p, j], a[c, j]
                out[c, j], out[p, j] = out[p, j], out[c, j]
        d = a[c, c]
        for j in range(n):
            a[c, j] /= d
            out[c, j] /= d
        for r in range(n):
            if r != c and a[r, c] != 0.0:
                f = a[r, c]
                for j in range(n):
                    a[r, j] -= f * a[c, j]
                    out[r, j] -= f * out[c, j]
    return True


@njit(cache=True)
def _corr_from_sums_nb(sx, sxy, nonzero, window, partial, rho):
    """Correlation (or partial correlation) matrix of a full window from its sums.

    A symbol without variance in the window (no non-zero return, or a variance below
    1e-12 of its mean square) gets a NaN row and column; partial correlations are taken
    among the other symbols, all NaN if their correlation matrix is singular.
    """
    n = sx.shape[0]
    var = np.empty(n)
    ok = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        var[i] = (sxy[i, i] - sx[i] * sx[i] / window) / (window - 1)
        ok[i] = nonzero[i] > 0 and var[i] > 1e-12 * sxy[i, i] / window and var[i] > 0.0
    for i in range(n):
        for j in range(n):
            if ok[i] and ok[j]:
                if i == j:
                    rho[i, j] = 1.0
                else:
                    c = (sxy[i, j] - sx[i] * sx[j] / window) / (window - 1)
                    v = c / np.sqrt(var[i] * var[j])
                    rho[i, j] = min(1.0, max(-1.0, v))
            else:
                rho[i, j] = np.nan
    if not partial:
        return
    idx = np.flatnonzero(ok)
    m = idx.shape[0]
    if m < 2:
        return
    sub = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            sub[a, b] = rho[idx[a], idx[b]]
    inv = np.empty((m, m))
    if not _invert_nb(sub, inv):
        for a in range(m):
            for b in range(m):
                rho[idx[a], idx[b]] = np.nan
        return
    for a in range(m):
        for b in range(m):
            if a != b:
                v = -inv[a, b] / np.sqrt(inv[a, a] * inv[b, b])
                rho[idx[a], idx[b]] = min(1.0, max(-1.0, v))


@njit(cache=True)
def _add_row_nb(r, t, sign, sx, sxy, nonzero):
    n = r.shape[1]
    for i in range(n):
        x = r[t, i]
        sx[i] += sign * x
        if x != 0.0:
            nonzero[i] += sign
        for j in range(i, n):
            sxy[i, j] += sign * x * r[t, j]
            sxy[j, i] = sxy[i, j]


@njit(cache=True)
def _row_valid_nb(r, t):
    for i in range(r.shape[1]):
        if not np.isfinite(r[t, i]):
            return False
    return True


@njit(cache=True)
def _block_rho_nb(r, window, partial, lo, hi, rho, full):
    """``rho[t - lo]`` for grid rows ``lo <= t < hi`` (NaN unless the window is full) and
    ``full[t - lo]``; the window's sums start afresh at ``lo`` (no drift across blocks)."""
    n = r.shape[1]
    sx = np.zeros(n)
    sxy = np.zeros((n, n))
    nonzero = np.zeros(n, dtype=np.int64)
    bad = 0
    for t in range(max(0, lo - window + 1), hi):
        if _row_valid_nb(r, t):
            _add_row_nb(r, t, 1.0, sx, sxy, nonzero)
        else:
            bad += 1
        old = t - window
        if old >= 0 and old >= lo - window + 1:
            if _row_valid_nb(r, old):
                _add_row_nb(r, old, -1.0, sx, sxy, nonzero)
            else:
                bad -= 1
        if t < lo:
            continue
        k = t - lo
        full[k] = t >= window - 1 and bad == 0
        if full[k]:
            _corr_from_sums_nb(sx, sxy, nonzero, window, partial, rho[k])
        else:
            rho[k, :, :] = np.nan


@njit(cache=True, parallel=True)
def rolling_corr_nb(r, window, partial, block):
    """Correlation (or partial correlation) matrices of the trailing ``window`` grid rows
    (including row t) of ``r`` (float64[T, N]): float64[T, N, N], NaN where the window
    holds a non-finite row or is not full. Blocks of ``block`` rows run in parallel."""
    n_rows, n = r.shape
    rho = np.empty((n_rows, n, n))
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n_rows, lo + block)
        full = np.empty(hi - lo, dtype=np.bool_)
        _block_rho_nb(r, window, partial, lo, hi, rho[lo:hi], full)
    return rho


@njit(cache=True)
def _graph_row_nb(rho, ret, threshold, out, t, parent):
    """Degree, strength, neighbour return, component size and id of one graph."""
    n = rho.shape[0]
    for i in range(n):
        parent[i] = i
    for i in range(n):
        deg = 0.0
        wsum = 0.0
        rsum = 0.0
        for j in range(n):
            w = rho[i, j]
            if j == i or not abs(w) >= threshold:
                continue
            deg += 1.0
            wsum += abs(w)
            rsum += w * ret[j]
            # union of i's and j's components (roots: the smallest index)
            a, c = i, j
            while parent[a] != a:
                a = parent[a]
            while parent[c] != c:
                c = parent[c]
            if a != c:
                parent[max(a, c)] = min(a, c)
        out[0, t, i] = deg
        out[1, t, i] = wsum / (n - 1)
        out[2, t, i] = rsum / wsum if wsum > 0.0 else 0.0
    for i in range(n):
        a = i
        while parent[a] != a:
            a = parent[a]
        out[4, t, i] = a
    for i in range(n):
        size = 0.0
        for j in range(n):
            if out[4, t, j] == out[4, t, i]:
                size += 1.0
        out[3, t, i] = size


@njit(cache=True, parallel=True)
def graph_features_nb(r, window, threshold, partial, block):
    """Per grid row and symbol: float64[5, T, N] of degree, strength (sum of ``|rho|``
    over edges / (N - 1)), neighbour return (``sum rho_ij r_j / sum |rho_ij|`` over
    edges, 0 without a neighbour), component size and component id (its smallest
    column). An edge joins i != j when ``|rho_ij| >= threshold``; NaN where the window
    is not full. ``rho`` as in :func:`rolling_corr_nb`."""
    n_rows, n = r.shape
    out = np.full((5, n_rows, n), np.nan)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n_rows, lo + block)
        rho = np.empty((hi - lo, n, n))
        full = np.empty(hi - lo, dtype=np.bool_)
        parent = np.empty(n, dtype=np.int64)
        _block_rho_nb(r, window, partial, lo, hi, rho, full)
        for k in range(hi - lo):
            if full[k]:
                _graph_row_nb(rho[k], r[lo + k], threshold, out, lo + k, parent)
    return out
